"""Handlers of the consent service: inbound consents, withdrawals and objections, and the
participant tasks (access, erasure).

What consent.events.v1 carries, and why: the contract keys the topic by ``customer_number`` and
the topic is compacted, so compaction keeps only the *last* record per customer, not one per
customer and purpose. Every ``consent.changed`` therefore carries the purpose that changed
(``purpose``, ``state``, ``effective_at``, as the contract says) *and* the optional extension
``states``: every purpose of that customer with its current state after this change. The last
record per key then holds the customer's whole current state, and a new reader of the compacted
topic rebuilds every (customer, purpose) without the contract's key changing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable

import asyncpg

from lampo.clock import Clock
from lampo.consent.domain import (
    CATEGORY,
    ConsentEvent,
    Current,
    Kind,
    Purpose,
    UnknownPurposeError,
    decide,
    purposes_of,
    receipt,
)
from lampo.consent.errors import UnknownPurpose, UnknownScope
from lampo.consent.store import ConsentStore, LedgerEntry
from lampo.contracts.catalog import CONSENT_EVENTS
from lampo.contracts.consent import ConsentChanged, ConsentGiven, ConsentWithdrawn, ObjectionFiled
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.privacy import PrivacyTask, Retained
from lampo.messaging import outbox
from lampo.messaging.consumer import Incoming
from lampo.participant import Participant, TaskOutcome

SOURCE = "urn:lampo:consent"
PARTICIPANT = "consent"


def consent_event(item: Incoming) -> ConsentEvent:
    data = item.event.data
    envelope = item.event.envelope
    if isinstance(data, ConsentGiven | ConsentWithdrawn):
        kind: Kind = "consent.given" if isinstance(data, ConsentGiven) else "consent.withdrawn"
        return ConsentEvent(envelope.id, kind, data.customer_number, data.at, envelope.source, data.purpose, None, data.channel)
    assert isinstance(data, ObjectionFiled)
    return ConsentEvent(envelope.id, "objection.filed", data.customer_number, data.at, envelope.source, None, data.scope, None)


def changed_event(
    customer_number: str, purpose: str, current: Current, states: dict[str, Current], source: str = SOURCE
) -> CloudEvent:
    notice = ConsentChanged(
        customer_number=customer_number,
        purpose=purpose,
        state=current.state,
        effective_at=current.effective_at,
        states={p: c.state for p, c in sorted(states.items())},
    )
    return CloudEvent.new("consent.changed", source, notice)


def _concerned(event: ConsentEvent, purposes: dict[str, Purpose]) -> list[str]:
    try:
        concerned = purposes_of(event, purposes)
    except UnknownPurposeError:
        raise UnknownPurpose() from None
    if not concerned:
        raise UnknownScope()
    return concerned


async def handle_inbound(conn: asyncpg.Connection, items: list[Incoming], source: str = SOURCE) -> None:
    """Apply a batch of inbound events in one transaction: ledger rows for every event, new
    states, a receipt and a consent.changed (through the outbox) for every change of state."""
    store = ConsentStore(conn)
    purposes = await store.purposes()
    events = [consent_event(item) for item in items]
    concerned = [_concerned(e, purposes) for e in events]  # refuse before any effect
    customers = sorted({e.customer_number for e in events})
    await store.lock(customers)
    held = await store.current(customers, purposes)
    states: dict[str, dict[str, Current]] = defaultdict(dict)
    for (customer, purpose), current in held.items():
        states[customer][purpose] = current

    entries: list[LedgerEntry] = []
    receipts = []
    outgoing: list[outbox.OutgoingEvent] = []
    for item, event, names in zip(items, events, concerned, strict=True):
        mine = states[event.customer_number]
        outcomes = []
        for name in names:
            decision = decide(event, name, mine.get(name))
            mine[name] = decision.current
            entry = LedgerEntry(event, purposes[name], decision)
            entries.append(entry)
            outcomes.append(decision.outcome)
            if decision.outcome == "changed":
                receipts.append((entry, receipt(event, purposes[name], decision)))
                outgoing.append(
                    outbox.OutgoingEvent(
                        CONSENT_EVENTS,
                        event.customer_number,
                        changed_event(event.customer_number, name, decision.current, mine, source),
                        traceparent=item.traceparent,
                    )
                )
        item.span.set_attribute("lampo.consent.outcome", ",".join(outcomes))
    await store.record(entries, receipts)
    await outbox.add(conn, outgoing)


# -- participant ----------------------------------------------------------------------------------


async def access(conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
    """The ledger, the receipts, the current states and any suppression entries per customer number."""
    if CATEGORY not in task.categories:
        return TaskOutcome(result={"participant": PARTICIPANT, "customers": {}})
    store = ConsentStore(conn)
    purposes = await store.purposes()
    customers: dict[str, object] = {}
    for customer in task.subject.customer_numbers:
        current = await store.current([customer], purposes)
        customers[customer] = {
            "category": CATEGORY,
            "current": {
                p: {"state": c.state, "effective_at": c.effective_at.isoformat(), "scope": c.scope}
                for (_, p), c in sorted(current.items())
            },
            "ledger": await store.ledger_of(customer),
            "receipts": await store.receipts_of(customer),
            "suppressions": await store.suppressions_of(customer),
        }
    return TaskOutcome(result={"participant": PARTICIPANT, "customers": customers})


async def erasure(conn: asyncpg.Connection, task: PrivacyTask, clock: Clock, source: str = SOURCE) -> TaskOutcome:
    """Remove the ledger and receipts; keep, for each objection in force, a suppression entry
    (customer number and scope only) so the objection goes on being honoured (GDPR Art. 21).

    Without its ledger the controller can no longer demonstrate a consent (Art. 7(1)), so every
    purpose that was granted is announced as withdrawn; objected purposes stay objected."""
    if CATEGORY not in task.categories or not task.subject.customer_numbers:
        return TaskOutcome()
    store = ConsentStore(conn)
    purposes = await store.purposes()
    customers = sorted(set(task.subject.customer_numbers))
    await store.lock(customers)
    erased = 0
    kept: dict[str, int] = defaultdict(int)
    outgoing: list[outbox.OutgoingEvent] = []
    for customer in customers:
        before = await store.current([customer], purposes)
        ledger_rows, receipt_rows = await store.erase(customer, clock.now())
        erased += ledger_rows + receipt_rows
        after = await store.current([customer], purposes)
        for scope in await store.suppressions_of(customer):
            bases = sorted({p.objection_basis for p in purposes.values() if scope in p.objection_scopes})
            kept["; ".join(bases)] += 1
        states = {p: c for (_, p), c in after.items()}
        for _, purpose in sorted(before):
            now = after.get((customer, purpose))
            if now is None:
                now = Current("withdrawn", clock.now(), "erasure")
            states[purpose] = now
        for (_, purpose), was in sorted(before.items()):
            if was.state != states[purpose].state:
                outgoing.append(
                    outbox.OutgoingEvent(
                        CONSENT_EVENTS, customer, changed_event(customer, purpose, states[purpose], states, source)
                    )
                )
    await outbox.add(conn, outgoing)
    retained = [
        Retained(category=CATEGORY, items=items, legal_basis=basis, until=None) for basis, items in sorted(kept.items())
    ]
    return TaskOutcome(erased={CATEGORY: erased} if erased else {}, retained=retained)


TaskHandler = Callable[[asyncpg.Connection, PrivacyTask], Awaitable[TaskOutcome]]


def inbound_handler(source: str = SOURCE) -> Callable[[asyncpg.Connection, list[Incoming]], Awaitable[None]]:
    async def handle(conn: asyncpg.Connection, items: list[Incoming]) -> None:
        await handle_inbound(conn, items, source)

    return handle


def participant(clock: Clock, source: str = SOURCE) -> Participant:
    async def erase(conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        return await erasure(conn, task, clock, source)

    # purge (retention) removes what an erasure removes, and keeps the same suppressions.
    handlers: dict[str, TaskHandler] = {"access": access, "erasure": erase, "purge": erase}
    return Participant(PARTICIPANT, handlers, source=source)
