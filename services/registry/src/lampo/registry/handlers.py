"""Handlers of the registry's inbound events: plain functions of (store, events).

``customer.upserted`` is handled a batch at a time (the consumer hands over up to 500 records in
one transaction): one look-up of known customers, one of blind indexes, one key fetch, one
statement per table. The other types are rarer and handled one by one, in order. A rejection of
any record fails the batch; the consumer then applies it again in halves, down to the record
that fails alone, so the reason reaches the dead-letter topic and its neighbours are applied.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import asyncpg

from lampo.clock import Clock
from lampo.contracts.catalog import REGISTRY_EVENTS
from lampo.contracts.consent import ConsentChanged
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.registry import (
    ConsumptionReported,
    ContractUpdated,
    CustomerRelationshipEnded,
    CustomerUpserted,
    InteractionLogged,
    SubjectChanged,
)
from lampo.crypto import KeyRing
from lampo.messaging import outbox
from lampo.messaging.consumer import BatchHandler, Incoming
from lampo.registry.domain import (
    EVENT_PROVENANCE,
    LOOKUP_FIELDS,
    OBJECTION_PURPOSES,
    REQUIRED_SECTION,
    TRACKED_PURPOSES,
    Provenance,
    SectionUpdate,
    lookup_value,
    name_lookups,
    profile_from,
    profiling_allowed,
    sections_of,
    system_of,
)
from lampo.registry.errors import MissingSection, UnknownCustomer, UnknownMeteringPoint, UnknownOrganisation
from lampo.registry.store import RegistryStore, SectionRow

SOURCE = "urn:lampo:registry"


def notice(
    subject_id: str,
    customer_number: str,
    *,
    kind: str,
    categories: Sequence[str],
    origin: str,
    changed_at: object,
    traceparent: str | None,
) -> outbox.OutgoingEvent:
    """``subject.changed``: ids and category names only, keyed by the pseudonymous subject id."""
    data = SubjectChanged.model_validate(
        {
            "subject_id": subject_id,
            "customer_number": customer_number,
            "kind": kind,
            "categories": list(categories),
            "origin": origin,
            "changed_at": changed_at,
        }
    )
    return outbox.OutgoingEvent(
        REGISTRY_EVENTS,
        subject_id,
        CloudEvent.new("subject.changed", SOURCE, data),
        subject_id=subject_id,
        traceparent=traceparent,
    )


def notice_record(
    subject_id: str,
    customer_number: str,
    *,
    kind: str,
    categories: Sequence[str],
    origin: str,
    changed_at: datetime,
    traceparent: str | None,
) -> outbox.Record:
    """:func:`notice` for a batch's many notices: the same record, serialized without models
    (every value comes from a validated event or from the registry's own names)."""
    data = {
        "subject_id": subject_id,
        "customer_number": customer_number,
        "kind": kind,
        "categories": list(categories),
        "origin": origin,
        "changed_at": changed_at,
    }
    return outbox.event_record(
        REGISTRY_EVENTS, subject_id, "subject.changed", SOURCE, data, subject_id=subject_id, traceparent=traceparent
    )


@dataclass
class _Winner:
    index: int
    subject_id: str
    update: SectionUpdate
    prov: Provenance


async def apply_section_updates(
    store: RegistryStore,
    updates: Sequence[tuple[int, str, str, SectionUpdate, Provenance]],
    *,
    created: Collection[str] = (),
) -> dict[int, list[str]]:
    """Write section updates ``(index, customer_number, subject_id, update, provenance)`` and keep
    what derives from them (blind indexes, metering points, organisation links) in step.
    Within the batch the latest event per section wins, as it would one by one; an event older
    than the stored section is not written. Returns the categories changed per index.
    ``created``: customer numbers inserted in this transaction, which hold nothing yet (no
    stored section, metering point or link to look up or replace)."""
    winners: dict[tuple[str, str], _Winner] = {}
    for index, customer, subject_id, update, prov in updates:
        key = (customer, update.section)
        current = winners.get(key)
        if current is None or current.prov.event_time <= prov.event_time:
            winners[key] = _Winner(index, subject_id, update, prov)
    ciphers = await store.ciphers({w.subject_id for w in winners.values()}, create=True)
    rows: list[SectionRow] = [
        store.section_row(customer, w.subject_id, w.update, ciphers[w.subject_id], w.prov)
        for (customer, _), w in winners.items()
    ]
    # Clearing a section that held nothing is no change to announce: find which cleared ones held data.
    held_before = await store.held_sections(
        [k for k, w in winners.items() if w.update.payload is None and k[0] not in created]
    )
    written = await store.write_sections(rows, new=created)

    changed: dict[int, list[str]] = {}
    set_lookups: list[tuple[str, bytes, str, str]] = []
    clear_lookups: list[tuple[str, str]] = []
    points_of: list[str] = []
    points: list[tuple[str, str, str]] = []
    links_of: list[str] = []
    links: list[tuple[str, str, str]] = []
    for (customer, section), w in winners.items():
        if (customer, section) not in written:
            continue
        if w.update.payload is None and (customer, section) not in held_before:
            continue
        categories = changed.setdefault(w.index, [])
        if w.update.category not in categories:
            categories.append(w.update.category)
        for kind in LOOKUP_FIELDS:
            applies, value = lookup_value(kind, section, w.update.payload)
            if applies and value:
                set_lookups.append((kind, store.blind_index(kind, value), customer, w.subject_id))
            elif applies:
                clear_lookups.append((kind, customer))
        for kind, name in name_lookups(section, w.update.payload).items():
            if name:
                set_lookups.append((kind, store.blind_index(kind, name), customer, w.subject_id))
            else:
                clear_lookups.append((kind, customer))
        if section == "metering_points":
            points_of.append(customer)
            payload = w.update.payload if isinstance(w.update.payload, list) else []
            points += [(customer, str(point), w.subject_id) for point in payload]
        elif section == "contact_person_for":
            links_of.append(customer)
            if isinstance(w.update.payload, dict):
                links.append((customer, str(w.update.payload["customer_number"]), w.subject_id))
    await store.clear_lookups(clear_lookups)
    await store.set_lookups(set_lookups, new=created)
    await store.set_metering_points([c for c in points_of if c not in created], points)
    await store.set_contact_links([c for c in links_of if c not in created], links)
    return changed


async def customers_upserted(store: RegistryStore, items: Sequence[Incoming]) -> None:
    """A run of ``customer.upserted`` events, in one pass."""
    upserts: list[tuple[Incoming, CustomerUpserted]] = []
    for item in items:
        assert isinstance(item.event.data, CustomerUpserted)
        upserts.append((item, item.event.data))
    referenced = {d.customer_number for _, d in upserts} | {
        d.contact_person_for.customer_number for _, d in upserts if d.contact_person_for is not None
    }
    known = await store.subjects_of(referenced)

    # Blind-index matches for new customer numbers: a new number of a known identity code or
    # business ID joins that subject.
    digests: dict[tuple[str, str], bytes] = {}
    for _, d in upserts:
        if d.customer_number in known:
            continue
        for kind, value in _identity_keys(d).items():
            digests[(kind, value)] = store.blind_index(kind, value)
    matches = await store.subjects_by_digests([(kind, digest) for (kind, _), digest in digests.items()])

    new_subjects: list[tuple[str, str]] = []
    new_customers: list[tuple[str, str]] = []
    subject_of_digest: dict[tuple[str, bytes], str] = dict(matches)
    updates: list[tuple[int, str, str, SectionUpdate, Provenance]] = []
    for index, (item, d) in enumerate(upserts):
        if d.contact_person_for is not None and d.contact_person_for.customer_number not in known:
            raise UnknownOrganisation()
        subject_id = known.get(d.customer_number)
        if subject_id is None:
            required = REQUIRED_SECTION[d.kind]
            if getattr(d, required) is None:
                raise MissingSection(d.kind, required)
            identity = [(kind, digests[(kind, value)]) for kind, value in _identity_keys(d).items()]
            subject_id = next((subject_of_digest[i] for i in identity if i in subject_of_digest), None)
            if subject_id is None:
                subject_id = store.new_subject_id()
                new_subjects.append((subject_id, d.kind))
            for i in identity:
                subject_of_digest.setdefault(i, subject_id)
            new_customers.append((d.customer_number, subject_id))
            known[d.customer_number] = subject_id
        envelope = item.event.envelope
        prov = Provenance(d.source.system, d.source.origin, d.legal_basis, envelope.time, envelope.id)
        updates += [(index, d.customer_number, subject_id, update, prov) for update in sections_of(d)]
    await store.insert_subjects(new_subjects)
    await store.insert_customers(new_customers)

    changed = await apply_section_updates(store, updates, created={c for c, _ in new_customers})
    notices = []
    for index, (item, d) in enumerate(upserts):
        categories = changed.get(index)
        if categories:  # nothing for an event older than what is stored
            item.span.set_attribute("lampo.subject_id", known[d.customer_number])
            notices.append(
                notice_record(
                    known[d.customer_number],
                    d.customer_number,
                    kind=d.kind,
                    categories=categories,
                    origin=d.source.origin,
                    changed_at=item.event.envelope.time,
                    traceparent=item.traceparent,
                )
            )
    await outbox.add(store.conn, notices)


def _identity_keys(d: CustomerUpserted) -> dict[str, str]:
    keys: dict[str, str] = {}
    if d.person is not None and d.person.personal_identity_code:
        keys["personal_identity_code"] = d.person.personal_identity_code
    if d.organisation is not None and d.organisation.business_id:
        keys["business_id"] = d.organisation.business_id
    return keys


def _provenance(item: Incoming) -> Provenance:
    envelope = item.event.envelope
    origin, basis = EVENT_PROVENANCE[envelope.type]
    return Provenance(system_of(envelope.source), origin, basis, envelope.time, envelope.id)


async def _known_customer(store: RegistryStore, customer_number: str) -> str:
    subject_id = await store.subject_of(customer_number)
    if subject_id is None:
        raise UnknownCustomer("data.customer_number")
    return subject_id


async def _announce(
    store: RegistryStore, item: Incoming, subject_id: str, customer_number: str, categories: list[str]
) -> None:
    prov = _provenance(item)
    item.span.set_attribute("lampo.subject_id", subject_id)
    kind = await store.kind_of(subject_id)
    await outbox.add(
        store.conn,
        [
            notice(
                subject_id,
                customer_number,
                kind=kind,
                categories=categories,
                origin=prov.origin,
                changed_at=prov.event_time,
                traceparent=item.traceparent,
            )
        ],
    )


async def relationship_ended(store: RegistryStore, item: Incoming) -> None:
    data = item.event.data
    assert isinstance(data, CustomerRelationshipEnded)
    subject_id = await _known_customer(store, data.customer_number)
    if await store.end_relationship(data.customer_number, subject_id, data.ended_at, _provenance(item)):
        await _announce(store, item, subject_id, data.customer_number, ["customer_relationship"])


async def contract_updated(store: RegistryStore, item: Incoming) -> None:
    data = item.event.data
    assert isinstance(data, ContractUpdated)
    subject_id = await _known_customer(store, data.customer_number)
    contract = (data.contract_id, data.product, data.status, data.valid_from, data.valid_to, data.metering_point)
    if await store.upsert_contract(data.customer_number, subject_id, contract, _provenance(item)):
        await _announce(store, item, subject_id, data.customer_number, ["customer_relationship"])


async def interaction_logged(store: RegistryStore, item: Incoming) -> None:
    data = item.event.data
    assert isinstance(data, InteractionLogged)
    subject_id = await _known_customer(store, data.customer_number)
    cipher = await store.cipher(subject_id)
    # The summary is free text written about the person: encrypted like the sections.
    interaction = (data.interaction_id, data.channel, data.at, cipher.encrypt("interaction.summary", data.summary))
    if await store.upsert_interaction(data.customer_number, subject_id, interaction, _provenance(item)):
        await _announce(store, item, subject_id, data.customer_number, ["customer_relationship"])


async def consumptions_reported(
    store: RegistryStore,
    run: Sequence[tuple[int, Incoming]],
    clock: Clock,
    *,
    unprofiled: set[str],
    last_reading: dict[str, int],
) -> None:
    """A run of ``consumption.reported`` events ``(position in the batch, item)`` in one pass: one
    look-up of the customers, one of their metering points, one statement for the readings, one
    for the notices. Within the run the latest event per reading wins, as it would one by one.

    Only the customer's last reading of the batch (``last_reading``) refreshes the profile, if any
    of the batch's readings changed (``unprofiled`` holds those customers): the profile reads
    every reading of the customer, so once per reading a metering point's hourly series made
    ingest quadratic. The profile committed with the batch is the same."""
    readings: list[tuple[int, Incoming, ConsumptionReported]] = []
    for index, item in run:
        assert isinstance(item.event.data, ConsumptionReported)
        readings.append((index, item, item.event.data))
    known = await store.subjects_of(d.customer_number for _, _, d in readings)
    if any(d.customer_number not in known for _, _, d in readings):
        raise UnknownCustomer("data.customer_number")
    held = await store.metering_points_held((d.customer_number, d.metering_point) for _, _, d in readings)
    if any((d.customer_number, d.metering_point) not in held for _, _, d in readings):
        raise UnknownMeteringPoint()

    winners: dict[tuple[str, str, date, date], tuple[int, Incoming, ConsumptionReported, Provenance]] = {}
    for index, item, d in readings:
        key = (d.customer_number, d.metering_point, d.period_start, d.period_end)
        prov = _provenance(item)
        current = winners.get(key)
        if current is None or current[3].event_time <= prov.event_time:
            winners[key] = (index, item, d, prov)
    written = await store.upsert_consumptions(
        [
            (
                d.customer_number,
                known[d.customer_number],
                (
                    d.metering_point,
                    d.period_start,
                    d.period_end,
                    Decimal(d.energy_mwh),
                    None if d.annual_forecast_mwh is None else Decimal(d.annual_forecast_mwh),
                ),
                prov,
            )
            for index, item, d, prov in winners.values()
        ]
    )
    changed: dict[int, list[str]] = {}
    for key, (index, _, d, _) in winners.items():
        if key in written:
            changed[index] = ["consumption"]
            unprofiled.add(d.customer_number)
    for index, _, d in readings:
        customer = d.customer_number
        if last_reading[customer] == index and customer in unprofiled:
            unprofiled.discard(customer)
            if await refresh_profile(store, customer, clock):
                changed.setdefault(index, []).append("services")
    if not changed:
        return
    kinds = await store.kinds_of(known[d.customer_number] for index, _, d in readings if index in changed)
    notices = []
    for index, item, d in readings:
        if index not in changed:
            continue
        subject_id = known[d.customer_number]
        prov = _provenance(item)
        item.span.set_attribute("lampo.subject_id", subject_id)
        notices.append(
            notice_record(
                subject_id,
                d.customer_number,
                kind=kinds[subject_id],
                categories=changed[index],
                origin=prov.origin,
                changed_at=prov.event_time,
                traceparent=item.traceparent,
            )
        )
    await outbox.add(store.conn, notices)


async def refresh_profile(store: RegistryStore, customer_number: str, clock: Clock) -> bool:
    """Compute the customer's profile if, and only if, profiling may run now; delete it otherwise.
    True when a profile was written or deleted."""
    await store.lock_customers([customer_number])
    subject_id = await store.subject_of(customer_number)
    allowed = profiling_allowed(await store.consent_states(customer_number))
    if subject_id is None:
        return False
    if not allowed or await store.is_restricted(subject_id):
        return await store.delete_profiles(customer_number=customer_number) > 0
    totals = await store.reading_totals(customer_number)
    if totals is None:
        return False
    profile = profile_from(totals)
    await store.save_profile(customer_number, subject_id, profile, clock.now())
    return True


def _in_order(items: Sequence[Incoming]) -> list[tuple[int, Incoming]]:
    """The order to apply a batch in, with each item's position. A seeded or migrated register
    arrives as each customer's upsert followed by its readings, customer after customer: applied
    in that order, every run would be one customer long. When the batch holds only upserts and
    readings, and no customer's reading comes before an upsert of that customer, the upserts go
    first (in their order) and the readings after (in theirs): each customer's own events keep
    their order, as do the upserts among themselves (contact persons after their organisation),
    and a reading depends on nothing but its customer's upserts. Otherwise the batch's order."""
    indexed = list(enumerate(items))
    read: set[str] = set()
    for item in items:
        data = item.event.data
        if isinstance(data, ConsumptionReported):
            read.add(data.customer_number)
        elif not isinstance(data, CustomerUpserted) or data.customer_number in read:
            return indexed
    return sorted(indexed, key=lambda pair: isinstance(pair[1].event.data, ConsumptionReported))


def make_inbound_handler(keys: KeyRing, clock: Clock) -> BatchHandler:
    async def handle(conn: asyncpg.Connection, items: list[Incoming]) -> None:
        store = RegistryStore(conn, keys)
        run: list[Incoming] = []
        last_reading = {
            item.event.data.customer_number: i
            for i, item in enumerate(items)
            if isinstance(item.event.data, ConsumptionReported)
        }
        unprofiled: set[str] = set()
        # Identity codes and business IDs first, before anything else of the transaction: every
        # instance then matches a new customer number against what the others committed.
        await store.lock_identities(
            store.blind_index(kind, value)
            for item in items
            if isinstance(item.event.data, CustomerUpserted)
            for kind, value in _identity_keys(item.event.data).items()
        )
        readings: list[tuple[int, Incoming]] = []
        for i, item in _in_order(items):
            kind = item.event.envelope.type
            # Runs of upserts and of readings are applied a run at a time; the order of events
            # is kept: a run ends before the next event of another type.
            if kind != "customer.upserted" and run:
                await customers_upserted(store, run)
                run = []
            if not isinstance(item.event.data, ConsumptionReported) and readings:
                await consumptions_reported(store, readings, clock, unprofiled=unprofiled, last_reading=last_reading)
                readings = []
            if kind == "customer.upserted":
                run.append(item)
            elif isinstance(item.event.data, ConsumptionReported):
                readings.append((i, item))
            elif kind == "customer.relationship_ended":
                await relationship_ended(store, item)
            elif kind == "contract.updated":
                await contract_updated(store, item)
            elif kind == "interaction.logged":
                await interaction_logged(store, item)
        if run:
            await customers_upserted(store, run)
        if readings:
            await consumptions_reported(store, readings, clock, unprofiled=unprofiled, last_reading=last_reading)

    return handle


def make_consent_handler(keys: KeyRing, clock: Clock) -> BatchHandler:
    """``consent.changed``: keep the profiling-relevant states and direct marketing's; withdrawal
    or objection deletes the profile in the same transaction, a grant computes it from the
    consumption held. A direct-marketing state only moves the customer in or out of the audience."""

    async def handle(conn: asyncpg.Connection, items: list[Incoming]) -> None:
        store = RegistryStore(conn, keys)
        latest: dict[tuple[str, str], tuple[ConsentChanged, Incoming]] = {}
        for item in items:
            data = item.event.data
            if not isinstance(data, ConsentChanged) or data.purpose not in TRACKED_PURPOSES:
                continue  # purposes the register does not act on
            key = (data.customer_number, data.purpose)
            if key not in latest or latest[key][0].effective_at <= data.effective_at:
                latest[key] = (data, item)
        await store.lock_customers(customer for customer, _ in latest)
        changed = await store.set_consents([(c, p, d.state, d.effective_at) for (c, p), (d, _) in latest.items()])
        known = await store.subjects_of(changed)  # consent may come before the customer does
        for (customer, purpose), (data, item) in latest.items():
            if purpose not in OBJECTION_PURPOSES:
                continue  # direct marketing: kept for the audience, the profile does not depend on it
            if customer not in known or not await refresh_profile(store, customer, clock):
                continue
            subject_id = known.pop(customer)
            await outbox.add(
                conn,
                [
                    notice(
                        subject_id,
                        customer,
                        kind=await store.kind_of(subject_id),
                        categories=["services"],
                        origin="subject",
                        changed_at=data.effective_at,
                        traceparent=item.traceparent,
                    )
                ],
            )

    return handle
