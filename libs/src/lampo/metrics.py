"""Metrics through OpenTelemetry, served as Prometheus text on each service's ``/metrics``.

Every ``Runtime`` owns a ``ServiceMetrics``: an SDK ``MeterProvider`` read by OpenTelemetry's
Prometheus exporter (``PrometheusMetricReader``) into a ``prometheus_client`` registry of its own
(never the global default one, so several services or tests in one process keep their own),
beside the standard ``process_*`` and ``python_gc_*``/``python_info`` collectors. The platform's
own instruments:

- ``lampo_consumer_processed_total``, ``lampo_consumer_duplicates_total``,
  ``lampo_consumer_retried_total``, ``lampo_consumer_batches_total`` (labels ``consumer``, ``topic``, ``group``)
- ``lampo_consumer_dead_lettered_total`` (plus ``reason``)
- ``lampo_consumer_lag`` (``consumer``, ``topic``, ``partition``, ``group``): highwater - position,
  read from the Kafka client when scraped
- ``lampo_consumer_batch_duration_seconds`` (histogram: one batch from poll to commit)
- ``lampo_outbox_sent_total``; ``lampo_outbox_backlog`` and ``lampo_outbox_oldest_age_seconds``
  (rows not yet relayed, read from the database when scraped)
- ``http_server_request_duration_seconds`` (histogram of the mounted HTTP APIs: ``http_request_method``,
  ``http_route`` (the route's template), ``http_response_status_code``)

A service adds its own through ``runtime.meter`` (an OpenTelemetry ``Meter``); values that need
a query can be refreshed just before each scrape with ``runtime.metrics.before_collect(fn)``.
Labels are technical facts only (topic, reason, kind, state, participant): never personal data,
never a per-subject id (also for cardinality's sake). ``exported_names`` lists every series name
a runtime can export (deploy/tools/metrics_check.py holds the alert rules and the dashboard to it).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.exporter.prometheus._mapping import map_unit, sanitize_full_name
from opentelemetry.metrics import (
    CallbackOptions,
    Counter,
    Histogram,
    Meter,
    ObservableCounter,
    Observation,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

if TYPE_CHECKING:
    import asyncpg

    from lampo.messaging.consumer import ReliableConsumer
    from lampo.messaging.outbox import OutboxRelay

log = logging.getLogger("lampo.metrics")

# What ``generate_latest`` writes (prometheus_client's CONTENT_TYPE_LATEST names a newer version
# this text is also valid as; 0.0.4 is what every scraper reads).
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Buckets (seconds) of the platform's duration histograms.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

KafkaConsumerSource = Callable[[], Any]  # returns the running aiokafka consumer, or None
BeforeCollect = Callable[[], Awaitable[None] | None]

# Every ServiceMetrics made in this process, for ``exported_names`` of a whole suite.
CREATED: weakref.WeakSet[ServiceMetrics] = weakref.WeakSet()

_OUTBOX_BACKLOG = "SELECT count(*) AS n, extract(epoch FROM now() - min(created_at)) AS oldest FROM outbox"


def prometheus_names(instrument: Any) -> set[str]:
    """The series names the exporter writes for an OpenTelemetry instrument (its own conversion:
    dots to underscores, the unit as a suffix, ``_total`` for counters)."""
    name, unit = sanitize_full_name(instrument.name), map_unit(instrument.unit or "")
    if isinstance(instrument, Counter | ObservableCounter):
        return {CounterMetricFamily(name, "", unit=unit).name + "_total"}
    if isinstance(instrument, Histogram):
        family = HistogramMetricFamily(name, "", unit=unit).name
        return {family + suffix for suffix in ("_bucket", "_sum", "_count")}
    return {GaugeMetricFamily(name, "", unit=unit).name}


class ServiceMetrics:
    """One service's meter provider, its platform instruments and its Prometheus registry."""

    def __init__(self, service_name: str) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        # Scope labels (otel_scope_*) left out: the series are this runtime's, one scope each.
        self.reader = PrometheusMetricReader(scope_info_enabled=False, registry=self.registry)
        self.provider = MeterProvider(
            resource=Resource.create({"service.name": service_name, "service.namespace": "lampo"}),
            metric_readers=[self.reader],
        )
        self.meter: Meter = self.provider.get_meter("lampo.platform")
        self._consumers: list[tuple[ReliableConsumer, KafkaConsumerSource]] = []
        self._relay: Callable[[], OutboxRelay | None] = lambda: None
        self._pool: Callable[[], asyncpg.Pool | None] = lambda: None
        self._before: list[BeforeCollect] = []
        self._lag: dict[tuple[str, str, str, int], int] = {}
        self._outbox: tuple[int, float] | None = None
        self._lock = asyncio.Lock()
        self._register_platform_instruments()
        CREATED.add(self)

    # -- what services and the runtime hook in ---------------------------------------------------

    def track_consumer(self, consumer: ReliableConsumer, kafka_consumer: KafkaConsumerSource) -> None:
        self._consumers.append((consumer, kafka_consumer))
        labels = {"consumer": consumer.name, "topic": consumer.topic, "group": consumer.group_id}
        consumer.on_batch_done = lambda seconds: self._batch_duration.record(seconds, labels)

    def track_relay(self, relay: Callable[[], OutboxRelay | None]) -> None:
        self._relay = relay

    def track_outbox(self, pool: Callable[[], asyncpg.Pool | None]) -> None:
        """Read the outbox's backlog (rows not yet relayed, the oldest one's age) at each scrape."""
        self._pool = pool

    def before_collect(self, fn: BeforeCollect) -> None:
        """Run ``fn`` (sync or async) before every scrape, e.g. to refresh a value an observable
        gauge reports. A failing hook is logged and skipped; the scrape goes on."""
        self._before.append(fn)

    def time_http(self, app: Any) -> None:
        """Time every request of a mounted FastAPI/Starlette app, by method, route template and status."""
        app.add_middleware(_HttpTiming, histogram=self._http_duration)

    # -- scraping ------------------------------------------------------------------------------

    async def render(self) -> str:
        async with self._lock:
            for fn in [self._refresh_outbox, *self._before]:
                try:
                    result = fn()
                    if asyncio.iscoroutine(result):
                        await asyncio.wait_for(result, timeout=5.0)
                except Exception as e:  # noqa: BLE001 - a scrape reports what it can
                    log.warning("metrics hook failed: %s", type(e).__name__)
            await self.refresh_lag()
            return generate_latest(self.registry).decode()

    async def _refresh_outbox(self) -> None:
        pool = self._pool()
        if pool is None:
            self._outbox = None
            return
        async with pool.acquire() as conn:
            row = await conn.fetchrow(_OUTBOX_BACKLOG)
        self._outbox = (int(row["n"]), float(row["oldest"] or 0.0))

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

    def exported_names(self) -> set[str]:
        """Every series name this runtime can export: those of each instrument created on its
        meter provider (whether or not it has a value yet) and those the other collectors write."""
        names: set[str] = {"target_info"}
        for meter in list(self.provider._meters.values()):
            for instrument in list(meter._instrument_id_instrument.values()):
                names |= prometheus_names(instrument)
        for family in self.registry.collect():
            names |= {sample.name for sample in family.samples}
        return names

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

        def backlog(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(self._outbox[0])] if self._outbox is not None else []

        def oldest(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(self._outbox[1])] if self._outbox is not None else []

        meter.create_observable_gauge(
            "lampo.outbox.backlog", [backlog], unit="{event}", description="Outbox rows not yet sent to Kafka"
        )
        meter.create_observable_gauge(
            "lampo.outbox.oldest_age",
            [oldest],
            unit="s",
            description="Age of the oldest outbox row not yet sent (0 when none waits)",
        )
        self._batch_duration = meter.create_histogram(
            "lampo.consumer.batch.duration",
            unit="s",
            description="One consumer batch from its poll to its commit",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        # OpenTelemetry's semantic conventions name (http.server.request.duration, in seconds).
        self._http_duration = meter.create_histogram(
            "http.server.request.duration",
            unit="s",
            description="Duration of HTTP server requests",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
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


class _HttpTiming:
    """ASGI middleware: the request's duration into ``http.server.request.duration``. The route is
    the template the app matched (``/v1/requests/{request_id}``), never the path with its values."""

    def __init__(self, app: Any, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.histogram.record(
                time.perf_counter() - started,
                {
                    "http.request.method": scope.get("method", ""),
                    "http.route": route,
                    "http.response.status_code": status["code"],
                },
            )
