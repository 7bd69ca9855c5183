"""The registry as a participant of the privacy protocol (privacy.tasks.v1 -> privacy.acks.v1).

Each handler runs in the task's transaction (``lampo.participant``): its effect, its notices and
its acknowledgement commit together.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg

from lampo.clock import Clock
from lampo.contracts.catalog import REGISTRY_EVENTS
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.privacy import PrivacyTask
from lampo.contracts.registry import SubjectErased
from lampo.crypto import FieldCipher, KeyRing
from lampo.messaging import outbox
from lampo.participant import Items, Participant, Piece, RawItems, TaskFailed, TaskHandler, TaskOutcome
from lampo.registry.domain import (
    HELD_CATEGORIES,
    HELD_TABLES,
    SECTION_CATEGORY,
    InvalidCorrection,
    Provenance,
    SectionUpdate,
    corrected,
    corrected_sections,
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


def make_participant(keys: KeyRing, clock: Clock) -> Participant:
    async def access(conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        wanted = {str(c) for c in task.categories} or {str(c) for c in HELD_CATEGORIES}
        return TaskOutcome(stream=access_pieces(RegistryStore(conn, keys), task, wanted))

    async def erasure(conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        store = RegistryStore(conn, keys)
        categories = [c for c in (task.categories or HELD_CATEGORIES) if c in HELD_CATEGORIES]
        erased: dict[str, int] = {}
        notices: list[outbox.OutgoingEvent] = []
        for subject_id in await store.task_subjects(task.subject.subject_id, task.subject.customer_numbers):
            customers = await store.customers_of(subject_id)
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
        return TaskOutcome(erased=erased)

    async def rectification(conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        corrections = task.corrections
        if corrections is None:
            raise TaskFailed("rectification task without corrections")
        store = RegistryStore(conn, keys)
        now = clock.now()
        notices: list[outbox.OutgoingEvent] = []
        for subject_id in await store.task_subjects(task.subject.subject_id, task.subject.customer_numbers):
            cipher = await store.cipher(subject_id)
            customers = await store.customers_of(subject_id)
            updates: list[tuple[int, str, str, SectionUpdate, Provenance]] = []
            for section in corrected_sections(corrections):
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
            kind = await store.kind_of(subject_id)
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
        return TaskOutcome()

    async def restriction(conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        store = RegistryStore(conn, keys)
        for subject_id in await store.task_subjects(task.subject.subject_id, task.subject.customer_numbers):
            await store.restrict(subject_id)
            # Stored, not used: a derived profile is use, so it goes and is not computed again.
            for customer in await store.customers_of(subject_id):
                await refresh_profile(store, customer, clock)
        return TaskOutcome()

    handlers: dict[str, TaskHandler] = {
        "access": access,
        "erasure": erasure,
        "purge": erasure,
        "rectification": rectification,
        "restriction": restriction,
    }
    return Participant(NAME, handlers, source=SOURCE)
