"""The registry as a participant of the privacy protocol (privacy.tasks.v1 -> privacy.acks.v1).

Each handler runs in the task's transaction (``lampo.participant``): its effect, its notices and
its acknowledgement commit together.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from lampo.clock import Clock
from lampo.contracts.catalog import REGISTRY_EVENTS
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.privacy import Effect, PrivacyTask
from lampo.contracts.registry import SubjectErased
from lampo.crypto import FieldCipher, KeyRing
from lampo.messaging import outbox
from lampo.participant import Items, Participant, Piece, RawItems, TaskFailed, TaskHandler, TaskOutcome
from lampo.registry.domain import (
    DIRECT_MARKETING,
    HELD_CATEGORIES,
    HELD_TABLES,
    NO_AUTOMATED_DECISIONS,
    OBJECTION_PENDING,
    OBJECTION_STATUS,
    PROCESSING,
    PROCESSING_RESTRICTED,
    PROFILING,
    RESTRICTED_ON_REQUEST,
    RESTRICTION_KEPT,
    SECTION_CATEGORY,
    InvalidCorrection,
    Provenance,
    SectionUpdate,
    corrected,
    corrected_sections,
    objection_decided,
    section_fits_kind,
)
from lampo.registry.handlers import SOURCE, apply_section_updates, notice, refresh_profile
from lampo.registry.store import RegistryStore

NAME = "registry"


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _decrypt(cipher: FieldCipher | None, field: str, blob: Any) -> Any:
    if blob is None:
        return None
    if cipher is None:
        return {"unreadable": "the subject's data key has been destroyed"}
    return cipher.decrypt(field, bytes(blob))


# Rows of a held table read and sent per piece: a subject with 50,000 consumption readings is
# never in memory at once, only this many rows of it.
PAGE_ROWS = 2000


_JSON_TYPES = frozenset({str, int, float, bool, type(None)})


def _plain(value: Any) -> Any:
    """A column value as it appears in the result's JSON (``json.dumps(default=str)``'s form)."""
    return value if type(value) in _JSON_TYPES else str(value)


async def access_pieces(store: RegistryStore, task: PrivacyTask, wanted: set[str]) -> AsyncIterator[Piece]:
    """Everything held on the task's subjects, per category, as pieces of a streamed result:
    sections first, then each held table paged through a server-side cursor."""
    for category in HELD_CATEGORIES:
        if str(category) in wanted:
            yield Items((str(category),), [])  # every asked category is in the result, even empty
    for subject_id in await store.task_subjects(task.subject.subject_id, task.subject.customer_numbers):
        cipher = (await store.ciphers([subject_id], create=False)).get(subject_id)
        sections: dict[str, list[dict[str, Any]]] = {}
        for row in await store.section_rows(subject_id):
            if row["category"] not in wanted:
                continue
            text = _decrypt(cipher, row["section"], row["payload"])
            sections.setdefault(row["category"], []).append(
                {
                    "customer_number": row["customer_number"],
                    "section": row["section"],
                    "data": json.loads(text) if isinstance(text, str) else text,
                    "source_system": row["source_system"],
                    "origin": row["origin"],
                    "legal_basis": row["legal_basis"],
                    "updated_at": _plain(row["event_time"]),
                }
            )
        for section_category, items in sections.items():
            yield Items((section_category,), _json(items))
        for table, (table_category, kind, fields) in HELD_TABLES.items():
            if table_category not in wanted:
                continue
            if table == "consumption":  # the heavy one: its items come as JSON from the database
                async for texts in store.consumption_json_pages(subject_id, kind, PAGE_ROWS):
                    yield RawItems((table_category,), texts)
                continue
            async for page in store.held_pages(table, subject_id, PAGE_ROWS):
                items = []
                for r in page:
                    data = {f: v if type(v := r[f]) in _JSON_TYPES else str(v) for f in fields}  # _plain, inline
                    if "summary" in data:
                        data["summary"] = _decrypt(cipher, "interaction.summary", r["summary"])
                    items.append(
                        {
                            "customer_number": r["customer_number"],
                            "kind": kind,
                            "data": data,
                            "source_system": r["source_system"],
                            "origin": r["origin"],
                            "legal_basis": r["legal_basis"],
                            "updated_at": _plain(r["computed_at"] if table == "profiles" else r["event_time"]),
                        }
                    )
                yield Items((table_category,), items)


NOTHING_HELD = Effect(action="nothing_held")
"""The answer of a task about a subject the register holds nothing on: done, nothing changed."""


async def _profiles_announced(
    store: RegistryStore, subject_id: str, customers: list[str], changed: list[str], at: datetime
) -> list[outbox.OutgoingEvent]:
    """``subject.changed`` (category ``services``) for the customers whose profile was deleted or
    computed again."""
    if not changed:
        return []
    kind = await store.kind_of(subject_id)
    return [
        notice(subject_id, c, kind=kind, categories=["services"], origin="subject", changed_at=at, traceparent=None)
        for c in customers
        if c in changed
    ]


async def _delete_profiles(store: RegistryStore, subject_id: str, customers: list[str]) -> list[str]:
    """Delete the subject's derived profiles now, with the customers locked against a concurrent
    profiling run (which then sees the new state and computes nothing). The customers whose
    profile went."""
    await store.lock_customers(customers)
    return [c for c in customers if await store.delete_profiles(customer_number=c)]


def make_participant(keys: KeyRing, clock: Clock) -> Participant:
    async def access(conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        wanted = {str(c) for c in task.categories} or {str(c) for c in HELD_CATEGORIES}
        store = RegistryStore(conn, keys)
        held = await store.task_subjects(task.subject.subject_id, task.subject.customer_numbers)
        # Every asked category is in the result all the same (empty): the package says so.
        return TaskOutcome(stream=access_pieces(store, task, wanted), effects=[] if held else [NOTHING_HELD])

    async def erasure(conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        store = RegistryStore(conn, keys)
        categories = [c for c in (task.categories or HELD_CATEGORIES) if c in HELD_CATEGORIES]
        erased: dict[str, int] = {}
        notices: list[outbox.OutgoingEvent] = []
        subjects = await store.task_subjects(task.subject.subject_id, task.subject.customer_numbers)
        for subject_id in subjects:
            customers = await store.customers_of(subject_id)
            # The consent consumer takes these locks before it writes profiling_consent and
            # deletes profiles; taken here first too, the two wait in line instead of deadlocking
            # (a consent.changed of this very erasure arrives while it runs: 1 s lost each time).
            await store.lock_customers(customers)
            for category in categories:
                count = await store.erase_category(subject_id, str(category))
                if count:
                    erased[str(category)] = erased.get(str(category), 0) + count
            # Unsent notices about the subject go too (they hold ids only, but they are the
            # subject's and would announce data that no longer exists).
            await outbox.purge_subject(conn, subject_id)
            if not await store.holds_anything(subject_id):
                # Nothing left: the customer numbers, links and consent copies go, and the data
                # key is destroyed, so any copy of an encrypted field (a backup) is unreadable.
                await store.forget_subject(subject_id, customers)
                await keys.destroy(conn, subject_id)
            for customer in customers:
                data = SubjectErased(
                    subject_id=subject_id, customer_number=customer, request_id=task.request_id, categories=categories
                )
                # No subject_id on the row: a later purge must not swallow the erasure notice.
                notices.append(
                    outbox.OutgoingEvent(REGISTRY_EVENTS, subject_id, CloudEvent.new("subject.erased", SOURCE, data))
                )
        await outbox.add(conn, notices)
        # Nothing of the asked categories held (an unknown subject, categories kept elsewhere, or
        # erased before): done, nothing changed.
        return TaskOutcome(erased=erased, effects=[] if erased else [NOTHING_HELD])

    async def rectification(conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        corrections = task.corrections
        if corrections is None:
            raise TaskFailed("rectification task without corrections")
        store = RegistryStore(conn, keys)
        now = clock.now()
        notices: list[outbox.OutgoingEvent] = []
        rectified: dict[str, int] = {}
        subjects = await store.task_subjects(task.subject.subject_id, task.subject.customer_numbers)
        for subject_id in subjects:
            cipher = await store.cipher(subject_id)
            customers = await store.customers_of(subject_id)
            kind = await store.kind_of(subject_id)
            updates: list[tuple[int, str, str, SectionUpdate, Provenance]] = []
            for section in corrected_sections(corrections):
                if not section_fits_kind(kind, section):
                    raise TaskFailed(f"corrections.{section}: a subject of kind {kind} has no {section}")
                stored = {c: await store.section_of(c, section) for c in customers}
                held = [c for c, row in stored.items() if row is not None and row["payload"] is not None]
                if section == "contact_person_for" and corrections.contact_person_for is not None:
                    organisation = corrections.contact_person_for.customer_number
                    if organisation is not None and await store.subject_of(organisation) is None:
                        raise TaskFailed(
                            "corrections.contact_person_for.customer_number: no organisation with this number"
                        )
                for customer in held or customers:
                    row = stored[customer]
                    text = None if row is None else _decrypt(cipher, section, row["payload"])
                    before = json.loads(text) if isinstance(text, str) else None
                    try:
                        after = corrected(section, before, corrections)
                    except InvalidCorrection as e:
                        raise TaskFailed(str(e)) from e
                    # Newer than what is stored, so the correction wins over the stored section.
                    at = max(now, row["event_time"] + timedelta(microseconds=1)) if row is not None else now
                    prov = Provenance(
                        "dsar",
                        "subject",
                        row["legal_basis"] if row is not None else "legal_obligation",
                        at,
                        f"rectification:{task.task_id}",
                    )
                    index = customers.index(customer)
                    updates.append(
                        (index, customer, subject_id, SectionUpdate(section, SECTION_CATEGORY[section], after), prov)
                    )
            changed = await apply_section_updates(store, updates)
            for index, _, _, update, _ in updates:
                if update.category in changed.get(index, []):
                    rectified[update.category] = rectified.get(update.category, 0) + 1
            for index, categories in sorted(changed.items()):
                notices.append(
                    notice(
                        subject_id,
                        customers[index],
                        kind=kind,
                        categories=categories,
                        origin="subject",
                        changed_at=now,
                        traceparent=None,
                    )
                )
        await outbox.add(conn, notices)
        effects = [Effect(action="rectified", category=c, items=n, at=now) for c, n in sorted(rectified.items())]
        return TaskOutcome(effects=effects or [NOTHING_HELD])

    async def restriction(conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        """Place a restriction (stored, not used: no profile, no audience, no normal read), or
        with ``lift`` remove the one the subject asked for; profiling may then resume."""
        store = RegistryStore(conn, keys)
        now = clock.now()
        subjects = await store.task_subjects(task.subject.subject_id, task.subject.customer_numbers)
        if not subjects:
            return TaskOutcome(effects=[NOTHING_HELD])
        effects: list[Effect] = []
        notices: list[outbox.OutgoingEvent] = []
        deleted = 0
        for subject_id in subjects:
            customers = await store.customers_of(subject_id)
            if task.lift:
                await store.lock_customers(customers)
                lifted = await store.remove_restriction(subject_id, RESTRICTED_ON_REQUEST)
                if await store.is_restricted(subject_id):
                    effects.append(Effect(action="restriction_kept", legal_basis=RESTRICTION_KEPT))
                    continue
                if not lifted:
                    effects.append(Effect(action="not_restricted"))
                    continue
                profiled = [c for c in customers if await refresh_profile(store, c, clock)]
                notices += await _profiles_announced(store, subject_id, customers, profiled, now)
                effects.append(Effect(action="restriction_lifted", at=now))
                continue
            since = await store.add_restriction(subject_id, RESTRICTED_ON_REQUEST, now, task.request_id)
            # Stored, not used: a derived profile is use, so it goes and is not computed again.
            gone = await _delete_profiles(store, subject_id, customers)
            deleted += len(gone)
            notices += await _profiles_announced(store, subject_id, customers, gone, now)
            effects.append(Effect(action="restricted", at=since))
        if deleted:
            effects.append(Effect(action="profile_deleted", category="services", items=deleted, at=now))
        await outbox.add(conn, notices)
        return TaskOutcome(effects=effects)

    async def objection(conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        """Act on an objection (Art. 21) by its scope. The consent service records it in its
        ledger and announces it on consent.events.v1; the register acts on the task at once, so
        the request completes with what was done even before that announcement arrives."""
        scope = task.scope
        if scope is None:
            raise TaskFailed("scope: an objection task names what is objected to")
        store = RegistryStore(conn, keys)
        now = clock.now()
        subjects = await store.task_subjects(task.subject.subject_id, task.subject.customer_numbers)
        if not subjects:
            return TaskOutcome(effects=[NOTHING_HELD])
        effects: list[Effect] = [Effect(action="objection_recorded", at=now)]
        notices: list[outbox.OutgoingEvent] = []
        deleted = 0
        for subject_id in subjects:
            customers = await store.customers_of(subject_id)
            await store.record_objection(subject_id, scope, OBJECTION_STATUS[scope], now, task.request_id)
            if scope in (PROFILING, DIRECT_MARKETING):
                # The register's copy of the consent state, as the consent service will announce it
                # (a later consent, announced later, supersedes it as any consent state would).
                await store.lock_customers(customers)
                await store.set_consents([(c, scope, "objected", now) for c in customers])
            if scope == PROCESSING:
                await store.add_restriction(subject_id, OBJECTION_PENDING, now, task.request_id)
            if scope in (PROFILING, PROCESSING):
                gone = await _delete_profiles(store, subject_id, customers)
                deleted += len(gone)
                notices += await _profiles_announced(store, subject_id, customers, gone, now)
        if scope in (PROFILING, PROCESSING):
            effects.append(Effect(action="profile_deleted", category="services", items=deleted, at=now))
        if scope == DIRECT_MARKETING:
            effects.append(Effect(action="marketing_suppressed", at=now))
        elif scope == PROCESSING:
            effects.append(Effect(action="processing_restricted", at=now, legal_basis=PROCESSING_RESTRICTED))
        elif scope == "automated_decisions":
            effects.append(Effect(action="nothing_held", legal_basis=NO_AUTOMATED_DECISIONS))
        await outbox.add(conn, notices)
        return TaskOutcome(effects=effects)

    handlers: dict[str, TaskHandler] = {
        "access": access,
        "erasure": erasure,
        "purge": erasure,
        "rectification": rectification,
        "restriction": restriction,
        "objection": objection,
    }

    async def lock_ahead(conn: asyncpg.Connection, tasks: list[PrivacyTask]) -> None:
        """The customers every task of the batch will lock (all but access lock theirs), locked
        first and in one order: an erasure batch that locked its tasks' customers one task
        after another deadlocked with a consent batch that locked the same ones sorted."""
        wanted = [c for t in tasks if t.kind != "access" for c in t.subject.customer_numbers]
        await RegistryStore(conn, keys).lock_customers(wanted)

    return Participant(NAME, handlers, source=SOURCE, lock_ahead=lock_ahead)


async def decide_objection(
    conn: asyncpg.Connection, keys: KeyRing, clock: Clock, customer_number: str, *, upheld: bool
) -> str:
    """Record the controller's decision on the customer's pending objection to processing, in one
    transaction: upheld, the subject stays restricted for good (reason ``objection_upheld``: only
    storage goes on); rejected, the pending restriction goes and profiling may resume where
    consent allows. Returns what happened: ``upheld``, ``rejected``, ``no_customer`` or
    ``not_pending``."""
    async with conn.transaction():
        store = RegistryStore(conn, keys)
        subject_id = await store.subject_of(customer_number)
        if subject_id is None:
            return "no_customer"
        now = clock.now()
        status, standing = objection_decided(upheld)
        if not await store.decide_objection(subject_id, PROCESSING, status, now):
            return "not_pending"
        customers = await store.customers_of(subject_id)
        await store.lock_customers(customers)
        if standing is not None:
            await store.add_restriction(subject_id, standing, now, None)
        await store.remove_restriction(subject_id, OBJECTION_PENDING)
        profiled = [c for c in customers if await refresh_profile(store, c, clock)]
        await outbox.add(conn, await _profiles_announced(store, subject_id, customers, profiled, now))
        return status
