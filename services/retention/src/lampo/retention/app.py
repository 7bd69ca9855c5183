"""Composition root of the retention service: ``create_app()`` for ``faststream run --factory``."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiokafka.structs import ConsumerRecord
from faststream.asgi import AsgiFastStream
from opentelemetry.sdk.trace import SpanProcessor
from pydantic import BaseModel

from lampo.clock import Clock
from lampo.contracts.catalog import (
    BILLING_INBOUND,
    CONSENT_EVENTS,
    EVENT_TYPES,
    PRIVACY_ACKS,
    PRIVACY_TASKS,
    RECORDINGS_INBOUND,
    REGISTRY_EVENTS,
    REGISTRY_INBOUND,
    RETENTION_INBOUND,
    ParsedEvent,
    parse,
)
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.errors import ContractViolation
from lampo.datamap import DataMap, load_datamap
from lampo.messaging.asyncapi import sends
from lampo.messaging.consumer import (
    BatchHandler,
    ConsumerOptions,
    Observer,
    Parser,
    ReliableConsumer,
    Selector,
    envelope_text,
)
from lampo.participant import ack_policy
from lampo.retention import handlers
from lampo.retention.domain import HOLD_STATE_TYPE, HOLDS_TOPIC, SOURCE, HoldState
from lampo.retention.settings import RetentionSettings
from lampo.retention.sweep import Sweeper, daily_sweep
from lampo.service import Runtime, serve

MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"
log = logging.getLogger("lampo.retention")


class Ignored(BaseModel):
    """Stand-in ``data`` for a record the retention service only observes and does not need."""

    reason: str


def observing_parser(wanted: frozenset[str], ignored: Counter[str]) -> Parser:
    """Parser for another service's topic, read only to start clocks. Only the event types that
    start a clock are validated; a record that is not one, or that fails its contract, is
    counted and skipped. Dead-lettering it is the owning service's job: doing it here too would
    copy every rejection twice."""

    def parse_some(topic: str, raw: bytes) -> ParsedEvent:
        try:
            envelope = CloudEvent.from_bytes(raw)
        except ContractViolation as e:
            ignored[e.reason] += 1
            stand_in = CloudEvent.new(
                "retention.unreadable", SOURCE, {}, id=f"unreadable-{hashlib.sha256(raw).hexdigest()[:32]}"
            )
            return ParsedEvent(topic, stand_in, Ignored(reason=e.reason))
        if envelope.type not in wanted:
            return ParsedEvent(topic, envelope, Ignored(reason="not_a_clock_event"))
        try:
            return parse(topic, raw)
        except ContractViolation as e:
            ignored[e.reason] += 1
            return ParsedEvent(topic, envelope, Ignored(reason=e.reason))

    return parse_some


def observing_selector(topic: str, wanted: frozenset[str]) -> Selector | None:
    """On a topic that also carries types retention does not need (customer.upserted, readings,
    payments...), a record plainly of such a type is passed over before parsing, tracing, the
    inbox and a transaction: observing seeding traffic only to skip it cost retention about as
    much CPU as the registry spent storing it (issue 17). A record whose type cannot be read goes
    the whole way, to be counted by the parser. None: every type of the topic is wanted."""
    if set(EVENT_TYPES.get(topic, {})) <= wanted:
        return None

    def needed(record: ConsumerRecord[Any, Any]) -> bool:
        event_type = envelope_text(record, "type")
        return event_type is None or event_type in wanted

    return needed


class Retention:
    """The running service: its runtime, data map and sweeper."""

    def __init__(self, runtime: Runtime, settings: RetentionSettings, datamap: DataMap) -> None:
        self.runtime = runtime
        self.settings = settings
        self.datamap = datamap
        self.ignored: dict[str, Counter[str]] = {}
        """Per observed topic: records skipped because they failed their contract, by reason."""

    @property
    def sweeper(self) -> Sweeper:
        return Sweeper(
            self.runtime.pool,
            self.datamap,
            self.runtime.clock,
            batch=self.settings.sweep_batch,
            pause_s=self.settings.sweep_pause_s,
            workers=self.settings.sweep_workers,
            deadline=timedelta(days=self.settings.purge_deadline_days),
        )

    def consumer(self, name: str) -> ReliableConsumer:
        return next(c for c in self.runtime.consumers if c.name == name)


def build(
    settings: RetentionSettings | None = None,
    *,
    observers: Sequence[Observer] = (),
    span_processors: Sequence[SpanProcessor] = (),
    clock: Clock | None = None,
) -> Retention:
    settings = settings or RetentionSettings()
    datamap = load_datamap(settings.datamap)  # an invalid data map stops the service here
    runtime = Runtime(settings, migrations=MIGRATIONS, span_processors=span_processors, clock=clock)
    service = Retention(runtime, settings, datamap)
    own: dict[str, tuple[str, BatchHandler]] = {
        RETENTION_INBOUND: ("retention:holds", handlers.on_retention_inbound),
        PRIVACY_ACKS: ("retention:purge-acks", handlers.make_ack_handler(runtime.clock.now)),
    }
    # Other services' topics, read for the events that start clocks (customer.relationship_ended
    # only on registry.inbound.v1: the rest is the registry's business).
    observed: dict[str, tuple[frozenset[str], BatchHandler]] = {
        REGISTRY_EVENTS: (frozenset({"subject.changed", "subject.erased"}), handlers.on_registry_events),
        REGISTRY_INBOUND: (frozenset({"customer.relationship_ended"}), handlers.on_registry_inbound),
        BILLING_INBOUND: (
            frozenset({"invoice.issued", "credit.checked"}),
            handlers.make_billing_handler(datamap.controller.financial_year_end_month),
        ),
        RECORDINGS_INBOUND: (frozenset({"call.recorded", "email.archived"}), handlers.on_recordings_inbound),
        CONSENT_EVENTS: (frozenset({"consent.changed"}), handlers.on_consent_events),
    }
    if runtime.signer is None:
        log.error("retention: LAMPO_SIGNING_KEY is not set: participants obey none of its sweeps' purge tasks")
    for topic, (name, handler) in own.items():
        acks = topic == PRIVACY_ACKS
        runtime.consume(
            topic,
            handler,
            name=name,
            observers=observers,
            select=handlers.answers_a_sweep if acks else None,
            # A purge ack counts only when signed by the participant it names (lampo.signing).
            verify=ack_policy(runtime.trusted) if acks else None,
        )
    for topic, (wanted, handler) in observed.items():
        service.ignored[topic] = Counter()
        parser = observing_parser(wanted, service.ignored[topic])
        runtime.consume(
            topic,
            handler,
            name=f"retention:{topic}",
            observers=observers,
            parser=parser,
            select=observing_selector(topic, wanted),
            # Inbox rows stay: a record replayed after its subject's erasure must not start the
            # subject's clocks again (tests/faults/test_replay.py).
            # It reads a record's type and customer number only, from topics of whole documents
            # (call recordings with their audio): a quarter of the default fetch per partition
            # keeps its buffers small (a record larger than that still comes, alone).
            options=ConsumerOptions(max_records=settings.consumer_batch, max_partition_fetch_bytes=256 * 1024),
        )
    # The outbox's records: purge tasks of the sweeps (keyed by the sweep's id, sweep.py) and the
    # holds standing per customer (internal, compacted, read by dsar and billing; handlers.py).
    sends(runtime, PRIVACY_TASKS, key="request_id (a sweep's id)")
    sends(runtime, HOLDS_TOPIC, {HOLD_STATE_TYPE: HoldState}, key="customer_number")
    runtime.every(
        "daily sweep",
        lambda: daily_sweep(service.sweeper),
        interval_s=settings.sweep_interval_s,
        first_delay_s=settings.sweep_first_delay_s,
    )
    return service


def create_app() -> AsgiFastStream:
    return build().runtime.app


def main() -> None:
    serve(build().runtime)
