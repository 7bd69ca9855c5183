"""Handlers of the consent service: inbound consents, withdrawals and objections, and the
participant tasks (every kind: access, erasure, purge, rectification, restriction, objection).

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
    Decision,
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
from lampo.contracts.privacy import Effect, PrivacyTask, Retained
from lampo.messaging import outbox
from lampo.messaging.consumer import Incoming
from lampo.participant import Participant, TaskFailed, TaskOutcome

SOURCE = "urn:lampo:consent"
DSAR_SOURCE = "urn:lampo:dsar"
"""The ledger's ``source`` of what a data subject request recorded (an objection task)."""
PARTICIPANT = "consent"


def consent_event(item: Incoming) -> ConsentEvent:
    data = item.event.data
    envelope = item.event.envelope
    if isinstance(data, ConsentGiven | ConsentWithdrawn):
        kind: Kind = "consent.given" if isinstance(data, ConsentGiven) else "consent.withdrawn"
        return ConsentEvent(
            envelope.id, kind, data.customer_number, data.at, envelope.source, data.purpose, None, data.channel
        )
    assert isinstance(data, ObjectionFiled)
    return ConsentEvent(
        envelope.id, "objection.filed", data.customer_number, data.at, envelope.source, None, data.scope, None
    )


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


async def apply_events(
    conn: asyncpg.Connection, events: list[ConsentEvent], traceparents: list[str | None], source: str = SOURCE
) -> list[list[Decision]]:
    """Apply events in the caller's transaction: ledger rows for every event, new states, a
    receipt and a consent.changed (through the outbox) for every change of state. Returns each
    event's decisions. Inbound events and the coordinator's objection tasks both come here, so
    an objection made through a DSAR is recorded and announced exactly like ``objection.filed``."""
    store = ConsentStore(conn)
    purposes = await store.purposes()
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
    decided: list[list[Decision]] = []
    for traceparent, event, names in zip(traceparents, events, concerned, strict=True):
        mine = states[event.customer_number]
        decisions = []
        for name in names:
            decision = decide(event, name, mine.get(name))
            mine[name] = decision.current
            entry = LedgerEntry(event, purposes[name], decision)
            entries.append(entry)
            decisions.append(decision)
            if decision.outcome == "changed":
                receipts.append((entry, receipt(event, purposes[name], decision)))
                outgoing.append(
                    outbox.OutgoingEvent(
                        CONSENT_EVENTS,
                        event.customer_number,
                        changed_event(event.customer_number, name, decision.current, mine, source),
                        traceparent=traceparent,
                    )
                )
        decided.append(decisions)
    await store.record(entries, receipts)
    await outbox.add(conn, outgoing)
    return decided


async def handle_inbound(conn: asyncpg.Connection, items: list[Incoming], source: str = SOURCE) -> None:
    """Apply a batch of inbound events in one transaction (see :func:`apply_events`)."""
    events = [consent_event(item) for item in items]
    decided = await apply_events(conn, events, [item.traceparent for item in items], source)
    for item, decisions in zip(items, decided, strict=True):
        item.span.set_attribute("lampo.consent.outcome", ",".join(d.outcome for d in decisions))


# -- participant ----------------------------------------------------------------------------------


# The ledger, the receipts and the states derived from them are kept because the controller must
# be able to demonstrate consent (GDPR Art. 7(1)): a legal obligation, not data processed on the
# subject's consent or contract, so the coordinator's portability filter leaves them out. The
# entries are the subject's own declarations (origin "subject"); receipts are the controller's.
PROOF_OF_CONSENT = "GDPR Art. 7(1): the controller must be able to demonstrate consent"
PROOF = {"origin": "controller", "legal_basis": "legal_obligation", "legal_basis_reference": PROOF_OF_CONSENT}
SUBJECTS_PROOF = {**PROOF, "origin": "subject"}


async def access(conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
    """The ledger, the receipts, the current states, any suppression entries and the
    restriction, if one stands, per customer number; every block and item says its origin and
    legal basis."""
    if CATEGORY not in task.categories:
        return TaskOutcome(result={"participant": PARTICIPANT, "customers": {}})
    store = ConsentStore(conn)
    purposes = await store.purposes()
    customers: dict[str, object] = {}
    for customer in task.subject.customer_numbers:
        current = await store.current([customer], purposes)
        since = await store.restricted_since(customer)
        customers[customer] = {
            "category": CATEGORY,
            **PROOF,
            "current": {
                p: {"state": c.state, "effective_at": c.effective_at.isoformat(), "scope": c.scope, **SUBJECTS_PROOF}
                for (_, p), c in sorted(current.items())
            },
            "ledger": [{**entry, **SUBJECTS_PROOF} for entry in await store.ledger_of(customer)],
            "receipts": [{**r, **PROOF} for r in await store.receipts_of(customer)],
            "suppressions": await store.suppressions_of(customer),
            "restricted_since": since.isoformat() if since else None,
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


def _nothing_held() -> Effect:
    return Effect(action="nothing_held", category=CATEGORY)


async def rectification(conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
    """The consent service keeps no contact details to follow: a receipt names the customer
    number only (``piiPrincipalId``), never a name, address or e-mail, and the ledger records
    the subject's choices, not facts about them. Nothing changes; the answer says so."""
    return TaskOutcome(effects=[_nothing_held()])


async def restriction(conn: asyncpg.Connection, task: PrivacyTask, clock: Clock) -> TaskOutcome:
    """Art. 18: the customer's consent records stay as they are, but while the restriction
    stands no purpose may use the customer (``may_use``, ``lampo consent check``). ``lift``
    removes it.

    Nothing is announced on consent.events.v1, by choice: ``consent.changed`` can only say
    granted, withdrawn or objected, and each of these has consequences a restriction must not
    have: "withdrawn" starts retention's consent_withdrawn clock, which deletes other_consented
    data within 30 days, whereas a restricted subject's data must be kept (Art. 18(1)(b), (c));
    "objected" is a permanent Art. 21 suppression. The subject's consent did not change. Systems
    that profile stop through their own restriction task (the register's profile) and this
    service's answer; a ``restricted`` extension of ``consent.changed`` would let outside
    profiling systems learn of it too."""
    if CATEGORY not in task.categories:
        return TaskOutcome(effects=[_nothing_held()])
    store = ConsentStore(conn)
    now = clock.now()
    customers = sorted(set(task.subject.customer_numbers))
    await store.lock(customers)
    if task.lift:
        lifted = [c for c in customers if await store.lift_restriction(c)]
        if not lifted:
            return TaskOutcome(effects=[_nothing_held()])
        return TaskOutcome(effects=[Effect(action="restriction_lifted", category=CATEGORY, items=len(lifted), at=now)])
    held = {c: n for c in customers if (n := await store.held_rows(c))}
    if not held:
        return TaskOutcome(effects=[_nothing_held()])
    for customer in held:
        await store.restrict(customer, now, task.request_id)
    return TaskOutcome(effects=[Effect(action="restricted", category=CATEGORY, items=sum(held.values()), at=now)])


async def objection(conn: asyncpg.Connection, task: PrivacyTask, clock: Clock, source: str = SOURCE) -> TaskOutcome:
    """Art. 21 through a DSAR: recorded exactly as an ``objection.filed`` from the CRM would be
    (ledger rows for every purpose its scope covers, receipts, ``consent.changed`` on
    consent.events.v1), so profiling and marketing systems act on it the same way. Recorded even
    for a customer number this service has not seen: the objection must be honoured from now on.
    The event id is the request's, so a repeated or re-planned task records nothing twice."""
    if task.scope is None:
        raise TaskFailed("objection task without a scope")
    now = clock.now()
    customers = sorted(set(task.subject.customer_numbers))
    events = [
        ConsentEvent(f"dsar:{task.request_id}:{c}", "objection.filed", c, now, DSAR_SOURCE, None, task.scope, None)
        for c in customers
    ]
    if not events:
        return TaskOutcome(effects=[_nothing_held()])
    purposes = await ConsentStore(conn).purposes()
    bases = sorted({p.objection_basis for p in purposes.values() if task.scope in p.objection_scopes})
    decided = await apply_events(conn, events, [None] * len(events), source)
    recorded = sum(len(d) for d in decided)
    return TaskOutcome(
        effects=[
            Effect(action="objection_recorded", category=CATEGORY, items=recorded, legal_basis="; ".join(bases), at=now)
        ]
    )


TaskHandler = Callable[[asyncpg.Connection, PrivacyTask], Awaitable[TaskOutcome]]


def inbound_handler(source: str = SOURCE) -> Callable[[asyncpg.Connection, list[Incoming]], Awaitable[None]]:
    async def handle(conn: asyncpg.Connection, items: list[Incoming]) -> None:
        await handle_inbound(conn, items, source)

    return handle


def participant(clock: Clock, source: str = SOURCE) -> Participant:
    """Every task kind: consent answers each, with what it did or why nothing changed."""

    async def erase(conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        return await erasure(conn, task, clock, source)

    async def restrict(conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        return await restriction(conn, task, clock)

    async def object_(conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        return await objection(conn, task, clock, source)

    # purge (retention) removes what an erasure removes, and keeps the same suppressions.
    handlers: dict[str, TaskHandler] = {
        "access": access,
        "erasure": erase,
        "purge": erase,
        "rectification": rectification,
        "restriction": restrict,
        "objection": object_,
    }
    return Participant(PARTICIPANT, handlers, source=source)
