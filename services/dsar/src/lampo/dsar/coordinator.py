"""The coordinator's commands: take a request in, resolve, approve, fan out, aggregate, time out,
retry, extend, cancel. Every change is one database transaction that also writes its events to
the outbox, so a request's state and what the world was told never disagree.

All three intakes (Kafka, CLI, HTTP) call :meth:`Coordinator.submit` (or
:meth:`Coordinator.reject_invalid` for a request that breaks the contract but names its id).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from cryptography.exceptions import InvalidTag
from opentelemetry import context as otel_context
from opentelemetry.trace import Tracer
from pydantic import BaseModel

from lampo.aio import stop_task, wait_event
from lampo.clock import Clock
from lampo.contracts.catalog import DSAR_EVENTS, PRIVACY_TASKS
from lampo.contracts.dsar import (
    DsarAccepted,
    DsarAwaitingApproval,
    DsarCompleted,
    DsarKind,
    DsarOverdue,
    DsarRejected,
    DsarSubmitted,
    Package,
    ParticipantResult,
)
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.privacy import PrivacyAck, PrivacyTask, TaskSubject
from lampo.crypto import KeyDestroyed, KeyRing, new_request_keypair, scratch_file, unseal
from lampo.dsar import domain, package, packages
from lampo.dsar.errors import (
    AlreadyExtended,
    ExtensionTooLate,
    NotAuthorised,
    NotRetriable,
    UnknownRequest,
    UnknownTask,
    WrongState,
)
from lampo.dsar.packages import package_key
from lampo.dsar.resolver import IdentityResolver, RegistryUnavailable, Resolved, Unresolved
from lampo.dsar.settings import DsarSettings
from lampo.dsar.store import DsarStore
from lampo.messaging import outbox
from lampo.participant import is_streamed, join_result, open_part, stream_run
from lampo.tracing import TRACEPARENT, context_from_headers, current_traceparent, trace_id_of

log = logging.getLogger("lampo.dsar")

WAKE_CHANNEL = "dsar_work"
SYSTEM = "system"


def input_key(request_id: str) -> str:
    """KeyRing subject of a request's identifiers and corrections."""
    return f"request:{request_id}"


def result_key(request_id: str) -> str:
    """KeyRing subject of the private key access results are sealed to."""
    return f"result-key:{request_id}"


def _context(traceparent: str | None) -> otel_context.Context | None:
    return context_from_headers({TRACEPARENT: traceparent}) if traceparent else None


class _Building:
    """A package being built while a request's streamed parts arrive: each part that comes in
    order is opened and filed at once (in the ack's transaction), so little is left when the
    last participant answers. Only a head start: the parts are kept in the database too, and
    whatever this does not hold (a restart, a part out of order, another run) is read from
    there when the package is built (:meth:`Coordinator._build_package`)."""

    def __init__(self, private_key: bytes, builder: package.PackageBuilder) -> None:
        self.private_key = private_key
        self.builder = builder
        self.fed: dict[str, tuple[str, int]] = {}  # task -> (run, parts filed)

    def feed(self, task_id: str, participant: str, run: str, part: int, data: str) -> None:
        """File a part if it is the next of the run followed for the task (else leave it)."""
        followed, done = self.fed.get(task_id, (run, 0))
        if followed != run or part != done:
            return
        _file_part(self.builder, participant, self.private_key, data)
        self.fed[task_id] = (run, done + 1)

    def close(self) -> None:
        self.builder.close()


def _file_part(builder: package.PackageBuilder, participant: str, private_key: bytes, data: str) -> None:
    for frame in open_part(private_key, data):
        if frame.items is not None:
            builder.add_items(participant, frame.path, frame.items)
        elif frame.item is not None:
            builder.add_attachment(participant, frame.path, frame.item, frame.data or b"")
        else:
            builder.add_more(participant, frame.data or b"")


# Packages being built at once (each holds temporary files, not data in memory); beyond this the
# oldest is dropped and built from the stored parts when its request completes.
_BUILDING_MAX = 8


class Coordinator:
    def __init__(
        self,
        settings: DsarSettings,
        *,
        keys: KeyRing,
        clock: Clock,
        tracer: Tracer,
        resolver: IdentityResolver,
        pool: Callable[[], asyncpg.Pool],
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.clock = clock
        self.tracer = tracer
        self.resolver = resolver
        self._pool = pool
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None
        self._building: dict[str, _Building | None] = {}  # None: could not be started

    # -- events --------------------------------------------------------------------------------

    def _event(
        self, topic: str, event_type: str, data: BaseModel, request_id: str, traceparent: str | None
    ) -> outbox.OutgoingEvent:
        event = CloudEvent.new(event_type, self.settings.source, data, time=self.clock.now())
        return outbox.OutgoingEvent(topic, request_id, event, traceparent=traceparent)

    async def _emit(
        self, conn: asyncpg.Connection, event_type: str, data: BaseModel, request_id: str, traceparent: str | None
    ) -> None:
        await outbox.add(conn, [self._event(DSAR_EVENTS, event_type, data, request_id, traceparent)])

    async def _move(
        self, store: DsarStore, req: Any, to: str, actor: str, detail: str | None = None, **fields: Any
    ) -> None:
        await store.update_request(req["request_id"], status=to, **fields)
        await store.add_transition(
            req["request_id"], req["status"], to, at=self.clock.now(), actor=actor, detail=detail
        )

    # -- intake --------------------------------------------------------------------------------

    async def submit(
        self, conn: asyncpg.Connection, req: DsarSubmitted, *, actor: str, traceparent: str | None
    ) -> tuple[asyncpg.Record, bool]:
        """Take a request in: (the request, True) when new; (the existing one, False) for a
        request_id already known, which is answered again as it was (no second request)."""
        store = DsarStore(conn)
        existing = await store.request(req.request_id, lock=True)
        if existing is not None:
            await self._answer_duplicate(store, existing, actor)
            return existing, False
        sealed: bytes | None = None
        if req.verification is not None:
            cipher = await self.keys.cipher(conn, input_key(req.request_id), create=True)
            payload = {
                "identifiers": req.identifiers.model_dump(mode="json", exclude_none=True),
                "corrections": req.corrections.model_dump(mode="json", exclude_none=True) if req.corrections else None,
            }
            sealed = cipher.encrypt("input", json.dumps(payload))
        created = await store.insert_request(
            request_id=req.request_id,
            kind=req.kind,
            status=domain.RECEIVED,
            channel=req.channel,
            verification=req.verification.model_dump(mode="json") if req.verification else None,
            categories=[str(c) for c in req.categories] if req.categories else None,
            sealed_input=sealed,
            received_at=req.received_at,
            due_at=domain.due_at(req.received_at),
            traceparent=traceparent,
            next_resolve_at=self.clock.now() if sealed is not None else None,
        )
        if not created:  # a concurrent intake of the same id won
            row = await store.request(req.request_id, lock=True)
            assert row is not None
            await self._answer_duplicate(store, row, actor)
            return row, False
        await store.add_transition(
            req.request_id, None, domain.RECEIVED, at=self.clock.now(), actor=actor, detail=f"channel {req.channel}"
        )
        row = await store.request(req.request_id, lock=True)
        assert row is not None
        if req.verification is None:
            await self._reject(
                conn, row, "unverified", "verification: missing; the requester must be verified first", SYSTEM
            )
        else:
            await conn.execute(f"NOTIFY {WAKE_CHANNEL}")
        final = await store.request(req.request_id)
        assert final is not None
        return final, True

    async def reject_invalid(
        self,
        conn: asyncpg.Connection,
        *,
        request_id: str,
        kind: str,
        reason: str,
        detail: str,
        channel: str,
        actor: str,
        traceparent: str | None,
    ) -> tuple[asyncpg.Record, bool]:
        """A request that breaks the contract but whose request_id can be read: stored as
        rejected (``invalid``) so that it is answered, and answered the same way if sent again."""
        store = DsarStore(conn)
        existing = await store.request(request_id, lock=True)
        if existing is not None:
            await self._answer_duplicate(store, existing, actor)
            return existing, False
        now = self.clock.now()
        known_kinds = ("access", "portability", "erasure", "rectification", "restriction", "objection")
        created = await store.insert_request(
            request_id=request_id,
            kind=kind if kind in known_kinds else "unknown",
            status=domain.RECEIVED,
            channel=channel,
            verification=None,
            categories=None,
            sealed_input=None,
            received_at=now,
            due_at=domain.due_at(now),
            traceparent=traceparent,
            next_resolve_at=None,
        )
        row = await store.request(request_id, lock=True)
        assert row is not None
        if not created:
            await self._answer_duplicate(store, row, actor)
            return row, False
        await store.add_transition(request_id, None, domain.RECEIVED, at=now, actor=actor, detail=f"channel {channel}")
        row = await store.request(request_id, lock=True)
        assert row is not None
        await self._reject(conn, row, "invalid", f"{detail} ({reason})", SYSTEM)
        final = await store.request(request_id)
        assert final is not None
        return final, True

    async def _answer_duplicate(self, store: DsarStore, req: asyncpg.Record, actor: str) -> None:
        rid, status, tp = req["request_id"], req["status"], req["traceparent"]
        await store.add_transition(
            rid,
            status,
            status,
            at=self.clock.now(),
            actor=actor,
            detail="duplicate request_id: answered with the existing request",
        )
        if status == domain.REJECTED:
            await self._emit(
                store.conn,
                "dsar.rejected",
                DsarRejected(request_id=rid, reason=req["reject_reason"], detail=req["reject_detail"]),
                rid,
                tp,
            )
        elif status == domain.AWAITING_APPROVAL:
            await self._emit(
                store.conn, "dsar.awaiting_approval", DsarAwaitingApproval(request_id=rid, kind=req["kind"]), rid, tp
            )
        elif status in (domain.ACCEPTED, domain.IN_PROGRESS):
            participants = [t["participant"] for t in await store.tasks(rid)]
            accepted = DsarAccepted(request_id=rid, kind=req["kind"], due_at=req["due_at"], participants=participants)
            await self._emit(store.conn, "dsar.accepted", accepted, rid, tp)
        elif req["completion"] is not None:
            await self._emit(store.conn, "dsar.completed", DsarCompleted.model_validate(req["completion"]), rid, tp)

    async def _reject(
        self, conn: asyncpg.Connection, req: asyncpg.Record, reason: str, detail: str, actor: str
    ) -> None:
        store = DsarStore(conn)
        await self._move(
            store,
            req,
            domain.REJECTED,
            actor,
            f"{reason}: {detail}",
            reject_reason=reason,
            reject_detail=detail,
            sealed_input=None,
            next_resolve_at=None,
        )
        rejected = DsarRejected(request_id=req["request_id"], reason=reason, detail=detail)
        await self._emit(conn, "dsar.rejected", rejected, req["request_id"], req["traceparent"])
        await self.keys.destroy(conn, input_key(req["request_id"]))

    # -- identity ------------------------------------------------------------------------------

    async def resolve_due(self, limit: int = 500) -> int:
        """Resolve waiting requests through the registry; a registry that does not answer makes
        them wait and try again with backoff. Returns how many were looked at."""
        now = self.clock.now()
        work: list[tuple[str, dict[str, str] | None]] = []
        async with self._pool().acquire() as conn:
            for row in await DsarStore(conn).due_for_resolution(now, limit):
                identifiers = None
                if row["sealed_input"] is not None:
                    try:
                        cipher = await self.keys.cipher(conn, input_key(row["request_id"]))
                        identifiers = json.loads(cipher.decrypt("input", bytes(row["sealed_input"])) or "{}")[
                            "identifiers"
                        ]
                    except KeyDestroyed:
                        identifiers = None
                work.append((row["request_id"], identifiers))
        if not work:
            return 0
        gate = asyncio.Semaphore(max(1, self.settings.resolve_concurrency))

        async def one(request_id: str, identifiers: dict[str, str] | None) -> None:
            async with gate:
                outcome: Resolved | Unresolved | RegistryUnavailable
                if identifiers is None:
                    outcome = Unresolved("invalid", "identifiers: none stored for this request")
                else:
                    try:
                        outcome = await self.resolver.resolve(identifiers)
                    except RegistryUnavailable as e:
                        outcome = e
                async with self._pool().acquire() as conn, conn.transaction():
                    await self.apply_resolution(conn, request_id, outcome)

        await asyncio.gather(*(one(rid, ids) for rid, ids in work))
        return len(work)

    async def apply_resolution(
        self, conn: asyncpg.Connection, request_id: str, outcome: Resolved | Unresolved | RegistryUnavailable
    ) -> None:
        store = DsarStore(conn)
        req = await store.request(request_id, lock=True)
        if req is None or req["status"] != domain.RECEIVED:
            return
        now = self.clock.now()
        if isinstance(outcome, RegistryUnavailable):
            attempts = req["resolve_attempts"] + 1
            delay = min(self.settings.resolve_backoff_s * 2 ** (attempts - 1), self.settings.resolve_backoff_max_s)
            await store.update_request(
                request_id,
                resolve_attempts=attempts,
                resolve_error=f"registry unavailable ({outcome}); attempt {attempts}",
                next_resolve_at=now + timedelta(seconds=delay),
            )
            log.warning("dsar %s: registry unavailable (%s); retrying in %.1fs", request_id, outcome, delay)
            return
        if isinstance(outcome, Unresolved):
            await self._reject(conn, req, outcome.reason, outcome.detail, SYSTEM)
            return
        resolved: dict[str, Any] = {
            "subject_id": outcome.subject_id,
            "customer_numbers": outcome.customer_numbers,
            "subject_kind": outcome.kind,
            "resolve_error": None,
            "next_resolve_at": None,
        }
        await store.update_request(request_id, **resolved)
        req = {**dict(req), **resolved}  # the row is locked: this is what it now holds
        kind: DsarKind = req["kind"]
        if req["approved_by"] is None and domain.needs_approval(
            kind, self.settings.approval_required, self.settings.auto_approve
        ):
            await self._move(store, req, domain.AWAITING_APPROVAL, SYSTEM, "subject resolved; waiting for approval")
            await self._emit(
                conn,
                "dsar.awaiting_approval",
                DsarAwaitingApproval(request_id=request_id, kind=kind),
                request_id,
                req["traceparent"],
            )
            return
        await self._accept(conn, req, req["approved_by"] or SYSTEM)

    # -- approval ------------------------------------------------------------------------------

    def _check_approver(self, name: str, field: str) -> None:
        if self.settings.approvers and name not in self.settings.approvers:
            raise NotAuthorised(field)

    async def approve(self, conn: asyncpg.Connection, request_id: str, *, by: str, at: datetime) -> asyncpg.Record:
        store = DsarStore(conn)
        req = await store.request(request_id, lock=True)
        if req is None:
            raise UnknownRequest()
        self._check_approver(by, "approved_by")
        if req["approved_by"] is not None:
            return req  # approved already: a repeated approval changes nothing
        if req["status"] == domain.AWAITING_APPROVAL:
            await store.update_request(request_id, approved_by=by, approved_at=at)
            req = await store.request(request_id, lock=True)
            assert req is not None
            await self._accept(conn, req, by, "approved")
        elif req["status"] == domain.RECEIVED:
            await store.update_request(request_id, approved_by=by, approved_at=at)
            await store.add_transition(
                request_id,
                req["status"],
                req["status"],
                at=self.clock.now(),
                actor=by,
                detail="approved before identity resolution",
            )
        else:
            raise WrongState("approve", req["status"])
        row = await store.request(request_id)
        assert row is not None
        return row

    async def deny(self, conn: asyncpg.Connection, request_id: str, *, by: str, reason: str) -> asyncpg.Record:
        store = DsarStore(conn)
        req = await store.request(request_id, lock=True)
        if req is None:
            raise UnknownRequest()
        self._check_approver(by, "denied_by")
        if req["status"] not in (domain.AWAITING_APPROVAL, domain.RECEIVED) or req["approved_by"] is not None:
            if req["status"] == domain.REJECTED and req["denied_by"] is not None:
                return req  # denied already
            raise WrongState("deny", req["status"])
        await store.update_request(request_id, denied_by=by, denial_reason=reason)
        await self._reject(conn, req, "denied", reason, by)
        row = await store.request(request_id)
        assert row is not None
        return row

    # -- plan and fan-out ----------------------------------------------------------------------

    async def _accept(self, conn: asyncpg.Connection, req: Any, actor: str, detail: str | None = None) -> None:
        store = DsarStore(conn)
        rid = req["request_id"]
        kind: DsarKind = req["kind"]
        holds = await store.holds_for(req["customer_numbers"] or []) if kind == "erasure" else []
        planned = domain.plan(
            kind,
            req["categories"],
            participants=self.settings.participants,
            participant_categories=self.settings.participant_categories,
            objection_participant=self.settings.objection_participant,
            holds=holds,
        )
        fields: dict[str, Any] = {}
        if kind in domain.PACKAGE_KINDS:
            private, public = new_request_keypair()
            cipher = await self.keys.cipher(conn, result_key(rid), create=True)
            fields = {"result_public_key": public, "sealed_private_key": cipher.encrypt("private_key", private)}
        await self._move(store, req, domain.ACCEPTED, actor, detail, **fields)
        accepted = DsarAccepted(
            request_id=rid, kind=kind, due_at=req["due_at"], participants=[t.participant for t in planned]
        )
        # The request as it now stands (the row is locked: nobody else changed it).
        current: dict[str, Any] = {**dict(req), **fields, "status": domain.ACCEPTED}
        now = self.clock.now()
        timeout = timedelta(seconds=domain.task_timeout_s(self.settings.task_timeout_s, 1))
        rows: list[dict[str, Any]] = []
        events = [self._event(DSAR_EVENTS, "dsar.accepted", accepted, rid, req["traceparent"])]
        for t in planned:
            task_id = uuid.uuid4().hex
            retained = [r.model_dump(mode="json") for r in t.hold_retained]
            if not t.send:
                rows.append(
                    dict(
                        task_id=task_id, request_id=rid, participant=t.participant, kind=t.kind, categories=[],
                        status=domain.TASK_DONE, attempt=1, sent_at=now, timeout_at=now, hold_retained=retained,
                        finished_at=now,
                    )
                )  # fmt: skip
                continue
            rows.append(
                dict(
                    task_id=task_id, request_id=rid, participant=t.participant, kind=t.kind, categories=t.categories,
                    status=domain.TASK_OPEN, attempt=1, sent_at=now, timeout_at=now + timeout, hold_retained=retained,
                    finished_at=None,
                )
            )  # fmt: skip
            events.append(
                await self._task_event(
                    conn, current, task_id=task_id, participant=t.participant, kind=t.kind, categories=t.categories,
                    attempt=1,
                )
            )  # fmt: skip
        await store.insert_tasks(rows)
        # dsar.accepted and every task in one outbox write (in that order: one NOTIFY).
        await outbox.add(conn, events)
        sent = sum(1 for t in planned if t.send)
        await self._move(store, current, domain.IN_PROGRESS, SYSTEM, f"{sent} task(s) sent")
        if not sent:  # everything held back: nothing to wait for
            await self._maybe_complete(conn, rid)

    async def _send_task(
        self,
        conn: asyncpg.Connection,
        req: Any,
        *,
        task_id: str,
        participant: str,
        kind: str,
        categories: list[str],
        attempt: int,
    ) -> None:
        """Write the task to the outbox (see :meth:`_task_event`)."""
        event = await self._task_event(
            conn, req, task_id=task_id, participant=participant, kind=kind, categories=categories, attempt=attempt
        )
        await outbox.add(conn, [event])

    async def _task_event(
        self,
        conn: asyncpg.Connection,
        req: Any,
        *,
        task_id: str,
        participant: str,
        kind: str,
        categories: list[str],
        attempt: int,
    ) -> outbox.OutgoingEvent:
        """The task as an outbox row, made inside a span of its own in the request's trace; the
        participant's work and its ack continue that span's context."""
        rid = req["request_id"]
        corrections = None
        if kind == "rectification" and req["sealed_input"] is not None:
            cipher = await self.keys.cipher(conn, input_key(rid))
            corrections = json.loads(cipher.decrypt("input", bytes(req["sealed_input"])) or "{}").get("corrections")
        attributes: dict[str, str | int] = {
            "lampo.request_id": rid,
            "lampo.task_id": task_id,
            "lampo.participant": participant,
            "lampo.task.kind": kind,
            "lampo.task.attempt": attempt,
        }
        with self.tracer.start_as_current_span(
            f"dsar task {participant}", context=_context(req["traceparent"]), attributes=attributes
        ):
            task = PrivacyTask.model_validate(
                {
                    "request_id": rid,
                    "task_id": task_id,
                    "participant": participant,
                    "kind": kind,
                    "subject": TaskSubject(
                        subject_id=req["subject_id"], customer_numbers=req["customer_numbers"] or []
                    ),
                    "categories": categories,
                    "attempt": attempt,
                    "deadline": req["due_at"],
                    "result_key": req["result_public_key"],
                    "corrections": corrections,
                }
            )
            event = CloudEvent.new("privacy.task", self.settings.source, task, time=self.clock.now())
            return outbox.OutgoingEvent(
                PRIVACY_TASKS, rid, event, subject_id=req["subject_id"], traceparent=current_traceparent()
            )

    # -- acks ----------------------------------------------------------------------------------

    async def on_ack(self, conn: asyncpg.Connection, ack: PrivacyAck, event_id: str) -> str:
        """Apply one participant's answer (see :meth:`on_acks`)."""
        [outcome] = await self.on_acks(conn, [(ack, event_id)])
        return outcome

    async def on_acks(self, conn: asyncpg.Connection, acks: list[tuple[PrivacyAck, str]]) -> list[str]:
        """Apply a batch of participants' answers (ack, its event id), in order; one outcome each:
        "applied", "partial" (a part of a large result; the task waits for the rest), "ignored"
        (the task was already final: a late answer, kept as a record) or "not_ours" (another
        sender's request). An unknown task of one of our requests raises ``UnknownTask``
        (dead-lettered).

        Batch-shaped: the batch's tasks are read in one query, its requests locked in one (in
        request_id order, then their tasks), and each request touched is checked for completion
        once, after all its acks: a fixed handful of round trips per request, not per ack.
        privacy.acks.v1 also carries other senders' answers, which cost one lookup per batch."""
        store = DsarStore(conn)
        tasks = await store.tasks_by_id([ack.task_id for ack, _ in acks])
        unknown = {ack.request_id for ack, _ in acks if ack.task_id not in tasks}
        ours = await store.existing_requests(unknown) if unknown else set()
        outcomes: list[str | None] = []
        for ack, _ in acks:
            task = tasks.get(ack.task_id)
            if task is None:
                if ack.request_id not in ours:
                    # Not a request of ours: privacy.acks.v1 also carries the answers to other
                    # senders' tasks (retention's purges). Skipped, not dead-lettered.
                    outcomes.append("not_ours")
                    continue
                raise UnknownTask()
            if task["request_id"] != ack.request_id or task["participant"] != ack.participant:
                raise UnknownTask("data.task_id: belongs to another request or participant")
            outcomes.append(None)
        mine = [(i, ack, event_id) for i, (ack, event_id) in enumerate(acks) if outcomes[i] is None]
        if not mine:
            return [o or "not_ours" for o in outcomes]
        await store.lock_requests([ack.request_id for _, ack, _ in mine])
        locked = await store.tasks_by_id([ack.task_id for _, ack, _ in mine], lock=True)
        now = self.clock.now()
        finished: list[str] = []  # requests with a task made final here, in order of first ack
        for i, ack, event_id in mine:
            task = locked[ack.task_id]
            if task["status"] != domain.TASK_OPEN:
                await store.record_ignored_ack(
                    event_id=event_id, task_id=ack.task_id, request_id=ack.request_id, participant=ack.participant,
                    ack_status=ack.status, task_status=task["status"], at=now,
                )  # fmt: skip
                outcomes[i] = "ignored"
                continue
            sealed = ack.result
            streamed: dict[str, Any] = {}
            if ack.result is not None and is_streamed(ack.result):
                # A streamed result: each part is kept as it comes (and filed into the package
                # being built, if it comes in order); the task is done once every part of one
                # run is there (its last part names the total). Runs are never mixed: a task
                # read again (after a retry) sends a new run, and the first whole one wins.
                run = stream_run(ack.result)
                part = ack.result_part or 0
                whole = await store.add_streamed_part(ack.task_id, run, part, ack.result, ack.result_parts)
                await self._feed(store, task, run, part, ack.result)
                if not whole:
                    outcomes[i] = "partial"  # the task stays open until its last part arrives
                    continue
                sealed = None
                streamed = {"result_run": run, "result_parts": ack.result_parts or part + 1}
                await store.drop_result_parts(ack.task_id, keep_run=run)
            elif ack.result_parts is not None and ack.result_parts > 1 and ack.result is not None:
                if await store.add_result_part(ack.task_id, ack.result_part or 0, ack.result) < ack.result_parts:
                    outcomes[i] = "partial"  # the task stays open until its last part arrives
                    continue
                sealed = join_result(await store.result_parts(ack.task_id), ack.result_parts)
                await store.drop_result_parts(ack.task_id)
            else:
                await store.drop_result_parts(ack.task_id)  # a failed task's parts sent before it failed
            status = domain.TASK_DONE if ack.status == "done" else domain.TASK_FAILED
            await store.update_task(
                ack.task_id,
                status=status,
                finished_at=now,
                error=ack.error if ack.status == "failed" else None,
                erased={str(k): v for k, v in ack.erased.items()},
                retained=[r.model_dump(mode="json") for r in ack.retained],
                sealed_result=sealed,
                **streamed,
            )
            locked[ack.task_id] = {**dict(task), "status": status}  # a repeated ack later in the batch is late
            outcomes[i] = "applied"
            if ack.request_id not in finished:
                finished.append(ack.request_id)
        for request_id in finished:
            await self._maybe_complete(conn, request_id)
        return [o or "not_ours" for o in outcomes]

    async def _feed(self, store: DsarStore, task: Any, run: str, part: int, data: str) -> None:
        """File a streamed part into its request's package being built (started at its first
        part); any failure here only means the package is built from the stored parts later."""
        request_id = task["request_id"]
        if request_id not in self._building:
            self._building[request_id] = await self._start_building(store, request_id)
            while len(self._building) > _BUILDING_MAX:
                dropped = self._building.pop(next(iter(self._building)))
                if dropped is not None:
                    dropped.close()
        building = self._building[request_id]
        if building is None:
            return
        try:
            building.feed(task["task_id"], task["participant"], run, part, data)
        except (InvalidTag, ValueError, KeyError, TypeError):
            # Left for the build from the stored parts, which names the participant failed.
            building.close()
            self._building[request_id] = None

    async def _start_building(self, store: DsarStore, request_id: str) -> _Building | None:
        req = await store.request(request_id)
        if req is None or req["sealed_private_key"] is None or req["kind"] not in domain.PACKAGE_KINDS:
            return None
        try:
            cipher = await self.keys.cipher(store.conn, result_key(request_id))
        except KeyDestroyed:
            return None
        private = cipher.decrypt_bytes("private_key", req["sealed_private_key"])
        if private is None:
            return None
        builder = package.PackageBuilder(
            participant_categories=self.settings.participant_categories, portability=req["kind"] == "portability"
        )
        return _Building(private, builder)

    def _stop_building(self, request_id: str) -> _Building | None:
        building = self._building.pop(request_id, None)
        return building

    async def _maybe_complete(self, conn: asyncpg.Connection, request_id: str) -> None:
        store = DsarStore(conn)
        req = await store.request(request_id, lock=True)
        if req is None or req["status"] != domain.IN_PROGRESS:
            return
        tasks = await store.tasks(request_id)
        if any(t["status"] == domain.TASK_OPEN for t in tasks):
            return
        results = {
            t["participant"]: ParticipantResult.model_validate(
                {
                    "status": "done" if t["status"] == domain.TASK_DONE else "failed",
                    "erased": t["erased"],
                    "retained": [*t["hold_retained"], *t["retained"]],
                    "error": t["error"],
                }
            )
            for t in tasks
        }
        if req["kind"] == "erasure":  # the coordinator's own copies: every package of the subject goes
            destroyed = await packages.destroy_for_erasure(conn, self.keys, req, self.clock.now())
            if destroyed is not None:
                results[packages.COORDINATOR] = destroyed
        status = domain.completion_status(results)
        now = self.clock.now()
        with self.tracer.start_as_current_span(
            "dsar complete", context=_context(req["traceparent"]), attributes={"lampo.request_id": request_id}
        ):
            pkg = None
            if req["kind"] in domain.PACKAGE_KINDS and status != "failed":
                pkg, results = await self._build_package(conn, req, tasks, results, now)
                status = domain.completion_status(results)
            completion = DsarCompleted(
                request_id=request_id,
                kind=req["kind"],
                status=status,
                due_at=req["due_at"],
                completed_at=now,
                trace_id=trace_id_of(req["traceparent"]),
                results=results,
                package=pkg,
            )
            detail = ", ".join(f"{p} failed: {r.error}" for p, r in results.items() if r.status == "failed") or None
            # A finished request keeps no identifiers (a failed one may still be retried).
            forget: dict[str, Any] = {"sealed_input": None} if status != "failed" else {}
            await self._move(
                store, req, status, SYSTEM, detail, completed_at=now, completion=completion.model_dump(mode="json"),
                **forget,
            )  # fmt: skip
            await self._emit(conn, "dsar.completed", completion, request_id, current_traceparent())
        if status != "failed":
            await self.keys.destroy(conn, input_key(request_id))
        building = self._stop_building(request_id)  # a failed request's head start, if any
        if building is not None:
            building.close()

    async def _build_package(
        self,
        conn: asyncpg.Connection,
        req: asyncpg.Record,
        tasks: list[asyncpg.Record],
        results: dict[str, ParticipantResult],
        now: datetime,
    ) -> tuple[Package | None, dict[str, ParticipantResult]]:
        rid = req["request_id"]
        store = DsarStore(conn)
        private: bytes | None = None
        try:
            private = (await self.keys.cipher(conn, result_key(rid))).decrypt_bytes(
                "private_key", req["sealed_private_key"]
            )
        except KeyDestroyed:
            private = None
        building = self._stop_building(rid)
        current = {t["task_id"]: t["result_run"] for t in tasks}
        if building is not None and any(current.get(task_id) != run for task_id, (run, _) in building.fed.items()):
            building.close()  # it followed a run (or task) that is not the result: start afresh
            building = None
        if building is None:
            builder = package.PackageBuilder(
                participant_categories=self.settings.participant_categories, portability=req["kind"] == "portability"
            )
            fed: dict[str, tuple[str, int]] = {}
        else:
            builder, fed = building.builder, building.fed
        with builder:
            for t in tasks:
                if t["sealed_result"] is None and t["result_run"] is None:
                    continue
                try:
                    if private is None:
                        raise ValueError("the request's result key is gone")
                    await self._add_result(store, builder, private, t, fed.get(t["task_id"], ("", 0))[1])
                except (InvalidTag, ValueError, KeyError, TypeError) as e:
                    results = dict(results)
                    results[t["participant"]] = ParticipantResult(
                        status="failed", error=f"result could not be opened: {type(e).__name__}"
                    )
            if any(r.status == "failed" for r in results.values()):
                return None, results
            facts = {
                p: {"status": r.status, "task_kind": next((t["kind"] for t in tasks if t["participant"] == p), None)}
                for p, r in results.items()
            }
            request = {
                "request_id": rid,
                "kind": req["kind"],
                "received_at": req["received_at"].isoformat(),
                "due_at": req["due_at"].isoformat(),
                "completed_at": now.isoformat(),
                "subject_id": req["subject_id"],
                "customer_numbers": req["customer_numbers"],
                "requested_categories": req["categories"] or "all",
            }
            with scratch_file() as out:
                files = builder.finish(out, request=request, participants=facts)
                size = out.tell()
                digest = hashlib.sha256()
                for chunk in package.chunks(out):
                    digest.update(chunk)
                cipher = await self.keys.cipher(conn, package_key(rid), create=True)
                encrypted = (cipher.encrypt(f"package:{n}", c) or b"" for n, c in enumerate(package.chunks(out)))
                await store.save_package(rid, encrypted, digest.hexdigest(), size, now)
                expires_at = await packages.register(conn, self.settings, req, files, now)  # subject, expiry
        # The package is built: the request's private key and the sealed results go.
        await self.keys.destroy(conn, result_key(rid))
        await store.update_request(rid, sealed_private_key=None)
        await store.clear_results(rid)
        uri = packages.package_uri(self.settings, rid)
        return Package(uri=uri, sha256=digest.hexdigest(), expires_at=expires_at), results

    @staticmethod
    async def _add_result(
        store: DsarStore, builder: package.PackageBuilder, private: bytes, task: asyncpg.Record, filed: int = 0
    ) -> None:
        """One participant's result into the package: a streamed one part by part (one part in
        memory at a time) from the first not yet ``filed``, a whole one at once."""
        participant = task["participant"]
        if task["result_run"] is None:
            builder.add_result(participant, json.loads(unseal(private, task["sealed_result"])))
            return
        for n in range(filed, task["result_parts"]):
            part = await store.result_part(task["task_id"], task["result_run"], n)
            if part is None:
                raise ValueError(f"result part {n} is missing")
            _file_part(builder, participant, private, part)

    async def read_package(self, conn: asyncpg.Connection, request_id: str) -> bytes | None:
        row = await DsarStore(conn).package(request_id)
        if row is None:
            return None
        try:
            cipher = await self.keys.cipher(conn, package_key(request_id))
        except KeyDestroyed:
            return None
        if row["blob"] is not None:  # stored whole (before packages were stored in chunks)
            return cipher.decrypt_bytes("package", bytes(row["blob"]))
        chunks = await DsarStore(conn).package_chunks(request_id)
        return b"".join(cipher.decrypt_bytes(f"package:{n}", c) or b"" for n, c in enumerate(chunks))

    # -- timeouts, retries, deadlines ----------------------------------------------------------

    async def check_timeouts(self, limit: int = 500) -> int:
        """Send again each task whose wait is over (same task_id, attempt + 1, a doubled wait),
        or fail it, naming the participant, after the last attempt."""
        now = self.clock.now()
        async with self._pool().acquire() as conn:
            due = await DsarStore(conn).timed_out(now, limit)
        for row in due:
            async with self._pool().acquire() as conn, conn.transaction():
                await self._time_out(conn, row["task_id"], row["request_id"], now)
        return len(due)

    async def _time_out(self, conn: asyncpg.Connection, task_id: str, request_id: str, now: datetime) -> None:
        store = DsarStore(conn)
        req = await store.request(request_id, lock=True)
        task = await store.task(task_id, lock=True)
        if req is None or task is None or task["status"] != domain.TASK_OPEN or task["timeout_at"] > now:
            return
        participant, attempt = task["participant"], task["attempt"]
        if attempt < self.settings.task_max_attempts:
            wait = timedelta(seconds=domain.task_timeout_s(self.settings.task_timeout_s, attempt + 1))
            await store.update_task(task_id, attempt=attempt + 1, sent_at=now, timeout_at=now + wait)
            await store.add_transition(
                request_id,
                req["status"],
                req["status"],
                at=now,
                actor=SYSTEM,
                detail=f"{participant}: no answer to attempt {attempt}; sent attempt {attempt + 1}",
            )
            await self._send_task(
                conn,
                req,
                task_id=task_id,
                participant=participant,
                kind=task["kind"],
                categories=list(task["categories"]),
                attempt=attempt + 1,
            )
            return
        error = f"{participant}: no answer after {attempt} attempts"
        await store.update_task(task_id, status=domain.TASK_FAILED, finished_at=now, error=error)
        await self._maybe_complete(conn, request_id)

    async def check_overdue(self, limit: int = 500) -> int:
        """Publish dsar.overdue, once, for each request past its deadline unanswered."""
        now = self.clock.now()
        async with self._pool().acquire() as conn:
            ids = await DsarStore(conn).overdue(now, limit)
        for request_id in ids:
            async with self._pool().acquire() as conn, conn.transaction():
                store = DsarStore(conn)
                req = await store.request(request_id, lock=True)
                if (
                    req is None
                    or req["overdue_at"] is not None
                    or req["due_at"] > now
                    or req["status"] not in domain.UNANSWERED_STATUSES
                ):
                    continue
                await store.update_request(request_id, overdue_at=now)
                await store.add_transition(
                    request_id,
                    req["status"],
                    req["status"],
                    at=now,
                    actor=SYSTEM,
                    detail="overdue: the deadline passed unanswered",
                )
                await self._emit(
                    conn,
                    "dsar.overdue",
                    DsarOverdue(request_id=request_id, due_at=req["due_at"]),
                    request_id,
                    req["traceparent"],
                )
        return len(ids)

    async def tick(self) -> None:
        """One round of the checker (tests call it after moving a ManualClock)."""
        while await self.resolve_due() >= 500:
            pass
        await self.check_timeouts()
        await self.check_overdue()

    # -- operator commands ---------------------------------------------------------------------

    async def retry(self, conn: asyncpg.Connection, request_id: str, participant: str, *, by: str) -> str:
        """Send a failed participant's task again as a new task (new task_id, next attempt),
        leaving every other participant's answer as it is. Returns the new task_id."""
        store = DsarStore(conn)
        req = await store.request(request_id, lock=True)
        if req is None:
            raise UnknownRequest()
        if req["status"] not in (domain.FAILED, domain.IN_PROGRESS):
            raise WrongState("retry a participant of", req["status"])
        task = next((t for t in await store.tasks(request_id) if t["participant"] == participant), None)
        if task is None:
            raise NotRetriable("participant: has no task in this request")
        if task["status"] != domain.TASK_FAILED:
            raise NotRetriable(f"participant: its task is {task['status']}, not failed")
        now = self.clock.now()
        await store.update_task(task["task_id"], status=domain.TASK_SUPERSEDED, current=False)
        new_id = uuid.uuid4().hex
        attempt = task["attempt"] + 1
        wait = timedelta(seconds=domain.task_timeout_s(self.settings.task_timeout_s, 1))
        await store.insert_task(
            task_id=new_id, request_id=request_id, participant=participant, kind=task["kind"],
            categories=list(task["categories"]), status=domain.TASK_OPEN, attempt=attempt, sent_at=now,
            timeout_at=now + wait, hold_retained=task["hold_retained"],
        )  # fmt: skip
        detail = f"operator retry of {participant} (attempt {attempt})"
        if req["status"] == domain.FAILED:
            await self._move(store, req, domain.IN_PROGRESS, by, detail, completed_at=None)
        else:
            await store.add_transition(request_id, req["status"], req["status"], at=now, actor=by, detail=detail)
        req = await store.request(request_id, lock=True)
        assert req is not None
        await self._send_task(
            conn,
            req,
            task_id=new_id,
            participant=participant,
            kind=task["kind"],
            categories=list(task["categories"]),
            attempt=attempt,
        )
        return new_id

    async def extend(self, conn: asyncpg.Connection, request_id: str, *, reason: str, by: str) -> asyncpg.Record:
        store = DsarStore(conn)
        req = await store.request(request_id, lock=True)
        if req is None:
            raise UnknownRequest()
        if req["status"] not in domain.UNANSWERED_STATUSES:
            raise WrongState("extend", req["status"])
        if req["extended_at"] is not None:
            raise AlreadyExtended()
        now = self.clock.now()
        if now > req["due_at"]:
            raise ExtensionTooLate()
        new_due = domain.extended_due_at(req["received_at"])
        await store.update_request(request_id, due_at=new_due, extended_at=now, extended_by=by, extension_reason=reason)
        await store.add_transition(
            request_id,
            req["status"],
            req["status"],
            at=now,
            actor=by,
            detail=f"deadline extended to {new_due.isoformat()}: {reason}",
        )
        row = await store.request(request_id)
        assert row is not None
        return row

    async def cancel(self, conn: asyncpg.Connection, request_id: str, *, by: str) -> asyncpg.Record:
        store = DsarStore(conn)
        req = await store.request(request_id, lock=True)
        if req is None:
            raise UnknownRequest()
        if req["status"] not in domain.UNANSWERED_STATUSES:
            raise WrongState("cancel", req["status"])
        now = self.clock.now()
        await store.cancel_open_tasks(request_id, now)
        await self._move(
            store,
            req,
            domain.CANCELLED,
            by,
            "cancelled",
            sealed_input=None,
            sealed_private_key=None,
            next_resolve_at=None,
        )
        await store.clear_results(request_id)
        await self.keys.destroy(conn, input_key(request_id))
        await self.keys.destroy(conn, result_key(request_id))
        row = await store.request(request_id)
        assert row is not None
        return row

    # -- reading -------------------------------------------------------------------------------

    async def view(self, conn: asyncpg.Connection, request_id: str) -> dict[str, Any]:
        """The request's state, participants and timings, history: no personal data."""
        store = DsarStore(conn)
        req = await store.request(request_id)
        if req is None:
            raise UnknownRequest()
        tasks = await store.tasks(request_id, current_only=False)
        pkg = await store.package(request_id)
        return {
            "request_id": request_id,
            "kind": req["kind"],
            "status": req["status"],
            "channel": req["channel"],
            "subject_id": req["subject_id"],
            "received_at": req["received_at"],
            "due_at": req["due_at"],
            "extended": None
            if req["extended_at"] is None
            else {"at": req["extended_at"], "by": req["extended_by"], "reason": req["extension_reason"]},
            "overdue": req["overdue_at"] is not None,
            "approved_by": req["approved_by"],
            "approved_at": req["approved_at"],
            "denied_by": req["denied_by"],
            "rejection": None
            if req["reject_reason"] is None
            else {"reason": req["reject_reason"], "detail": req["reject_detail"]},
            "waiting_for": req["resolve_error"],
            "completed_at": req["completed_at"],
            "trace_id": trace_id_of(req["traceparent"]),
            "participants": [
                {
                    "participant": t["participant"],
                    "task_id": t["task_id"],
                    "kind": t["kind"],
                    "status": t["status"],
                    "current": t["current"],
                    "attempt": t["attempt"],
                    "first_sent_at": t["first_sent_at"],
                    "last_sent_at": t["sent_at"],
                    "timeout_at": t["timeout_at"] if t["status"] == domain.TASK_OPEN else None,
                    "finished_at": t["finished_at"],
                    "seconds": (t["finished_at"] - t["first_sent_at"]).total_seconds() if t["finished_at"] else None,
                    "error": t["error"],
                    "erased": t["erased"],
                    "retained": [*t["hold_retained"], *t["retained"]],
                }
                for t in tasks
            ],
            "package": None
            if pkg is None
            else {
                "uri": packages.package_uri(self.settings, request_id),
                "sha256": pkg["sha256"],
                "size_bytes": pkg["size_bytes"],
            },
            "completion": req["completion"],
            "history": [dict(t) for t in await store.transitions(request_id)],
        }

    # -- the checker ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Run the checker: woken by NOTIFY on new work, and every ``check_interval_s``."""
        self._listener = await asyncpg.connect(self.settings.database_url)
        await self._listener.add_listener(WAKE_CHANNEL, self._notified)
        self._task = asyncio.create_task(self._run(), name="dsar-checker")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        await self.resolver.close()

    def wake(self) -> None:
        self._wake.set()

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def _run(self) -> None:
        """A NOTIFY (a new request to resolve) runs the resolution at once; the whole round
        (timeouts and deadlines too) runs every ``check_interval_s``, not on every request."""
        loop = asyncio.get_running_loop()
        full_round_due = loop.time()
        while True:
            self._wake.clear()
            try:
                if loop.time() >= full_round_due:
                    full_round_due = loop.time() + self.settings.check_interval_s
                    await self.tick()
                else:
                    while await self.resolve_due() >= 500:
                        pass
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - database or registry trouble: the next round retries
                log.warning("dsar checker round failed: %s; retrying", type(e).__name__)
            await wait_event(self._wake, max(0.0, full_round_due - loop.time()))
