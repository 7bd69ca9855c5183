"""The participant side of the privacy protocol (CONTRACTS.md: privacy.tasks.v1 → privacy.acks.v1),
written once for every store: registry, billing, recordings, consent, and any other system.

A service provides one ``TaskHandler`` per task kind it supports. This module:
- ignores tasks addressed to other participants;
- answers a repeated task (same ``task_id``, any attempt) with the answer it gave the first
  time, without doing the work again;
- seals an access result to the request's public key (``result_key``), so personal data crosses
  Kafka only encrypted for that request. A small result is one sealed JSON document (split into
  parts only if it outgrows a record); a large one is *streamed* (``TaskOutcome.stream``): the
  handler yields pieces (``Items``, ``Attachment``) as it reads them, and each part is sealed on
  its own as soon as it is full, so neither side ever holds the whole result (see "Streamed
  results" below);
- writes the ack through the outbox in the same transaction as the task's effect, so the effect
  and its answer commit together or not at all;
- answers ``failed`` with the error (never personal data) when the handler raises ``TaskFailed``;
  other errors are retried by the reliable consumer and, failing that, the coordinator's timeout
  and retry take over.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import struct
import tempfile
import uuid
import zlib
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import asyncpg
import orjson
from aiokafka.structs import ConsumerRecord

from lampo.contracts.catalog import PRIVACY_ACKS, PRIVACY_TASKS, ParsedEvent
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.privacy import Effect, PrivacyAck, PrivacyTask, Retained
from lampo.crypto import seal, unseal
from lampo.messaging import outbox
from lampo.messaging.asyncapi import sends
from lampo.messaging.consumer import Incoming, data_text, per_event
from lampo.signing import SignaturePolicy, TrustedKeys

log = logging.getLogger("lampo.participant")
COORDINATOR = "coordinator"
RETENTION = "retention"


class TaskFailed(Exception):
    """The task cannot be done; ``error`` is sent to the coordinator (no personal data)."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass(frozen=True)
class Items:
    """A piece of a streamed access result: ``items`` (JSON-able, plain types) appended to the
    list at ``path``: ``(category,)`` or ``(category, key)``. Empty ``items`` declare the list."""

    path: tuple[str, ...]
    items: Sequence[Any]


@dataclass(frozen=True)
class RawItems:
    """Like ``Items``, with each item already JSON text (a JSON object, e.g. built by the
    database): copied into the part as it is, never parsed or built as Python objects."""

    path: tuple[str, ...]
    texts: Sequence[str]


@dataclass(frozen=True)
class Attachment:
    """One item of a streamed access result with binary content beside it (call audio), appended
    to the list at ``path``; the content travels as raw bytes, not base64 in the item's JSON.
    A reader that wants the plain JSON shape gets it back as ``item["audio_base64"]``."""

    path: tuple[str, ...]
    item: Mapping[str, Any]
    data: bytes


Piece = Items | RawItems | Attachment


@dataclass
class TaskOutcome:
    erased: dict[str, int] = field(default_factory=dict)
    retained: list[Retained] = field(default_factory=list)
    # What the task did beside erasing (rectified, restricted, ...) or may not do, and why.
    effects: list[Effect] = field(default_factory=list)
    # For access: the subject's data as JSON-able structure; sealed before it leaves.
    result: Any = None
    # For access, instead of ``result``: the data as pieces read one after the other (a large
    # result: thousands of rows, audio), consumed inside the task's transaction.
    stream: AsyncIterable[Piece] | None = None


TaskHandler = Callable[[asyncpg.Connection, PrivacyTask], Awaitable[TaskOutcome]]


BatchLocks = Callable[[asyncpg.Connection, list[PrivacyTask]], Awaitable[None]]
"""Takes, at the start of a batch's transaction, the locks its tasks will take one by one: all of
them in one global order, so two transactions that lock several keys never wait in a cycle."""


class Participant:
    def __init__(
        self,
        name: str,
        handlers: Mapping[str, TaskHandler],
        *,
        source: str | None = None,
        lock_ahead: BatchLocks | None = None,
    ) -> None:
        self.name = name
        self.handlers = dict(handlers)
        self.source = source or f"urn:lampo:{name}"
        # The tasks of a batch run one after the other in one transaction, so the locks they
        # take add up in task order; ``lock_ahead`` takes them all first, in one order.
        self._lock_ahead = lock_ahead
        # The service's pool (set by ``subscribe``): parts of a streamed result are committed
        # to the outbox on a connection of their own as they are sealed. Without it they all
        # commit with the task.
        self._pool: Callable[[], asyncpg.Pool] | None = None

    def handler(self) -> Callable[[asyncpg.Connection, list[Incoming]], Awaitable[None]]:
        each = per_event(self._handle)
        lock_ahead = self._lock_ahead
        if lock_ahead is None:
            return each

        async def run(conn: asyncpg.Connection, items: list[Incoming]) -> None:
            tasks = [
                i.event.data
                for i in items
                if isinstance(i.event.data, PrivacyTask) and i.event.data.participant == self.name
            ]
            if tasks:
                await lock_ahead(conn, tasks)
            await each(conn, items)

        return run

    def addressed_here(self, record: ConsumerRecord[Any, Any]) -> bool:
        """Every participant reads every task; one plainly addressed to another participant is
        passed over before parsing, tracing and the inbox (a sweep's 100,000 purge tasks would
        otherwise cost each participant a validation and an inbox row apiece). Anything not
        plainly another's (not JSON, no participant) goes the whole way, to be handled or
        dead-lettered with its reason."""
        participant = data_text(record, "participant")
        return participant is None or participant == self.name

    async def _handle(self, conn: asyncpg.Connection, item: Incoming) -> None:
        task = item.event.data
        assert isinstance(task, PrivacyTask)
        if task.participant != self.name:
            return
        item.span.set_attribute("lampo.request_id", task.request_id)
        item.span.set_attribute("lampo.task_id", task.task_id)
        item.span.set_attribute("lampo.participant", self.name)
        stored = await conn.fetchval("SELECT ack FROM privacy_tasks WHERE task_id = $1", task.task_id)

        def event(part: PrivacyAck) -> outbox.OutgoingEvent:
            return outbox.OutgoingEvent(
                PRIVACY_ACKS, task.request_id, CloudEvent.new("privacy.ack", self.source, part),
                traceparent=item.traceparent,
            )  # fmt: skip

        sender: _Sender | None = None
        emit: Emit | None = None
        if self._pool is not None:
            pool = self._pool

            def part_event(n: int, part: str) -> outbox.OutgoingEvent:
                return event(
                    PrivacyAck(
                        request_id=task.request_id, task_id=task.task_id, participant=self.name, status="done",
                        result=part, result_part=n,
                    )
                )  # fmt: skip

            async def emit(n: int, part: str) -> None:
                nonlocal sender
                if sender is None:
                    sender = _Sender(pool(), part_event)
                await sender.send(n, part)

        try:
            result = await self._answer(conn, task, stored, emit)
            if sender is not None:
                await sender.finish()  # every part before the last is in the outbox
        finally:
            if sender is not None:
                sender.cancel()
        ack, streamed = result
        if stored is None:
            await conn.execute(
                "INSERT INTO privacy_tasks (task_id, request_id, kind, ack) VALUES ($1, $2, $3, $4)",
                task.task_id,
                task.request_id,
                task.kind,
                ack.model_dump(mode="json"),
            )
        if streamed is None:
            await outbox.add(conn, [event(part) for part in split_result(ack)])
            return
        with streamed:
            # One part per outbox row, written one at a time: never the whole result in memory.
            # Each names the total, so the last one tells the coordinator the result is whole.
            for n, part in streamed.parts():
                update = {"result": part, "result_part": n, "result_parts": streamed.total}
                await outbox.add(conn, [event(ack.model_copy(update=update))])

    async def _answer(
        self, conn: asyncpg.Connection, task: PrivacyTask, stored: Any, emit: Emit | None
    ) -> tuple[PrivacyAck, SealedParts | None]:
        """The stored answer to a repeated task, or the task done now."""
        if stored is None:
            return await self._run(conn, task, emit)
        ack = PrivacyAck.model_validate(stored)
        if ack.result is None and ack.status == "done" and task.kind == "access" and task.result_key:
            # A streamed result is not kept (it may be large): reading it again is the answer.
            # Access is read-only; the new run's parts carry a new run id, and the coordinator
            # never mixes the parts of two runs.
            return await self._run(conn, task, emit)
        return ack, None

    async def _run(
        self, conn: asyncpg.Connection, task: PrivacyTask, emit: Emit | None = None
    ) -> tuple[PrivacyAck, SealedParts | None]:
        """The ack (without its result when that is streamed) and the sealed parts of a
        streamed result not emitted yet, if any."""
        handler = self.handlers.get(task.kind)
        base: dict[str, Any] = {"request_id": task.request_id, "task_id": task.task_id, "participant": self.name}
        if handler is None:
            return PrivacyAck(**base, status="failed", error=f"{self.name} does not handle '{task.kind}' tasks"), None
        result = None
        streamed: SealedParts | None = None
        try:
            async with conn.transaction():  # a failed task leaves no half-done effect
                outcome = await handler(conn, task)
                wants_key = outcome.result is not None or outcome.stream is not None
                if wants_key and not task.result_key:
                    return PrivacyAck(
                        **base, status="failed", error="access result requested without a result_key"
                    ), None
                if outcome.stream is not None:
                    assert task.result_key is not None
                    packed = await seal_stream(task.result_key, outcome.stream, emit=emit)
                    if isinstance(packed, str):
                        result = packed
                    else:
                        streamed = packed
        except TaskFailed as e:
            return PrivacyAck(**base, status="failed", error=e.error), None
        if outcome.result is not None:
            assert task.result_key is not None
            payload = json.dumps(outcome.result, ensure_ascii=False, default=str).encode()
            result = seal(task.result_key, payload)
        ack = PrivacyAck(
            **base,
            status="done",
            erased=outcome.erased,
            retained=outcome.retained,
            effects=outcome.effects,
            result=result,
        )
        return ack, streamed


# A privacy.ack is one Kafka record (privacy.acks.v1 takes 2 MiB): a larger sealed result, such
# as an access result with call audio, travels in parts of this many characters.
RESULT_PART_CHARS = 512 * 1024


def split_result(ack: PrivacyAck, part_chars: int = RESULT_PART_CHARS) -> list[PrivacyAck]:
    """The ack as it goes on the wire: itself, or one ack per part of a large sealed result
    (same task, same counts; ``result_part`` of ``result_parts``)."""
    if ack.result is None or len(ack.result) <= part_chars:
        return [ack]
    pieces = [ack.result[i : i + part_chars] for i in range(0, len(ack.result), part_chars)]
    return [
        ack.model_copy(update={"result": piece, "result_part": n, "result_parts": len(pieces)})
        for n, piece in enumerate(pieces)
    ]


def join_result(parts: Mapping[int, str], total: int) -> str | None:
    """The whole sealed result once every part arrived, else None."""
    if len(parts) < total or any(n not in parts for n in range(total)):
        return None
    return "".join(parts[n] for n in range(total))


# --- Streamed results ----------------------------------------------------------------------------
#
# A large access result travels as ``result_parts`` acks whose ``result`` is
# ``"f1.<run>.<sealed>"``: ``run`` names one reading of the result (a repeated task reads again,
# under a new run), ``sealed`` is one part sealed on its own to the request's key (so the
# coordinator can open and use each part as it comes, in order, without joining them). A part's
# plaintext is ``z`` and its frames deflated (items), or ``r`` and its frames as they are (mostly
# audio, which does not compress); a frame is a 4-byte big-endian length, a JSON header and, for
# attachments, raw bytes:
#   {"path": [...], "items": [...]}              Items
#   {"path": [...], "item": {...}, "size": n}    an Attachment's item and its first n bytes
#   {"more": n}                                  n further bytes of the attachment before it
# A result that stays small is sent the old way, as one sealed JSON document (attachments as
# ``audio_base64``), which every reader understands.

STREAM_PREFIX = "f1."
# Plaintext of one streamed part: sealed and base64'd it stays under 1 MiB (privacy.acks.v1
# takes 2 MiB records; consumers fetch 1 MiB per partition), compressed or not.
STREAM_PART_BYTES = 700 * 1024
# A part of items only (no attachment bytes), but the first two, holds up to this many times as
# much before it is deflated (items deflate ~10x or better): fewer, fuller parts, each a record,
# a seal, an outbox row and an ack less. One that does not deflate to ``STREAM_PART_BYTES`` is
# split.
ITEMS_PART_FACTOR = 4
# A result whose frames stay under this is sent as one JSON document (one record).
SMALL_RESULT_BYTES = 256 * 1024
# A part never opens into more than this (a corrupt or hostile part cannot exhaust memory).
MAX_PART_PLAINTEXT = 64 * 1024 * 1024
_LENGTH = struct.Struct(">I")
_ZLIB, _RAW = b"z", b"r"  # a part's first byte: its frames deflated, or as they are


class SealedParts:
    """The sealed parts of a streamed result not yet sent (spooled to a temporary file, not
    memory): ``parts()`` gives their ``result`` strings, numbered from ``first``."""

    def __init__(self, run: str, first: int = 0) -> None:
        self.run = run
        self.first = first
        self._file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self._sizes: list[int] = []

    @property
    def total(self) -> int:
        """Parts of the whole result, those sent already included."""
        return self.first + len(self._sizes)

    def add(self, part: str) -> None:
        raw = part.encode()
        self._file.write(raw)
        self._sizes.append(len(raw))

    def parts(self) -> Iterator[tuple[int, str]]:
        self._file.seek(0)
        for n, size in enumerate(self._sizes, start=self.first):
            yield n, self._file.read(size).decode()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SealedParts:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


Emit = Callable[[int, str], Awaitable[None]]
"""Sends part ``n`` of a streamed result (its ``result`` string) at once, before the task ends."""


class _Sender:
    """Commits emitted parts to the outbox, in order, each in a transaction of its own on a
    connection of its own, in the background: the next part is read and sealed meanwhile. At
    most ``ahead`` parts wait (memory: a few parts, not the result)."""

    def __init__(
        self, pool: asyncpg.Pool, event_of: Callable[[int, str], outbox.OutgoingEvent], ahead: int = 2
    ) -> None:
        self._pool = pool
        self._event_of = event_of
        self._queue: asyncio.Queue[tuple[int, str] | None] = asyncio.Queue(maxsize=ahead)
        self._error: BaseException | None = None
        self._task = asyncio.create_task(self._run(), name="participant-parts")

    async def _run(self) -> None:
        while (item := await self._queue.get()) is not None:
            if self._error is not None:
                continue  # failed: the rest is drained unsent (the task fails and is read again)
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    # No wait for the disk on each part: the task's own commit, synchronous,
                    # flushes the log up to it, these parts included; were the server to fail
                    # before that, the task is not done and is read again under a new run.
                    await conn.execute("SET LOCAL synchronous_commit TO OFF")
                    await outbox.add(conn, [self._event_of(*item)])
            except Exception as e:  # noqa: BLE001 - raised to the task by send() / finish()
                self._error = e

    async def send(self, n: int, part: str) -> None:
        if self._error is not None:
            raise self._error
        await self._queue.put((n, part))

    async def finish(self) -> None:
        await self._queue.put(None)
        await self._task
        if self._error is not None:
            raise self._error

    def cancel(self) -> None:
        self._task.cancel()


def _frame(header: Mapping[str, Any], data: bytes = b"") -> bytes:
    # orjson: ~10x quicker than json on tens of thousands of items; values it does not know
    # (Decimal) and dates are written as ``str()`` gives them, as json.dumps(default=str) does.
    head = orjson.dumps(header, default=str, option=orjson.OPT_PASSTHROUGH_DATETIME)
    return _LENGTH.pack(len(head)) + head + data


async def seal_stream(
    public_key_b64: str,
    stream: AsyncIterable[Piece],
    *,
    part_bytes: int = STREAM_PART_BYTES,
    emit: Emit | None = None,
) -> str | SealedParts:
    """Seal a streamed result: a sealed JSON document (``str``) when it stays small, else its
    parts, each sealed as soon as it is full. With ``emit``, every part but the last is handed
    to it as soon as the next one begins (the coordinator works on them while the rest is
    read); the parts not emitted are returned."""
    run = uuid.uuid4().hex
    items_bytes = part_bytes * ITEMS_PART_FACTOR
    pending: list[bytes] = []  # frames of the part being filled
    size = 0
    raw = 0  # bytes of attachments in it
    small: list[Piece] | None = []  # the pieces, while the result may still be small
    total = 0
    sealed = SealedParts(run)
    held: str | None = None  # the last part sealed, held back until another follows
    packs_sealed = 0

    def packed(frames: list[bytes], size: int, raw: int) -> list[bytes]:
        """A part's frames packed: one part, or (items that would not compress to fit one) more."""
        plain = b"".join(frames)
        # Items compress ~10x; audio hardly at all, and deflating it costs more than sending it.
        if raw * 2 > size:
            return [_RAW + plain]
        deflated = _ZLIB + zlib.compress(plain, 1)
        if len(deflated) <= part_bytes or size <= part_bytes or len(frames) == 1:
            return [deflated]
        half = len(frames) // 2  # items only (see ``items_bytes``): halves, each packed again
        return packed(frames[:half], sum(map(len, frames[:half])), 0) + packed(
            frames[half:], sum(map(len, frames[half:])), 0
        )

    async def flush() -> None:
        nonlocal pending, size, raw, held, packs_sealed
        if not pending:
            return
        packs = packed(pending, size, raw)
        pending, size, raw = [], 0, 0
        packs_sealed += len(packs)
        for pack in packs:
            part = f"{STREAM_PREFIX}{run}.{seal(public_key_b64, pack)}"
            if emit is None:
                sealed.add(part)
                continue
            if held is not None:
                await emit(sealed.first, held)
                sealed.first += 1
            held = part

    def add(frame: bytes, attached: int = 0) -> None:
        nonlocal size, total, raw
        pending.append(frame)
        size += len(frame)
        total += len(frame)
        raw += attached

    try:
        async for piece in stream:
            if isinstance(piece, Items | RawItems):
                if isinstance(piece, Items):
                    frame = _frame({"path": list(piece.path), "items": list(piece.items)})
                else:
                    head = b'{"path":' + orjson.dumps(list(piece.path)) + b',"items":['
                    body = head + ",".join(piece.texts).encode() + b"]}"
                    frame = _LENGTH.pack(len(body)) + body
                # A part of items only takes more of them (deflated, they still fit a record);
                # not the first two, so that the first leaves early (it waits for the second).
                if size and size + len(frame) > (part_bytes if raw or packs_sealed < 2 else items_bytes):
                    await flush()
                add(frame)
            else:
                # An attachment fills what room the part has left, then whole parts of its own.
                if part_bytes - size < part_bytes // 16:
                    await flush()
                first = max(0, min(len(piece.data), part_bytes - size - 1024))
                add(
                    _frame({"path": list(piece.path), "item": dict(piece.item), "size": first}, piece.data[:first]),
                    first,
                )
                at = first
                while at < len(piece.data):
                    await flush()
                    more = min(len(piece.data) - at, part_bytes - 64)
                    add(_frame({"more": more}, piece.data[at : at + more]), more)
                    at += more
            if small is not None:
                small.append(piece)
                if total > SMALL_RESULT_BYTES:
                    small = None
        if small is not None and held is None and not sealed.total:
            sealed.close()
            document = json.dumps(materialise(small), ensure_ascii=False, default=str).encode()
            return seal(public_key_b64, document)
        await flush()
        if held is not None:
            sealed.add(held)
    except BaseException:
        sealed.close()
        raise
    return sealed


def materialise(pieces: Iterable[Piece]) -> dict[str, Any]:
    """Pieces as one JSON-able result: ``{category: [items]}`` or ``{category: {key: [items]}}``,
    attachments' bytes as ``audio_base64`` in their items."""
    result: dict[str, Any] = {}
    for piece in pieces:
        target = _list_at(result, piece.path)
        if isinstance(piece, Items):
            target.extend(piece.items)
        elif isinstance(piece, RawItems):
            target.extend(json.loads(text) for text in piece.texts)
        else:
            target.append({**piece.item, "audio_base64": base64.b64encode(piece.data).decode()})
    return result


def _list_at(result: dict[str, Any], path: Sequence[str]) -> list[Any]:
    node: Any = result
    for key in path[:-1]:
        node = node.setdefault(key, {})
    found: list[Any] = node.setdefault(path[-1], [])
    return found


def is_streamed(result: str | None) -> bool:
    return result is not None and result.startswith(STREAM_PREFIX)


def stream_run(result: str) -> str:
    """The run id of a streamed part's ``result``."""
    return result[len(STREAM_PREFIX) :].split(".", 1)[0]


@dataclass(frozen=True)
class Opened:
    """One frame of an opened streamed part: items appended at ``path``, or (``data`` set) an
    attachment's item with its bytes, or (``item`` None, ``data`` set) more bytes of the
    attachment before it."""

    path: tuple[str, ...]
    items: list[Any] | None = None
    item: dict[str, Any] | None = None
    data: bytes | None = None


def open_part(private_key: bytes, result: str) -> Iterator[Opened]:
    """Unseal one streamed part and read its frames (raises ``ValueError`` if malformed,
    ``cryptography``'s ``InvalidTag`` if not sealed to this key)."""
    sealed = result[len(STREAM_PREFIX) :].split(".", 1)[1]
    packed = unseal(private_key, sealed)
    if packed[:1] == _RAW:
        plain = packed[1:]
    elif packed[:1] == _ZLIB:
        inflater = zlib.decompressobj()
        try:
            plain = inflater.decompress(packed[1:], MAX_PART_PLAINTEXT)
        except zlib.error as e:
            raise ValueError("streamed part: not a zlib stream") from e
        if inflater.unconsumed_tail:
            raise ValueError("streamed part: larger than allowed")
    else:
        raise ValueError("streamed part: unknown packing")
    view = memoryview(plain)
    at = 0
    while at < len(view):
        if at + 4 > len(view):
            raise ValueError("streamed part: truncated frame")
        (length,) = _LENGTH.unpack_from(view, at)
        header = orjson.loads(view[at + 4 : at + 4 + length])
        at += 4 + length
        if "more" in header:
            size = int(header["more"])
            yield Opened((), data=bytes(view[at : at + size]))
            at += size
        elif "size" in header:
            size = int(header["size"])
            yield Opened(tuple(header["path"]), item=header["item"], data=bytes(view[at : at + size]))
            at += size
        else:
            yield Opened(tuple(header["path"]), items=header["items"])
        if at > len(view):
            raise ValueError("streamed part: truncated frame")


def open_result(private_key: bytes, parts: Mapping[int, str], total: int) -> Any:
    """A whole result, either format, as JSON-able data (attachments as ``audio_base64``); for
    small results and tests: it holds everything in memory."""
    if any(n not in parts for n in range(total)):
        raise ValueError("result parts missing")
    if all(is_streamed(parts[n]) for n in range(total)):
        return _open_streamed(private_key, [parts[n] for n in range(total)])
    sealed = join_result(parts, total)
    assert sealed is not None
    return json.loads(unseal(private_key, sealed))


def _open_streamed(private_key: bytes, parts: Sequence[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    last: dict[str, Any] | None = None
    audio = bytearray()

    def close_attachment() -> None:
        nonlocal last
        if last is not None:
            last["audio_base64"] = base64.b64encode(bytes(audio)).decode()
            last = None

    for part in parts:
        for frame in open_part(private_key, part):
            if frame.item is None and frame.items is None:
                if last is None:
                    raise ValueError("streamed part: attachment bytes without their item")
                audio += frame.data or b""
                continue
            close_attachment()
            target = _list_at(result, frame.path)
            if frame.items is not None:
                target.extend(frame.items)
            else:
                last = dict(frame.item or {})
                audio = bytearray(frame.data or b"")
                target.append(last)
    close_attachment()
    return result


def task_signer_allowed(signer: str, event: ParsedEvent) -> str | None:
    """Who may order a participant (CONTRACTS.md, "Authenticity"): the coordinator, any task;
    retention, whose sweeps publish their own tasks, ``purge`` only."""
    if signer == COORDINATOR:
        return None
    task = event.data
    if signer == RETENTION and isinstance(task, PrivacyTask) and task.kind == "purge":
        return None
    kind = task.kind if isinstance(task, PrivacyTask) else "unknown"
    signers = "the coordinator or retention" if kind == "purge" else "the coordinator"
    return f"a '{kind}' task must be signed by {signers}, not '{signer}'"


def task_policy(trusted: TrustedKeys) -> SignaturePolicy:
    return SignaturePolicy(trusted, task_signer_allowed)


def ack_signer_allowed(signer: str, event: ParsedEvent) -> str | None:
    """An ack counts only when signed by the participant it names."""
    ack = event.data
    if isinstance(ack, PrivacyAck) and signer == ack.participant:
        return None
    return f"an ack must be signed by the participant it names, not '{signer}'"


def ack_policy(trusted: TrustedKeys) -> SignaturePolicy:
    """The coordinator's policy for privacy.acks.v1."""
    return SignaturePolicy(trusted, ack_signer_allowed)


def subscribe(runtime: Any, participant: Participant) -> Any:
    """Register the participant's consumer of privacy.tasks.v1 on a service runtime. Only tasks
    signed by the coordinator (and purge tasks signed by retention) are obeyed; any other is
    dead-lettered ``unauthenticated``. Without trusted keys, no task is obeyed (fail closed)."""
    participant._pool = lambda: runtime.pool
    trusted: TrustedKeys = runtime.trusted
    if not trusted.knows(COORDINATOR):
        log.error(
            "%s: no trusted key for the coordinator (LAMPO_TRUSTED_KEYS): this participant obeys no "
            "privacy task; every task is dead-lettered as unauthenticated",
            participant.name,
        )
    if runtime.signer is None:
        log.error("%s: LAMPO_SIGNING_KEY is not set: the coordinator counts none of its acks", participant.name)
    elif runtime.signer.name != participant.name:
        log.error("%s: signs as '%s': the coordinator counts no ack of it", participant.name, runtime.signer.name)
    sends(runtime, PRIVACY_ACKS, key="request_id")  # the answers, through the outbox
    return runtime.consume(
        PRIVACY_TASKS,
        participant.handler(),
        name=f"{participant.name}:privacy-tasks",
        select=participant.addressed_here,
        verify=task_policy(trusted),
    )
