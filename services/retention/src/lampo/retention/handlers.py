"""What the retention service does with each event: start clocks, place and release legal holds,
record participants' answers to purge tasks. Plain async functions over a connection."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from aiokafka.structs import ConsumerRecord

from lampo.contracts.billing import CreditChecked, InvoiceIssued
from lampo.contracts.consent import ConsentChanged
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.privacy import PrivacyAck
from lampo.contracts.recordings import CallRecorded, EmailArchived
from lampo.contracts.registry import CustomerRelationshipEnded, SubjectChanged, SubjectErased
from lampo.contracts.retention import LegalHoldPlaced, LegalHoldReleased
from lampo.messaging import outbox
from lampo.messaging.consumer import BatchHandler, Incoming, data_text
from lampo.retention import store
from lampo.retention.domain import HOLD_STATE_TYPE, HOLDS_TOPIC, SOURCE, HoldState, financial_year_end
from lampo.retention.errors import HoldConflict, UnknownHold

KAFKA_INTERFACE = "kafka:retention.inbound.v1"


# -- legal holds ---------------------------------------------------------------------------------


async def publish_hold_state(
    conn: asyncpg.Connection, customer_number: str, traceparent: str | None = None
) -> HoldState:
    """Announce the customer's current holds (all of them) on the compacted holds topic."""
    state = HoldState(customer_number=customer_number, holds=await store.standing_holds(conn, customer_number))
    await outbox.add(
        conn,
        [
            outbox.OutgoingEvent(
                HOLDS_TOPIC, customer_number, CloudEvent.new(HOLD_STATE_TYPE, SOURCE, state), traceparent=traceparent
            )
        ],
    )
    return state


async def place_hold(
    conn: asyncpg.Connection,
    placed: LegalHoldPlaced,
    *,
    actor: str,
    interface: str,
    event_id: str | None = None,
    traceparent: str | None = None,
) -> bool:
    """Place a hold; False when this hold id already stands (idempotent: nothing changes)."""
    await store.lock_holds(conn, shared=False)
    existing = await store.hold(conn, placed.hold_id)
    detail: dict[str, Any] = {
        "categories": [c.value for c in placed.categories],
        "case_reference": placed.case_reference,
        "authority": placed.authority,
    }
    if existing is not None:
        if existing["customer_number"] != placed.customer_number:
            raise HoldConflict(f"hold_id: already placed on another customer_number ({placed.hold_id})")
        await store.audit(
            conn,
            action="placed_again",
            hold_id=placed.hold_id,
            customer_number=placed.customer_number,
            actor=actor,
            interface=interface,
            event_id=event_id,
            effective_at=placed.placed_at,
            detail=detail,
        )
        return False
    await store.insert_hold(conn, placed)
    await store.audit(
        conn,
        action="placed",
        hold_id=placed.hold_id,
        customer_number=placed.customer_number,
        actor=actor,
        interface=interface,
        event_id=event_id,
        effective_at=placed.placed_at,
        detail=detail,
    )
    await publish_hold_state(conn, placed.customer_number, traceparent)
    return True


async def release_hold(
    conn: asyncpg.Connection,
    released: LegalHoldReleased,
    *,
    actor: str,
    interface: str,
    event_id: str | None = None,
    traceparent: str | None = None,
) -> bool:
    """Release a hold; False when it was already released. :class:`UnknownHold` if never placed."""
    await store.lock_holds(conn, shared=False)
    existing = await store.hold(conn, released.hold_id)
    if existing is None or existing["customer_number"] != released.customer_number:
        raise UnknownHold(f"hold_id: no hold {released.hold_id} was placed on this customer_number")
    again = existing["released_at"] is not None
    await store.audit(
        conn,
        action="released_again" if again else "released",
        hold_id=released.hold_id,
        customer_number=released.customer_number,
        actor=actor,
        interface=interface,
        event_id=event_id,
        effective_at=released.released_at,
        detail={"case_reference": existing["case_reference"], "authority": existing["authority"]},
    )
    if again:
        return False
    await store.release_hold(conn, released.hold_id, released.released_at)
    await publish_hold_state(conn, released.customer_number, traceparent)
    return True


async def on_retention_inbound(conn: asyncpg.Connection, items: list[Incoming]) -> None:
    for item in items:
        data = item.event.data
        item.span.set_attribute("lampo.customer_number", item.key or "")
        actor = item.event.envelope.source
        if isinstance(data, LegalHoldPlaced):
            item.span.set_attribute("lampo.hold_id", data.hold_id)
            await place_hold(
                conn, data, actor=actor, interface=KAFKA_INTERFACE, event_id=item.id, traceparent=item.traceparent
            )
        elif isinstance(data, LegalHoldReleased):
            item.span.set_attribute("lampo.hold_id", data.hold_id)
            await release_hold(
                conn, data, actor=actor, interface=KAFKA_INTERFACE, event_id=item.id, traceparent=item.traceparent
            )


# -- clocks --------------------------------------------------------------------------------------


async def on_registry_events(conn: asyncpg.Connection, items: list[Incoming]) -> None:
    pairs: list[tuple[str, str]] = []
    clocks: list[tuple[str, str, str, datetime]] = []
    for item in items:
        data = item.event.data
        if isinstance(data, SubjectChanged):
            pairs.append((data.customer_number, data.subject_id))
            clocks += [(data.customer_number, "last_activity", c.value, data.changed_at) for c in data.categories]
        elif isinstance(data, SubjectErased):
            # Erased data needs no activity clock; the per-customer clocks stay for what was retained.
            await store.forget_activity(conn, data.customer_number, [c.value for c in data.categories])
    await store.note_subjects(conn, pairs)
    await store.start_clocks(conn, clocks)


async def on_registry_inbound(conn: asyncpg.Connection, items: list[Incoming]) -> None:
    clocks = [
        (d.customer_number, "relationship_ended", "", d.ended_at)
        for d in (i.event.data for i in items)
        if isinstance(d, CustomerRelationshipEnded)
    ]
    await store.start_clocks(conn, clocks)


def make_billing_handler(financial_year_end_month: int) -> BatchHandler:
    async def on_billing_inbound(conn: asyncpg.Connection, items: list[Incoming]) -> None:
        clocks: list[tuple[str, str, str, datetime]] = []
        for item in items:
            d = item.event.data
            if isinstance(d, InvoiceIssued):
                end = financial_year_end(d.issued_at, financial_year_end_month)
                clocks.append((d.customer_number, "financial_year_end", "", end))
            elif isinstance(d, CreditChecked):
                clocks.append((d.customer_number, "last_activity", "billing", d.checked_at))
        await store.start_clocks(conn, clocks)

    return on_billing_inbound


async def on_recordings_inbound(conn: asyncpg.Connection, items: list[Incoming]) -> None:
    clocks: list[tuple[str, str, str, datetime]] = []
    for item in items:
        d = item.event.data
        if isinstance(d, CallRecorded):
            clocks.append((d.customer_number, "recording_made", "", d.started_at))
        elif isinstance(d, EmailArchived):
            clocks.append((d.customer_number, "last_activity", "customer_relationship", d.at))
    await store.start_clocks(conn, clocks)


async def on_consent_events(conn: asyncpg.Connection, items: list[Incoming]) -> None:
    for item in items:
        d = item.event.data
        if not isinstance(d, ConsentChanged):
            continue
        if d.state == "granted":
            # Consent given again after a withdrawal: its data has a basis again.
            await store.stop_clock(conn, d.customer_number, "consent_withdrawn", d.effective_at)
            clocks = [(d.customer_number, "last_activity", "other_consented", d.effective_at)]
        else:
            clocks = [(d.customer_number, "consent_withdrawn", "", d.effective_at)]
        await store.start_clocks(conn, clocks)


# -- answers to purge tasks ----------------------------------------------------------------------

SWEEP_PREFIX = "sweep-"


def answers_a_sweep(record: ConsumerRecord[Any, Any]) -> bool:
    """Retention reads every ``privacy.ack`` for the few that answer its purge tasks (their
    request id is a sweep's). An ack plainly answering another request is passed over before
    parsing, tracing and the inbox: an access request's acks carry the subject's whole result in
    parts of up to 1 MiB, which cost retention a third of a second of CPU for nothing on the
    access path (bench/access). Anything not plainly another's goes the whole way, to be handled
    or dead-lettered with its reason."""
    request_id = data_text(record, "request_id")
    return request_id is None or request_id.startswith(SWEEP_PREFIX)


def make_ack_handler(clock_now: Any) -> BatchHandler:
    async def on_acks(conn: asyncpg.Connection, items: list[Incoming]) -> None:
        answers = []
        for item in items:
            ack = item.event.data
            if not isinstance(ack, PrivacyAck) or not ack.request_id.startswith(SWEEP_PREFIX):
                continue
            outcome: dict[str, dict[str, Any]] = {}
            for category, count in ack.erased.items():
                outcome.setdefault(category.value, {})["erased"] = count
            for kept in ack.retained:
                entry = outcome.setdefault(kept.category.value, {})
                entry["retained"] = entry.get("retained", 0) + kept.items
                entry["basis"] = kept.legal_basis
            answers.append((ack.task_id, ack.status, clock_now(), outcome, ack.error))
        if answers:
            await store.confirm_purges(conn, answers)

    return on_acks
