"""Handlers of the registry's inbound events: plain functions of (connection, event)."""

from __future__ import annotations

from lampo.contracts.catalog import REGISTRY_EVENTS
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.registry import CustomerUpserted, SubjectChanged
from lampo.crypto import KeyRing
from lampo.messaging import outbox
from lampo.messaging.consumer import Incoming
from lampo.registry.domain import Provenance, lookup_keys, sections_of
from lampo.registry.errors import UnknownOrganisation
from lampo.registry.store import RegistryStore

SOURCE = "urn:lampo:registry"


async def customer_upserted(store: RegistryStore, item: Incoming) -> None:
    data = item.event.data
    assert isinstance(data, CustomerUpserted)
    envelope = item.event.envelope
    if data.contact_person_for is not None and await store.subject_of(data.contact_person_for.customer_number) is None:
        raise UnknownOrganisation()

    subject_id = await store.subject_of(data.customer_number)
    if subject_id is None:
        keys = lookup_keys(data)
        existing = None
        for kind in ("personal_identity_code", "business_id"):
            if kind in keys:
                existing = await store.subject_by_lookup(kind, keys[kind])
                if existing:
                    break
        subject_id = await store.create_customer(data.customer_number, data.kind, existing)

    cipher = await store.cipher(subject_id)
    prov = Provenance(data.source.system, data.source.origin, data.legal_basis, envelope.time, envelope.id)
    changed: list[str] = []
    for update in sections_of(data):
        if await store.write_section(data.customer_number, subject_id, update, cipher, prov):
            if update.category not in changed:
                changed.append(update.category)
    if not changed:
        return  # an older event than what is stored: nothing to announce
    await store.set_lookups(data.customer_number, subject_id, lookup_keys(data))
    notice = SubjectChanged(
        subject_id=subject_id,
        customer_number=data.customer_number,
        kind=data.kind,
        categories=changed,
        origin=data.source.origin,
        changed_at=envelope.time,
    )
    await outbox.add(
        store.conn,
        [
            outbox.OutgoingEvent(
                REGISTRY_EVENTS,
                subject_id,
                CloudEvent.new("subject.changed", SOURCE, notice),
                subject_id=subject_id,
                traceparent=item.traceparent,
            )
        ],
    )


def make_inbound_handler(keys: KeyRing):  # type: ignore[no-untyped-def]
    async def handle(conn, items: list[Incoming]) -> None:  # type: ignore[no-untyped-def]
        store = RegistryStore(conn, keys)
        for item in items:
            if item.event.envelope.type == "customer.upserted":
                await customer_upserted(store, item)

    return handle
