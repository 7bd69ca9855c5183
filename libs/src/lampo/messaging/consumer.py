"""Reliable consumption: parse, dead-letter, deduplicate, apply in one transaction, then commit.

The one consume path of every service. For each batch of records FastStream hands over:

1. Each record is parsed against the topic's contract. A record that cannot be accepted
   (``invalid_json``, ``schema``, ``unknown_type``, a failed identifier check) is copied
   unchanged to ``<topic>.dlq`` with ``error.reason`` and ``error.detail`` headers. A consumer
   with a ``verify`` policy (``lampo.signing``) also dead-letters, as ``unauthenticated``, a
   record that is not signed by a signer the policy accepts for it.
2. The valid ones are claimed in the inbox and applied by the service's handler in one database
   transaction; a redelivered event id is skipped (counted as a duplicate, no second effect).
3. If the handler fails for a batch, the batch is rolled back and applied again in halves (a
   failing half split again, down to single records), so one bad record cannot block or poison
   its neighbours: a record that fails alone with ``Rejected`` goes to the DLQ with its reason at
   once; any other error is retried with backoff a bounded number of times, then dead-lettered as
   ``processing_failed``. An unreachable database or broker is not the record's
   fault: the batch is rewound (nothing committed, nothing dead-lettered) and retried later.
4. Offsets are committed only after the transaction committed and the DLQ copies were
   acknowledged (``AckPolicy.MANUAL``; never FastStream's auto-commit ``ACK_FIRST``).

With ``ConsumerOptions(pipeline=True)`` (bulk ingest), step 1 of the next batch runs while the
previous batch's transaction is in flight: parsing and validation (CPU in this process) overlap
the database's work. Transactions still run one at a time, in the order the batches came; each
batch's own offsets are committed after its transaction (not the consumer's position, which is
past the next batch by then). If a batch is rewound, so is the one prepared behind it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, Topic
from faststream.kafka.annotations import KafkaMessage
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from lampo.contracts.catalog import ParsedEvent, parse
from lampo.contracts.errors import ContractViolation
from lampo.contracts.errors import Rejected as Rejected  # noqa: PLC0414 - re-exported for the services
from lampo.messaging import inbox
from lampo.messaging.polling import long_poll
from lampo.messaging.topics import dlq
from lampo.signing import UNAUTHENTICATED, SignaturePolicy
from lampo.tracing import FLOW, TRACEPARENT, context_from_headers, flow_of, traceparent_of

log = logging.getLogger("lampo.consumer")


class NotRunning(RuntimeError):
    """The service is starting or stopping: its pool or broker is not there. Not the record's
    fault: the batch is rewound, never dead-lettered."""


INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    NotRunning,
    OSError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    KafkaError,
)


async def tolerant_batch_parser(
    records: tuple[ConsumerRecord[Any, Any], ...], original: Callable[[Any], Awaitable[Any]]
) -> Any:
    """FastStream's batch parser decodes every header value as UTF-8, so one record with a null
    or non-UTF-8 header fails the whole batch before the consumer sees it, again on every
    redelivery: the consumer stops there. Such headers are read with replacement characters for
    FastStream's view only; the consumer still gets the records as they are (``raw_message``)."""
    try:
        return await original(records)
    except (UnicodeDecodeError, AttributeError):
        readable = tuple(
            dataclasses.replace(r, headers=[(k, (v or b"").decode(errors="replace").encode()) for k, v in r.headers])
            for r in records
        )
        message = await original(readable)
        message.raw_message = records
        return message


async def undecoded_batch(message: Any, original: Callable[[Any], Awaitable[Any]]) -> Any:
    """The batch handler reads ``raw_message`` and parses each value against its contract itself;
    FastStream's decoder would parse every header and value once more (and fail on the headers
    above), so the decoded body is just the list of raw values."""
    return message.body


@dataclass
class Incoming:
    """One accepted record, as a handler sees it."""

    record: ConsumerRecord[Any, Any]
    event: ParsedEvent
    span: Span
    # The process span's context as the propagator writes it (None when tracing is off), for
    # the outbox rows the record causes: their records continue this trace.
    traceparent: str | None

    @property
    def id(self) -> str:
        return self.event.envelope.id

    @property
    def key(self) -> str | None:
        """The record's key as text. A key is the producer's routing hint, not part of the
        contract: bytes that are not UTF-8 show as replacement characters rather than fail."""
        key = self.record.key
        return key.decode("utf-8", "replace") if isinstance(key, bytes) else key


BatchHandler = Callable[[asyncpg.Connection, list[Incoming]], Awaitable[None]]


def data_text(record: ConsumerRecord[Any, Any], name: str) -> str | None:
    """``data.<name>`` of a record's CloudEvent read straight from its bytes, for a ``select=``
    that passes over records plainly meant for another consumer; None unless it is plainly
    there as text (not JSON, no such field, not a string): such a record goes the whole way, to
    be handled or dead-lettered with its reason."""
    try:
        value = orjson.loads(record.value or b"")["data"][name]
    except (orjson.JSONDecodeError, TypeError, KeyError):
        return None
    return value if isinstance(value, str) else None


def envelope_text(record: ConsumerRecord[Any, Any], name: str) -> str | None:
    """A CloudEvent attribute (``type``, ``source``...) of a record read straight from its bytes,
    for a ``select=`` like :func:`data_text`; None unless it is plainly there as text."""
    try:
        value = orjson.loads(record.value or b"")[name]
    except (orjson.JSONDecodeError, TypeError, KeyError):
        return None
    return value if isinstance(value, str) else None


def per_event(handler: Callable[[asyncpg.Connection, Incoming], Awaitable[None]]) -> BatchHandler:
    """Adapt a handler of one event to the batch interface."""

    async def run(conn: asyncpg.Connection, items: list[Incoming]) -> None:
        for item in items:
            await handler(conn, item)

    return run


@dataclass
class ConsumerStats:
    """Counters an operator (and the tests) can read; exported as metrics by the service."""

    processed: int = 0
    duplicates: int = 0
    dead_lettered: dict[str, int] = field(default_factory=dict)
    retried: int = 0
    batches: int = 0
    passed_over: int = 0  # addressed to another consumer (see ``select``): not parsed, not stored


@dataclass
class ConsumerOptions:
    max_records: int = 500
    retries: int = 3
    backoff_s: float = 0.2
    infrastructure_backoff_s: float = 1.0
    # How long one poll waits for the first record (it returns as soon as any arrive); an empty
    # poll is followed by the next at once (lampo.messaging.polling, not FastStream's idle sleep).
    batch_timeout_ms: int = 50
    # Bytes one fetch takes from a partition (aiokafka's default: 1 MiB). A consumer of large
    # records that crowd one partition (an access result's parts share their request's key)
    # takes more per poll: fewer polls, transactions and commits per request.
    max_partition_fetch_bytes: int = 1024 * 1024
    # Parse and validate the next batch while this one's transaction runs (see the module's
    # docstring): for a consumer whose batches are large and their transactions long (ingest).
    pipeline: bool = False


Observer = Callable[[str, list[Incoming]], Awaitable[None] | None]
# Reads a record value; raises ContractViolation for anything it cannot accept. The default is
# the public contracts' catalog; an internal topic passes a parser for its own event types.
Parser = Callable[[str, bytes], ParsedEvent]
# Says from the raw record, cheaply, whether it is for this consumer at all; False only when it
# is plainly another's (a shared topic such as privacy.tasks.v1 read by every participant).
Selector = Callable[[ConsumerRecord[Any, Any]], bool]


# pipeline: records parsed between two chances for the transaction in flight to go on.
YIELD_EVERY = 16


def _rewind(msg: KafkaMessage, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
    """Put each partition of ``records`` back at its earliest record among them. A partition no
    longer assigned (a rebalance, the consumer stopped) is left: its next owner starts from the
    last committed offset anyway."""
    earliest: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        earliest[tp] = min(earliest.get(tp, record.offset), record.offset)
    for tp, offset in earliest.items():
        try:
            msg.consumer.seek(partition=tp, offset=offset)
        except (KafkaError, ValueError) as e:  # IllegalStateError: not assigned here now
            log.warning("%s/%d not rewound: %s", tp.topic, tp.partition, type(e).__name__)


def _next_offsets(records: Sequence[ConsumerRecord[Any, Any]]) -> dict[TopicPartition, OffsetAndMetadata]:
    """The offsets to commit once ``records`` are done: after the last one of each partition."""
    last: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        last[tp] = max(last.get(tp, record.offset), record.offset)
    return {tp: OffsetAndMetadata(offset + 1, "") for tp, offset in last.items()}


class ReliableConsumer:
    def __init__(
        self,
        *,
        name: str,
        topic: str,
        group_id: str,
        pool: Callable[[], asyncpg.Pool],
        handler: BatchHandler,
        broker: KafkaBroker,
        tracer: Tracer,
        options: ConsumerOptions | None = None,
        observers: Sequence[Observer] = (),
        parser: Parser = parse,
        select: Selector | None = None,
        verify: SignaturePolicy | None = None,
    ) -> None:
        self.name = name
        self._verify = verify
        self._parse = parser
        self._select = select
        self.topic = topic
        self.group_id = group_id
        self._pool = pool
        self._handler = handler
        self._broker = broker
        self._tracer = tracer
        self.options = options or ConsumerOptions()
        self._observers = list(observers)
        self.stats = ConsumerStats()
        # pipeline: the batch whose transaction is in flight (True once committed, False when
        # rewound) and its records.
        self._in_flight: tuple[asyncio.Task[bool], list[ConsumerRecord[Any, Any]]] | None = None
        # Told each committed batch's duration in seconds (lampo.metrics: a histogram).
        self.on_batch_done: Callable[[float], None] | None = None

    def register(self) -> None:
        subscriber = self._broker.subscriber(
            Topic(self.topic, declare=False),
            group_id=self.group_id,
            batch=True,
            max_records=self.options.max_records,
            batch_timeout_ms=self.options.batch_timeout_ms,
            max_partition_fetch_bytes=self.options.max_partition_fetch_bytes,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.MANUAL,
            title=f"{self.name}:{self.topic}",
            parser=tolerant_batch_parser,
            decoder=undecoded_batch,
        )
        long_poll(subscriber)  # no idle sleep between polls: see lampo.messaging.polling

        async def on_batch(msg: KafkaMessage) -> None:
            await self.consume_batch(msg)

        subscriber(on_batch)

    # -- the consume path ---------------------------------------------------------------------

    async def consume_batch(self, msg: KafkaMessage) -> None:
        records: tuple[ConsumerRecord[Any, Any], ...] = msg.raw_message
        if not records:
            return
        if self.options.pipeline:
            await self._consume_pipelined(msg, list(records))
            return
        started = time.perf_counter()
        try:
            await self._process(list(records))
        except INFRASTRUCTURE_ERRORS as e:
            # Not the records' fault: rewind to the batch's first offsets and try again later.
            log.warning("%s: batch rewound after %s; retrying", self.name, type(e).__name__)
            await msg.nack()
            await asyncio.sleep(self.options.infrastructure_backoff_s)
            return
        except Exception:
            # A defect in this consume path itself: never let the consumer's position run past
            # records that were not handled. Rewind, and keep the failure visible in the log.
            log.exception("%s: unexpected failure; batch rewound", self.name)
            await msg.nack()
            await asyncio.sleep(self.options.infrastructure_backoff_s)
            return
        await msg.ack()
        self.stats.batches += 1
        if self.on_batch_done is not None:
            self.on_batch_done(time.perf_counter() - started)

    async def _consume_pipelined(self, msg: KafkaMessage, records: list[ConsumerRecord[Any, Any]]) -> None:
        started = time.perf_counter()
        # Parsed while the previous batch's transaction runs: _prepare yields to it now and then.
        accepted, rejected = await self._prepare(records, yielding=self._in_flight is not None)
        previous, self._in_flight = self._in_flight, None
        # Shielded: a consume loop cancelled at shutdown must not cancel a transaction half-way.
        if previous is not None and not await asyncio.shield(previous[0]):
            # The batch before this one was rewound (its partitions are back at its first
            # records); this one was fetched after it and goes back with it.
            for item in accepted:
                item.span.end()
            for _, _, _, span in rejected:
                span.end()
            _rewind(msg, [*previous[1], *records])
            return
        task = asyncio.create_task(self._finish(msg, records, accepted, rejected, started))
        self._in_flight = (task, records)

    async def _finish(
        self,
        msg: KafkaMessage,
        records: list[ConsumerRecord[Any, Any]],
        accepted: list[Incoming],
        rejected: list[tuple[ConsumerRecord[Any, Any], str, str, Span]],
        started: float,
    ) -> bool:
        """A prepared batch's transaction, dead letters and offsets; False when it was rewound."""
        try:
            await self._complete(accepted, rejected)
        except INFRASTRUCTURE_ERRORS as e:
            log.warning("%s: batch rewound after %s; retrying", self.name, type(e).__name__)
            _rewind(msg, records)
            await asyncio.sleep(self.options.infrastructure_backoff_s)
            return False
        except Exception:
            log.exception("%s: unexpected failure; batch rewound", self.name)
            _rewind(msg, records)
            await asyncio.sleep(self.options.infrastructure_backoff_s)
            return False
        try:
            kafka_consumer: Any = msg.consumer  # aiokafka's: commit() takes the offsets to commit
            await kafka_consumer.commit(_next_offsets(records))
        except Exception as e:  # noqa: BLE001 - the transaction committed: a redelivery is a duplicate
            log.warning(
                "%s: offsets not committed (%s); a redelivered batch is skipped by the inbox",
                self.name,
                type(e).__name__,
            )
        self.stats.batches += 1
        if self.on_batch_done is not None:
            self.on_batch_done(time.perf_counter() - started)
        return True

    async def drain(self) -> None:
        """Wait for the batch in flight (pipeline), if any: before the pools close at shutdown."""
        if self._in_flight is not None:
            task, _ = self._in_flight
            self._in_flight = None
            await asyncio.wait([task])

    async def _process(self, records: list[ConsumerRecord[Any, Any]]) -> None:
        accepted, rejected = await self._prepare(records)
        await self._complete(accepted, rejected)

    async def _prepare(
        self, records: list[ConsumerRecord[Any, Any]], *, yielding: bool = False
    ) -> tuple[list[Incoming], list[tuple[ConsumerRecord[Any, Any], str, str, Span]]]:
        """Parse, verify and trace each record: the accepted ones and the rejected ones with
        their reasons. ``yielding``: let other tasks run every few records (a transaction in
        flight then sends its next statement without waiting for the whole batch)."""
        accepted: list[Incoming] = []
        rejected: list[tuple[ConsumerRecord[Any, Any], str, str, Span]] = []
        for n, record in enumerate(records, 1):
            if yielding and n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            if self._select is not None and not self._select(record):
                self.stats.passed_over += 1  # another consumer's: no span, no inbox row, no effect
                continue
            # A hand-made span, on purpose: FastStream's KafkaTelemetryMiddleware makes one span
            # per *batch* here (batch=True), before the records are parsed, and carries the raw
            # Kafka key; each record needs its own span, under the context its own headers carry
            # (a batch mixes traces), that also covers its dead-lettering. So the middleware is not
            # installed, and this is the record's ``process`` span, with the current messaging
            # conventions. ``lampo.flow`` is given at start: the sampler decides by it.
            span = self._tracer.start_span(
                f"process {self.topic}",
                context=context_from_headers(record.headers),
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.type": "process",
                    "messaging.operation.name": "process",
                    "messaging.destination.name": self.topic,
                    "messaging.consumer.group.name": self.group_id,
                    "messaging.destination.partition.id": str(record.partition),
                    "messaging.kafka.message.offset": record.offset,
                    **({FLOW: flow} if (flow := flow_of(self.topic)) else {}),
                },
            )
            try:
                event = self._parse(self.topic, record.value or b"")
            except ContractViolation as e:
                rejected.append((record, e.reason, e.detail, span))
                continue
            if self._verify is not None and (detail := self._verify.check(record, event)) is not None:
                rejected.append((record, UNAUTHENTICATED, detail, span))  # acts on nothing, no inbox row
                continue
            span.set_attributes(
                {"messaging.message.id": event.envelope.id, "cloudevents.event_type": event.envelope.type}
            )
            accepted.append(Incoming(record, event, span, traceparent_of(span)))
        return accepted, rejected

    async def _complete(
        self, accepted: list[Incoming], rejected: list[tuple[ConsumerRecord[Any, Any], str, str, Span]]
    ) -> None:
        """Apply the accepted records (isolating a failing one), dead-letter the rejected ones,
        end the spans and tell the observers."""
        handled: list[Incoming] = []
        if accepted:
            try:
                handled = await self._apply(accepted)
            except INFRASTRUCTURE_ERRORS:
                for item in accepted:
                    item.span.end()
                for _, _, _, span in rejected:
                    span.end()
                raise
            except Exception:  # noqa: BLE001 - isolate the failing record below
                handled = []
                for item, outcome in await self._apply_split(accepted):
                    if outcome is None:
                        handled.append(item)
                    else:
                        rejected.append((item.record, outcome[0], outcome[1], item.span))

        # The batch's dead-letter copies are sent together (one produce request, not one round
        # trip each: a flood of bad records would otherwise crawl), all confirmed before the
        # batch's offsets are committed.
        await asyncio.gather(*(self._dead_letter(record, reason, detail) for record, reason, detail, _ in rejected))
        for _, reason, _, span in rejected:
            span.set_attribute("error.type", reason)
            span.set_status(Status(StatusCode.ERROR, reason))
            span.end()
        for item in handled:
            item.span.end()
        for observer in self._observers:
            result = observer(self.name, handled)
            if asyncio.iscoroutine(result):
                await result

    async def _apply(self, items: list[Incoming]) -> list[Incoming]:
        duplicates: list[Incoming] = []
        async with self._pool().acquire() as conn, conn.transaction():
            fresh = await inbox.claim(conn, self.name, [i.id for i in items])
            new_items: list[Incoming] = []
            seen: set[str] = set()
            for item in items:
                if item.id in fresh and item.id not in seen:
                    seen.add(item.id)
                    new_items.append(item)
                else:
                    duplicates.append(item)
            if new_items:
                if len(new_items) == 1:  # one record: its SQL is its own, under its process span
                    with trace.use_span(
                        new_items[0].span, end_on_exit=False, record_exception=False, set_status_on_exception=False
                    ):  # an exception's message may quote the record: the consume path sets the status
                        await self._handler(conn, new_items)
                else:  # a batch's statements serve many traces at once: none of them owns them
                    await self._handler(conn, new_items)
        # Counted once committed: a rolled-back attempt (then split or retried) counts nothing.
        for item in duplicates:
            item.span.set_attribute("lampo.duplicate", True)
        self.stats.duplicates += len(duplicates)
        self.stats.processed += len(new_items)
        return items

    async def _apply_split(self, items: list[Incoming]) -> list[tuple[Incoming, tuple[str, str] | None]]:
        """After ``items`` failed as one transaction: apply each half in a transaction of its
        own, splitting a failing half again, down to single records, which get
        :meth:`_apply_alone` (the dead-letter reason of a ``Rejected``, bounded retries of
        anything else). A bad record among hundreds costs a few dozen transactions instead of
        one per record; every record is still applied exactly once, in order (the left half is
        done before the right one starts). Returns each item with None (applied or a duplicate)
        or the (reason, detail) it is dead-lettered with."""
        if len(items) == 1:
            return [(items[0], await self._apply_alone(items[0]))]
        middle = len(items) // 2
        outcomes: list[tuple[Incoming, tuple[str, str] | None]] = []
        for half in (items[:middle], items[middle:]):
            try:
                await self._apply(half)
            except INFRASTRUCTURE_ERRORS:
                raise
            except Exception:  # noqa: BLE001 - narrowed down by splitting again
                outcomes += await self._apply_split(half)
            else:
                outcomes += [(item, None) for item in half]
        return outcomes

    async def _apply_alone(self, item: Incoming) -> tuple[str, str] | None:
        """Apply one record with bounded retries; returns (reason, detail) when it must go to
        the DLQ, None when applied (or a duplicate)."""
        attempt = 0
        while True:
            try:
                await self._apply([item])
                return None
            except Rejected as e:
                return e.reason, e.detail
            except INFRASTRUCTURE_ERRORS:
                raise
            except Exception as e:  # noqa: BLE001 - classified: retried, then dead-lettered with its type
                attempt += 1
                self.stats.retried += 1
                if attempt > self.options.retries:
                    log.error(
                        "%s: event %s failed after %d attempts: %s", self.name, item.id, attempt, type(e).__name__
                    )
                    return "processing_failed", f"{type(e).__name__} after {attempt} attempts"
                await asyncio.sleep(self.options.backoff_s * 2 ** (attempt - 1))

    async def _dead_letter(self, record: ConsumerRecord[Any, Any], reason: str, detail: str) -> None:
        headers = {name: (value or b"").decode(errors="replace") for name, value in (record.headers or ())}
        headers.update(
            {
                "error.reason": reason,
                "error.detail": detail,
                "error.topic": record.topic,
                "error.partition": str(record.partition),
                "error.offset": str(record.offset),
                "error.consumer": self.name,
            }
        )
        headers.setdefault(TRACEPARENT, "")
        if not headers[TRACEPARENT]:
            del headers[TRACEPARENT]
        await self._broker.publish(record.value or b"", dlq(record.topic), key=record.key, headers=headers)
        self.stats.dead_lettered[reason] = self.stats.dead_lettered.get(reason, 0) + 1
        log.warning(
            "%s: record %s/%d@%d dead-lettered: %s", self.name, record.topic, record.partition, record.offset, reason
        )
