"""The coordinator: the application around the rules of ``domain`` (what a command changes) and
the SQL of ``store``. Every command locks its request, asks :func:`lampo.dsar.domain.decide` for
a change and applies it in one database transaction that also writes its events and tasks to
the outbox, so a request's state and what the world was told never disagree.

Layout: ``intake`` (take a request in), ``identity`` (resolve its subject), ``acks`` (the
participants' answers, in batches), ``timers`` (lift notices, task timeouts, deadlines),
``view`` (the read view); here: applying a change, fan-out (the task events), approval and the
operator's commands, package assembly on completion, and the checker's loop. All three intakes
(Kafka, CLI, HTTP) call :meth:`Coordinator.submit` (or :meth:`Coordinator.reject_invalid`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Mapping
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
    DsarSubmitted,
    Package,
    ParticipantResult,
    UnreachableCopy,
)
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.privacy import PrivacyAck, PrivacyTask, TaskSubject
from lampo.crypto import KeyDestroyed, KeyRing, new_request_keypair, scratch_file, unseal
from lampo.dsar import domain, identity, intake, package, packages, timers
from lampo.dsar import view as read_view
from lampo.dsar.acks import on_acks as apply_acks
from lampo.dsar.domain import input_key, result_key
from lampo.dsar.errors import (
    UnknownRequest,
)
from lampo.dsar.packages import package_key
from lampo.dsar.resolver import IdentityResolver, RegistryUnavailable, Resolved, Unresolved
from lampo.dsar.settings import DsarSettings
from lampo.dsar.store import WAKE_CHANNEL, DsarStore, request_of, task_of
from lampo.messaging import outbox
from lampo.messaging.topics import DEAD_LETTER_HOURS, INBOUND_HOURS
from lampo.participant import open_part
from lampo.tracing import FLOW, PRIVACY, TRACEPARENT, context_from_headers, current_traceparent, trace_id_of

log = logging.getLogger("lampo.dsar")


def unreachable_copies(now: datetime) -> list[UnreachableCopy]:
    """What an erasure cannot reach, said in its result: the records that other systems published
    about the subject to the inbound topics, and those dead-lettered, stay until the topics'
    retention removes them (lampo.messaging.topics: hours, not days)."""
    return [
        UnreachableCopy(
            where="inbound topics (*.inbound.v1, dsar.requests.v1): records sent about the subject",
            until=now + timedelta(hours=INBOUND_HOURS),
        ),
        UnreachableCopy(
            where="dead-letter topics (*.inbound.v1.dlq): records that could not be accepted",
            until=now + timedelta(hours=DEAD_LETTER_HOURS),
        ),
    ]


def _new_task_id() -> str:
    return uuid.uuid4().hex


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
        # Told (kind, outcome, seconds from receipt) of each request completed (lampo.dsar.metrics).
        self.on_completed: Callable[[str, str, float], None] | None = None

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

    def _policy(self) -> domain.Policy:
        st = self.settings
        return domain.Policy(
            data_map=domain.DataMap(
                participants=tuple(st.participants), categories=st.participant_categories, kinds=st.participant_kinds
            ),
            approval_required=st.approval_required,
            auto_approve=st.auto_approve,
            approvers=st.approvers,
            task_timeout_s=st.task_timeout_s,
            task_max_attempts=st.task_max_attempts,
            resolve_backoff_s=st.resolve_backoff_s,
            resolve_backoff_max_s=st.resolve_backoff_max_s,
        )

    async def _decide(
        self,
        conn: asyncpg.Connection,
        request_id: str,
        command: domain.Command,
        *,
        traceparent: str | None = None,
        read: tuple[asyncpg.Record, list[domain.Task]] | None = None,
    ) -> domain.Change | None:
        """Lock the request, ask the rules, apply their change (one transaction: the caller's).
        None for an unknown request. ``read``: the request (locked) and its tasks, when the
        caller has just read them in this transaction."""
        store = DsarStore(conn)
        if read is not None:
            row, tasks = read
        else:
            row = await store.request(request_id, lock=True)
            if row is None:
                return None
            tasks = await store.task_states(request_id)
        change = domain.decide(
            request_of(row), tasks, command, now=self.clock.now(), policy=self._policy(), new_id=_new_task_id
        )
        await self._apply(conn, row, change, traceparent=traceparent)
        if change.status == domain.IN_PROGRESS and not change.sends and not change.unchanged:
            await self._maybe_complete(conn, request_id)  # nothing (more) to wait for, perhaps
        return change

    async def _apply(
        self, conn: asyncpg.Connection, row: Any, change: domain.Change, *, traceparent: str | None = None
    ) -> None:
        """Write a change: the request's fields and status, its tasks, its history, then its events
        and tasks to the outbox (in that order: one NOTIFY), then the keys it ends."""
        store = DsarStore(conn)
        rid = row["request_id"]
        now = self.clock.now()
        fields = dict(change.fields)
        if change.new_result_key:
            private, public = new_request_keypair()
            cipher = await self.keys.cipher(conn, result_key(rid), create=True)
            fields.update(result_public_key=public, sealed_private_key=cipher.encrypt("private_key", private))
        if change.status != row["status"]:
            fields["status"] = change.status
        if fields:
            await store.update_request(rid, **fields)
        for update in change.task_updates:
            await store.update_task(update.task_id, **update.fields)
        await store.insert_tasks(
            [
                dict(
                    task_id=t.task_id, request_id=rid, participant=t.participant, kind=t.kind,
                    categories=list(t.categories), status=t.status, attempt=t.attempt, sent_at=now,
                    timeout_at=t.timeout_at, hold_retained=list(t.hold_retained), finished_at=t.finished_at,
                )
                for t in change.new_tasks
            ]
        )  # fmt: skip
        for tr in change.transitions:
            await store.add_transition(rid, tr.from_status, tr.to_status, at=now, actor=tr.actor, detail=tr.detail)
        current: dict[str, Any] = {**dict(row), **fields}  # the request as it now stands (locked)
        if change.restricted is not None and current["subject_id"] is not None:
            await store.set_restricted(current["subject_id"], change.restricted, request_id=rid, at=now)
        tp = traceparent or row["traceparent"]
        events = [self._event(DSAR_EVENTS, e.event_type, e.data, rid, tp) for e in change.events]
        for send in change.sends:
            events.append(
                await self._task_event(
                    conn, current, task_id=send.task_id, participant=send.participant, kind=send.kind,
                    categories=list(send.categories), attempt=send.attempt,
                )
            )  # fmt: skip
        await outbox.add(conn, events)
        for key in change.destroy_keys:
            await self.keys.destroy(conn, input_key(rid) if key == "input" else result_key(rid))
        if fields.get("completed_at") is not None and self.on_completed is not None:
            # Counted as the change is written (a transaction rewound and retried would count twice: rare).
            self.on_completed(row["kind"], change.status, (fields["completed_at"] - row["received_at"]).total_seconds())

    # -- intake --------------------------------------------------------------------------------

    async def submit(
        self,
        conn: asyncpg.Connection,
        req: DsarSubmitted,
        *,
        actor: str,
        traceparent: str | None,
        raw: Mapping[str, Any] | None = None,
    ) -> tuple[asyncpg.Record, bool]:
        """Take a request in (see :func:`lampo.dsar.intake.submit`)."""
        return await intake.submit(self, conn, req, actor=actor, traceparent=traceparent, raw=raw)

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
        raw: Mapping[str, Any] | None = None,
    ) -> tuple[asyncpg.Record, bool]:
        """Answer a request that breaks the contract (see :func:`lampo.dsar.intake.reject_invalid`)."""
        return await intake.reject_invalid(
            self, conn, request_id=request_id, kind=kind, reason=reason, detail=detail, channel=channel,
            actor=actor, traceparent=traceparent, raw=raw,
        )  # fmt: skip

    # -- identity ------------------------------------------------------------------------------

    async def resolve_due(self, limit: int = 500) -> int:
        return await identity.resolve_due(self, limit)

    async def apply_resolution(
        self, conn: asyncpg.Connection, request_id: str, outcome: Resolved | Unresolved | RegistryUnavailable
    ) -> None:
        await identity.apply_resolution(self, conn, request_id, outcome)

    # -- approval ------------------------------------------------------------------------------

    async def approve(self, conn: asyncpg.Connection, request_id: str, *, by: str, at: datetime) -> asyncpg.Record:
        store = DsarStore(conn)
        req = await store.request_state(request_id, lock=True)
        if req is None:
            raise UnknownRequest()
        holds = await identity.legal_holds(store, req.kind, req.customer_numbers)
        await self._decide(conn, request_id, domain.Approve(by, at, tuple(holds)))
        row = await store.request(request_id)
        assert row is not None
        return row

    async def deny(self, conn: asyncpg.Connection, request_id: str, *, by: str, reason: str) -> asyncpg.Record:
        if await self._decide(conn, request_id, domain.Deny(by, reason)) is None:
            raise UnknownRequest()
        row = await DsarStore(conn).request(request_id)
        assert row is not None
        return row

    # -- fan-out -------------------------------------------------------------------------------

    async def release_lifts(self, limit: int = 500) -> int:
        return await timers.release_lifts(self, limit)

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
            FLOW: PRIVACY,
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
                    "scope": req["scope"] if kind == "objection" else None,
                    "lift": bool(req["lift"]) and kind == "restriction",
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
        """Apply a batch of participants' answers (see :func:`lampo.dsar.acks.on_acks`)."""
        return await apply_acks(self, conn, acks)

    async def _building_for(self, store: DsarStore, task: Any) -> _Building | None:
        """The package being built for the task's request, started at its first part (a read
        of the request and its key); None when it is not built as the parts come."""
        request_id = task["request_id"]
        if request_id not in self._building:
            self._building[request_id] = await self._start_building(store, request_id)
            while len(self._building) > _BUILDING_MAX:
                dropped = self._building.pop(next(iter(self._building)))
                if dropped is not None:
                    dropped.close()
        return self._building.get(request_id)

    def _file(self, task: Any, building: _Building | None, run: str, part: int, data: str) -> None:
        """File a streamed part into ``building``, its request's package being built (no database:
        it may run while a statement is out); any failure here only means the package is built
        from the stored parts later."""
        if building is None or self._building.get(task["request_id"]) is not building:
            return
        try:
            building.feed(task["task_id"], task["participant"], run, part, data)
        except (InvalidTag, ValueError, KeyError, TypeError):
            # Left for the build from the stored parts, which names the participant failed.
            building.close()
            self._building[task["request_id"]] = None

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

    async def drop_finished_builds(self) -> int:
        """Close the packages this instance began to build for requests no longer in progress.
        With several instances, another one may have completed (or cancelled) the request after a
        rebalance moved its acks there; this one's head start holds the subject's data and must
        not outlive the request. Returns how many were dropped."""
        if not self._building:
            return 0
        async with self._pool().acquire() as conn:
            going = await DsarStore(conn).in_progress(list(self._building))
        finished = [request_id for request_id in self._building if request_id not in going]
        for request_id in finished:
            building = self._building.pop(request_id, None)
            if building is not None:
                building.close()
        return len(finished)

    def _stop_building(self, request_id: str) -> _Building | None:
        building = self._building.pop(request_id, None)
        return building

    async def _maybe_complete(self, conn: asyncpg.Connection, request_id: str) -> None:
        """Finish the request if every task has answered: the results (and the package, for
        access and portability) into dsar.completed."""
        store = DsarStore(conn)
        req = await store.request(request_id, lock=True)
        if req is None or req["status"] != domain.IN_PROGRESS:
            return
        rows = await store.tasks(request_id)
        tasks = [task_of(t) for t in rows]
        if not domain.answered(tasks):
            return
        results = domain.results(tasks)
        unreachable: list[UnreachableCopy] = []
        if req["kind"] == "erasure":  # the coordinator's own copies: every package of the subject goes
            destroyed = await packages.destroy_for_erasure(conn, self.keys, req, self.clock.now())
            if destroyed is not None:
                results[packages.COORDINATOR] = destroyed
            unreachable = unreachable_copies(self.clock.now())
        with self.tracer.start_as_current_span(
            "dsar complete",
            context=_context(req["traceparent"]),
            attributes={"lampo.request_id": request_id, FLOW: PRIVACY},
        ):
            pkg = None
            if req["kind"] in domain.PACKAGE_KINDS and domain.completion_status(results) != "failed":
                pkg, results = await self._build_package(conn, req, rows, results, self.clock.now())
            command = domain.Complete(results, trace_id_of(req["traceparent"]), pkg, unreachable)
            read = (req, tasks) if pkg is None else None  # a package changed the row: read it again
            await self._decide(conn, request_id, command, traceparent=current_traceparent(), read=read)
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
        return await timers.check_timeouts(self, limit)

    async def check_overdue(self, limit: int = 500) -> int:
        return await timers.check_overdue(self, limit)

    async def tick(self) -> None:
        """One round of the checker (tests call it after moving a ManualClock)."""
        while await self.resolve_due() >= 500:
            pass
        await self.release_lifts()
        await self.check_timeouts()
        await self.check_overdue()
        await self.drop_finished_builds()

    # -- operator commands ---------------------------------------------------------------------

    async def retry(self, conn: asyncpg.Connection, request_id: str, participant: str, *, by: str) -> str:
        """Send a failed participant's task again as a new task (new task_id, next attempt),
        leaving every other participant's answer as it is. Returns the new task_id."""
        change = await self._decide(conn, request_id, domain.Retry(participant, by))
        if change is None:
            raise UnknownRequest()
        [task] = change.new_tasks
        return task.task_id

    async def extend(self, conn: asyncpg.Connection, request_id: str, *, reason: str, by: str) -> asyncpg.Record:
        if await self._decide(conn, request_id, domain.Extend(by, reason)) is None:
            raise UnknownRequest()
        row = await DsarStore(conn).request(request_id)
        assert row is not None
        return row

    async def cancel(self, conn: asyncpg.Connection, request_id: str, *, by: str) -> asyncpg.Record:
        if await self._decide(conn, request_id, domain.Cancel(by)) is None:
            raise UnknownRequest()
        store = DsarStore(conn)
        await store.clear_results(request_id)
        row = await store.request(request_id)
        assert row is not None
        return row

    # -- reading -------------------------------------------------------------------------------

    async def view(self, conn: asyncpg.Connection, request_id: str) -> dict[str, Any]:
        return await read_view.view(conn, request_id, package_uri=lambda rid: packages.package_uri(self.settings, rid))

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
