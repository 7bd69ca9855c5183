"""Metrics through OpenTelemetry, served as Prometheus text on each service's ``/metrics``.

Every ``Runtime`` owns a ``ServiceMetrics``: an SDK ``MeterProvider`` read by an in-memory
reader at scrape time and rendered to the Prometheus text format here (no global registry, so
several services or tests in one process keep their own). The platform's own instruments:

- ``lampo_consumer_processed_total``, ``lampo_consumer_duplicates_total``,
  ``lampo_consumer_retried_total``, ``lampo_consumer_batches_total`` (labels ``consumer``, ``topic``, ``group``)
- ``lampo_consumer_dead_lettered_total`` (plus ``reason``)
- ``lampo_consumer_lag`` (``consumer``, ``topic``, ``partition``, ``group``): highwater - position,
  read from the Kafka client when scraped
- ``lampo_outbox_sent_total``

A service adds its own through ``runtime.meter`` (an OpenTelemetry ``Meter``); values that need
a query can be refreshed just before each scrape with ``runtime.metrics.before_collect(fn)``.
Labels are technical facts only (topic, reason, kind, state, participant): never personal data,
never a per-subject id (also for cardinality's sake).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    InMemoryMetricReader,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.resources import Resource

if TYPE_CHECKING:
    from lampo.messaging.consumer import ReliableConsumer
    from lampo.messaging.outbox import OutboxRelay

log = logging.getLogger("lampo.metrics")

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# OpenTelemetry unit -> Prometheus name suffix (the usual conversion); "{thing}" units add nothing.
_UNIT_SUFFIX = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "1": "ratio"}
_INVALID = re.compile(r"[^a-zA-Z0-9_:]")

KafkaConsumerSource = Callable[[], Any]  # returns the running aiokafka consumer, or None
BeforeCollect = Callable[[], Awaitable[None] | None]


def metric_name(name: str, unit: str = "", *, counter: bool = False) -> str:
    base = _INVALID.sub("_", name)
    suffix = _UNIT_SUFFIX.get(unit, "")
    if suffix and not base.endswith("_" + suffix):
        base = f"{base}_{suffix}"
    if counter and not base.endswith("_total"):
        base += "_total"
    return base


def _label_name(key: str) -> str:
    name = _INVALID.sub("_", key).replace(":", "_")
    return f"_{name}" if name[:1].isdigit() else name


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(attributes: Any, extra: Sequence[tuple[str, str]] = ()) -> str:
    pairs = [(_label_name(str(k)), str(v)) for k, v in sorted((attributes or {}).items())]
    pairs += list(extra)
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _number(value: float) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return repr(value)
    return str(value)


def render_prometheus(data: MetricsData | None) -> str:
    """Prometheus text exposition (0.0.4) of cumulative SDK metrics data. Metrics of the same
    name from several instrumentation scopes are merged under one ``# TYPE`` line."""
    families: dict[str, tuple[str, str, list[str]]] = {}
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                point_data = metric.data
                if isinstance(point_data, Sum):
                    counter = point_data.is_monotonic
                    name = metric_name(metric.name, metric.unit or "", counter=counter)
                    kind = "counter" if counter else "gauge"
                    lines = [f"{name}{_labels(p.attributes)} {_number(p.value)}" for p in point_data.data_points]
                elif isinstance(point_data, Gauge):
                    name, kind = metric_name(metric.name, metric.unit or ""), "gauge"
                    lines = [f"{name}{_labels(p.attributes)} {_number(p.value)}" for p in point_data.data_points]
                elif isinstance(point_data, Histogram):
                    name, kind = metric_name(metric.name, metric.unit or ""), "histogram"
                    lines = []
                    for p in point_data.data_points:
                        cumulative = 0
                        for bound, count in zip([*p.explicit_bounds, math.inf], p.bucket_counts, strict=False):
                            cumulative += count
                            le = "+Inf" if math.isinf(bound) else _number(float(bound))
                            lines.append(f"{name}_bucket{_labels(p.attributes, [('le', le)])} {cumulative}")
                        lines.append(f"{name}_sum{_labels(p.attributes)} {_number(p.sum)}")
                        lines.append(f"{name}_count{_labels(p.attributes)} {p.count}")
                else:  # exponential histograms are not configured by this suite
                    continue
                family = families.setdefault(name, (kind, metric.description or "", []))
                family[2].extend(lines)
    out: list[str] = []
    for name, (kind, description, lines) in sorted(families.items()):
        if description:
            out.append(f"# HELP {name} {_escape(description)}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(lines)
    return "\n".join(out) + "\n"


class ServiceMetrics:
    """One service's meter provider, its platform instruments and its Prometheus rendering."""

    def __init__(self, service_name: str) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(
            resource=Resource.create({"service.name": service_name, "service.namespace": "lampo"}),
            metric_readers=[self.reader],
        )
        self.meter: Meter = self.provider.get_meter("lampo.platform")
        self._consumers: list[tuple[ReliableConsumer, KafkaConsumerSource]] = []
        self._relay: Callable[[], OutboxRelay | None] = lambda: None
        self._before: list[BeforeCollect] = []
        self._lag: dict[tuple[str, str, str, int], int] = {}
        self._lock = asyncio.Lock()
        self._register_platform_instruments()

    # -- what services and the runtime hook in ---------------------------------------------------

    def track_consumer(self, consumer: ReliableConsumer, kafka_consumer: KafkaConsumerSource) -> None:
        self._consumers.append((consumer, kafka_consumer))

    def track_relay(self, relay: Callable[[], OutboxRelay | None]) -> None:
        self._relay = relay

    def before_collect(self, fn: BeforeCollect) -> None:
        """Run ``fn`` (sync or async) before every scrape, e.g. to refresh a value an observable
        gauge reports. A failing hook is logged and skipped; the scrape goes on."""
        self._before.append(fn)

    # -- scraping ------------------------------------------------------------------------------

    async def render(self) -> str:
        async with self._lock:
            for fn in self._before:
                try:
                    result = fn()
                    if asyncio.iscoroutine(result):
                        await asyncio.wait_for(result, timeout=5.0)
                except Exception as e:  # noqa: BLE001 - a scrape reports what it can
                    log.warning("metrics hook failed: %s", type(e).__name__)
            await self.refresh_lag()
            return render_prometheus(self.reader.get_metrics_data())

    async def refresh_lag(self) -> None:
        lag: dict[tuple[str, str, str, int], int] = {}
        for consumer, source in self._consumers:
            client = source()
            if client is None:
                continue
            try:
                partitions = client.assignment()
            except Exception:  # noqa: BLE001, S112 - not started or stopping
                continue
            for tp in partitions:
                highwater = client.highwater(tp)
                if highwater is None:  # no fetch answered yet for this partition
                    continue
                try:
                    position = await asyncio.wait_for(client.position(tp), timeout=1.0)
                except Exception:  # noqa: BLE001, S112 - unassigned meanwhile or no position yet
                    continue
                lag[(consumer.name, consumer.group_id, tp.topic, tp.partition)] = max(0, highwater - position)
        self._lag = lag

    def shutdown(self) -> None:
        self.provider.shutdown()

    # -- platform instruments ------------------------------------------------------------------

    def _register_platform_instruments(self) -> None:
        def per_consumer(read: Callable[[ReliableConsumer], int]) -> Callable[[CallbackOptions], Iterable[Observation]]:
            def callback(options: CallbackOptions) -> Iterable[Observation]:
                return [
                    Observation(read(c), {"consumer": c.name, "topic": c.topic, "group": c.group_id})
                    for c, _ in self._consumers
                ]

            return callback

        meter = self.meter
        meter.create_observable_counter(
            "lampo.consumer.processed",
            [per_consumer(lambda c: c.stats.processed)],
            unit="{event}",
            description="Events applied by a consumer (duplicates excluded)",
        )
        meter.create_observable_counter(
            "lampo.consumer.duplicates",
            [per_consumer(lambda c: c.stats.duplicates)],
            unit="{event}",
            description="Redelivered events skipped by the inbox",
        )
        meter.create_observable_counter(
            "lampo.consumer.passed_over",
            [per_consumer(lambda c: c.stats.passed_over)],
            unit="{event}",
            description="Records addressed to another consumer of a shared topic, passed over unparsed",
        )
        meter.create_observable_counter(
            "lampo.consumer.retried",
            [per_consumer(lambda c: c.stats.retried)],
            unit="{attempt}",
            description="Handler attempts retried after an error",
        )
        meter.create_observable_counter(
            "lampo.consumer.batches",
            [per_consumer(lambda c: c.stats.batches)],
            unit="{batch}",
            description="Batches committed",
        )

        def dead_lettered(options: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(count, {"consumer": c.name, "topic": c.topic, "group": c.group_id, "reason": reason})
                for c, _ in self._consumers
                for reason, count in sorted(c.stats.dead_lettered.items())
            ]

        meter.create_observable_counter(
            "lampo.consumer.dead_lettered",
            [dead_lettered],
            unit="{record}",
            description="Records copied to <topic>.dlq, by reason",
        )

        def lag(options: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(value, {"consumer": name, "group": group, "topic": topic, "partition": partition})
                for (name, group, topic, partition), value in sorted(self._lag.items())
            ]

        meter.create_observable_gauge(
            "lampo.consumer.lag",
            [lag],
            unit="{record}",
            description="Records not yet consumed: highwater - position, per assigned partition",
        )

        def sent(options: CallbackOptions) -> Iterable[Observation]:
            relay = self._relay()
            return [Observation(relay.sent)] if relay is not None else []

        meter.create_observable_counter(
            "lampo.outbox.sent", [sent], unit="{event}", description="Outbox rows sent to Kafka by the relay"
        )

        def active(options: CallbackOptions) -> Iterable[Observation]:
            relay = self._relay()
            return [Observation(int(relay.active))] if relay is not None else []

        meter.create_observable_gauge(
            "lampo.outbox.relay.active",
            [active],
            unit="{relay}",
            description="1 when this instance's relay is the one of its database that sends (holds the relay lock), 0 while it waits",
        )

        def gc_frozen(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(gc.get_freeze_count())]

        meter.create_observable_gauge(
            "lampo.process.gc.frozen_objects",
            [gc_frozen],
            unit="{object}",
            description="Objects frozen out of the garbage collector's full collections after start-up",
        )
