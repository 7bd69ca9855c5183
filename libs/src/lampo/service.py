"""The composition every service shares: database, migrations, broker, consumers, outbox relay,
health endpoints, metrics (``/metrics``, Prometheus text). A service's ``create_app`` builds a
``Runtime``, registers its consumers, and returns ``runtime.app``. Nothing connects until the app
starts.

HTTP: only ``/health/*`` and ``/metrics`` are open. Every other route or mount names the callers it
answers (``lampo.http_auth``); ``Runtime.openapi()`` is the service's whole HTTP API as one OpenAPI
document, each operation with its callers, and the suite's per-route test walks it. The server
binds ``LAMPO_HTTP_HOST`` (default 127.0.0.1, loopback).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import asyncpg
from aiokafka import AIOKafkaProducer
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from opentelemetry.metrics import Meter
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from lampo.aio import stop_task
from lampo.clock import Clock, SystemClock
from lampo.crypto import KeyRing
from lampo.db import MigrationSource, create_pool, ensure_database, keys_migrations, migrate, platform_migrations
from lampo.messaging import inbox
from lampo.messaging.consumer import (
    BatchHandler,
    ConsumerOptions,
    NotRunning,
    Observer,
    Parser,
    ReliableConsumer,
    Selector,
)
from lampo.messaging.outbox import RELAY_PRODUCER_OPTIONS, OutboxRelay
from lampo.messaging.topics import consumer_group_for
from lampo.metrics import PROMETHEUS_CONTENT_TYPE, ServiceMetrics
from lampo.settings import ServiceSettings
from lampo.signing import SignaturePolicy
from lampo.tracing import instrument_asgi, instrument_fastapi, instrument_httpx, make_tracer_provider

log = logging.getLogger("lampo.service")


def make_broker(settings: ServiceSettings, client_id: str) -> KafkaBroker:
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=client_id,
        enable_idempotence=True,  # acks=all, no duplicates from producer retries
        linger_ms=5,
        max_request_size=4 * 1024 * 1024,
        description=f"Muuramen Lämpö privacy suite: {client_id}",
        log_level=logging.DEBUG,  # FastStream's per-message lines stay out of INFO logs
        security=settings.kafka_security(),  # None (PLAINTEXT) unless LAMPO_KAFKA_SECURITY_PROTOCOL says otherwise
    )


class _AsgiApp(AsgiFastStream):
    """FastStream's ASGI app matches routes exactly; ``mounts`` add prefix routes, so a whole
    HTTP API (FastAPI, with its OpenAPI document) can live beside the consumers. The mounted
    app sees the full path."""

    def __init__(self, mounts: list[tuple[str, Any]], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._mounts = mounts

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for prefix, app in self._mounts:
                if scope["path"] == prefix or scope["path"].startswith(prefix.rstrip("/") + "/"):
                    await app(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


class Runtime:
    """What one running service holds. Built at app creation, connected at start-up."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        migrations: Path | None,
        clock: Clock | None = None,
        span_processors: Sequence[SpanProcessor] = (),
        tracer_provider: TracerProvider | None = None,
        routes: Sequence[tuple[str, Any]] = (),
        mounts: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.settings = settings
        self.name = settings.service
        self.clock: Clock = clock or SystemClock()
        self.tracer_provider = tracer_provider or make_tracer_provider(
            f"lampo-{self.name}",
            span_processors,
            zipkin_endpoint=settings.zipkin_endpoint,
            sample_ratio=settings.trace_sample_ratio,
        )
        self.tracer = self.tracer_provider.get_tracer(f"lampo.{self.name}")
        # One trace across HTTP (lampo.tracing): server spans on every mount and route below,
        # client spans with the trace context on the process's httpx clients; SQL spans through
        # the pools (_connect_database).
        instrument_httpx(self.tracer_provider)
        self.broker = make_broker(settings, f"lampo-{self.name}")
        self.keys = settings.key_ring()
        # Authenticity (lampo.signing): the relay signs tasks, acks and approvals with
        # ``signer``; consumers given a policy verify against ``trusted``.
        self.signer = settings.signing()
        self.trusted = settings.trusted()
        self._migrations = [platform_migrations()] + ([MigrationSource(self.name, migrations)] if migrations else [])
        self._pool: asyncpg.Pool | None = None
        self._keys_pool: asyncpg.Pool | None = None
        self.consumers: list[ReliableConsumer] = []
        self.relay: OutboxRelay | None = None
        self._producer: AIOKafkaProducer | None = None
        # Metrics: platform instruments plus the service's own through ``runtime.meter``.
        self.metrics = ServiceMetrics(f"lampo-{self.name}")
        self.meter: Meter = self.metrics.provider.get_meter(f"lampo.{self.name}")
        self.metrics.track_relay(lambda: self.relay)
        self.metrics.track_outbox(lambda: self._pool)
        for mounted in {id(m): m for _, m in mounts}.values():  # an app mounted at two prefixes: timed once
            if hasattr(mounted, "add_middleware"):  # FastAPI/Starlette: request durations
                self.metrics.time_http(mounted)
        self._kafka_consumers: dict[str, Any] = {}  # consumer name -> FastStream subscriber
        self._mounts = list(mounts)
        self._routes = list(routes)
        self._instrument_http()
        self._joined: set[str] = set()  # consumers that have had a group assignment at least once
        self.app = _AsgiApp(
            self._mounts,
            self.broker,
            asgi_routes=[
                ("/health/live", self._live()),
                ("/health/ready", self._ready()),
                ("/metrics", self._metrics()),  # health and metrics: polled, never traced
                *((path, instrument_asgi(app, path, self.tracer_provider)) for path, app in routes),
            ],
            # AsyncAPI document (`faststream docs gen`, docs/asyncapi/): named after the service.
            specification=AsyncAPI(
                title=f"lampo-{self.name}",
                version=_package_version(f"lampo-{self.name}"),
                description=f"Muuramen Lämpö privacy suite: the {self.name} service's Kafka channels",
            ),
            on_startup=[self._connect_database],
            after_startup=[self._start_relay],
            on_shutdown=[self._stop_relay],
            # The pool closes only after the broker stopped its consumers: a batch in flight
            # at shutdown still finishes its transaction (or is rewound), never half-done.
            after_shutdown=[self._close_database],
        )
        self.jobs: dict[str, Callable[[], Awaitable[object]]] = {}  # runtime.every's, by name
        self.every(
            "inbox pruning",
            self.prune_inbox,
            interval_s=settings.inbox_prune_interval_s,
            first_delay_s=min(settings.inbox_prune_interval_s, 60.0),
        )

    def _instrument_http(self) -> None:
        """Server spans for the mounted APIs: FastAPI apps through OpenTelemetry's FastAPI
        instrumentation (spans named by route template), any other ASGI app through its ASGI
        middleware. The dispatch (``_AsgiApp``) sees the wrapped apps; ``openapi()`` the same."""
        from fastapi import FastAPI

        for i, (prefix, app) in enumerate(self._mounts):
            if isinstance(app, FastAPI):
                instrument_fastapi(app, self.tracer_provider)
            else:
                self._mounts[i] = (prefix, instrument_asgi(app, prefix, self.tracer_provider))

    def openapi(self) -> dict[str, Any]:
        """The service's HTTP API (its mounted FastAPI apps and its own routes) as one OpenAPI
        document; health and metrics are left out (open by design). A plain route that does not
        describe itself (``lampo.http_auth.guard`` does) is listed with GET and POST and no
        callers, so the per-route test finds it."""
        from fastapi import FastAPI  # only here: a service without an HTTP API does not load it

        from lampo.http_auth import document_callers

        document: dict[str, Any] = {
            "openapi": "3.1.0",
            "info": {"title": f"lampo-{self.name}", "version": _package_version(f"lampo-{self.name}")},
            "paths": {},
            "components": {"securitySchemes": {"caller": {"type": "http", "scheme": "bearer"}}},
        }
        for _, app in self._mounts:
            if isinstance(app, FastAPI):
                part = document_callers(app, app.openapi())
                document["paths"].update(part.get("paths", {}))
                for kind, entries in part.get("components", {}).items():
                    document["components"].setdefault(kind, {}).update(entries)
        for path, app in self._routes:
            describe = getattr(app, "openapi_operations", None)
            document["paths"][path] = (
                describe() if callable(describe) else {"get": {"responses": {}}, "post": {"responses": {}}}
            )
        return document

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise NotRunning(f"{self.name}: the database pool is not open (the service is not running)")
        return self._pool

    def consume(
        self,
        topic: str,
        handler: BatchHandler,
        *,
        name: str | None = None,
        observers: Sequence[Observer] = (),
        options: ConsumerOptions | None = None,
        parser: Parser | None = None,
        select: Selector | None = None,
        verify: SignaturePolicy | None = None,
    ) -> ReliableConsumer:
        consumer = ReliableConsumer(
            name=name or f"{self.name}:{topic}",
            topic=topic,
            group_id=consumer_group_for(self.settings.consumer_group or f"lampo-{self.name}", topic),
            pool=lambda: self.pool,
            handler=handler,
            broker=self.broker,
            tracer=self.tracer,
            options=options or ConsumerOptions(max_records=self.settings.consumer_batch),
            observers=observers,
            select=select,
            verify=verify,
            **({"parser": parser} if parser else {}),
        )
        return self.adopt(consumer)

    def adopt(self, consumer: ReliableConsumer) -> ReliableConsumer:
        """Register a consumer built by the service itself (a subclass of ReliableConsumer):
        like the ones of :meth:`consume`, it counts on /metrics and for /health/ready."""
        before = {id(s) for s in self.broker.subscribers}
        consumer.register()
        self.consumers.append(consumer)
        added = [s for s in self.broker.subscribers if id(s) not in before]
        if len(added) == 1:
            subscriber = added[0]
            self._kafka_consumers[consumer.name] = subscriber
            self.metrics.track_consumer(consumer, lambda: getattr(subscriber, "consumer", None))
        return consumer

    def every(
        self, name: str, job: Callable[[], Awaitable[object]], *, interval_s: float, first_delay_s: float
    ) -> None:
        """Run ``job`` in the background while the service runs: ``first_delay_s`` after start-up,
        then every ``interval_s`` (0 or less: never). A failing run is logged by its exception's
        type only (a database error's message may quote a row) and the job runs again at its next
        turn; shutdown cancels it. Jobs must be safe to run in several instances at once."""
        if interval_s <= 0:
            return
        self.jobs[name] = job
        task: asyncio.Task[None] | None = None

        async def repeat() -> None:
            await asyncio.sleep(first_delay_s)
            while True:
                try:
                    await job()
                except Exception as e:  # noqa: BLE001 - the schedule outlives one failed run
                    log.warning("%s: %s failed: %s; next run in %g s", self.name, name, type(e).__name__, interval_s)
                await asyncio.sleep(interval_s)

        async def start() -> None:
            nonlocal task
            task = asyncio.create_task(repeat(), name=f"{self.name}:{name}")

        async def stop() -> None:
            await stop_task(task)

        self.app.after_startup(start)
        self.app.on_shutdown(stop)

    async def prune_inbox(self) -> int:
        """Delete the inbox rows no topic this service reads can deliver again (older than
        ``inbox.horizon`` of its consumers' topics); returns how many went."""
        kept = inbox.horizon(c.topic for c in self.consumers)
        if kept is None or not self.consumers:
            return 0
        deleted = await inbox.prune(self.pool, kept)  # on the database's clock, as handled_at
        if deleted:
            log.info("%s: pruned %d inbox rows older than %s", self.name, deleted, kept)
        return deleted

    async def send(self, topic: str, key: str, value: bytes, headers: dict[str, str]) -> None:
        """The outbox relay's publish: a plain idempotent aiokafka producer of its own, which
        batches the relay's many concurrent sends without FastStream's per-message middleware."""
        if self._producer is None:
            raise NotRunning(f"{self.name}: the relay's producer is not started")
        delivered = await self._producer.send(
            topic, value, key=key.encode(), headers=[(k, v.encode()) for k, v in headers.items()]
        )
        await delivered

    async def _connect_database(self) -> None:
        url = self.settings.database_url
        tls = self.settings.pg_ssl()
        extra: dict[str, Any] = {"ssl": tls} if tls is not None else {}
        if await ensure_database(url, ssl_context=tls):
            log.info("%s: created its database", self.name)
        self._pool = await create_pool(url, min_size=2, max_size=10, tracer=self.tracer, **extra)
        applied = await migrate(self._pool, self._migrations)
        if applied:
            log.info("%s: applied migrations %s", self.name, ", ".join(applied))
        keys_url = self.settings.keys_database_url
        if keys_url is not None:  # the subject keys in a database of their own
            await ensure_database(keys_url, ssl_context=tls)
            self._keys_pool = await create_pool(keys_url, min_size=1, max_size=5, tracer=self.tracer, **extra)
            await migrate(self._keys_pool, [keys_migrations()])
            self.keys.attach(self._keys_pool)
            async with self._pool.acquire() as conn:  # keys made before: moved out of the data
                moved = await self.keys.move_keys_out(conn)
            if moved:
                log.info("%s: moved %d subject keys to the keys database", self.name, moved)

    async def _start_relay(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            client_id=f"lampo-{self.name}-outbox",
            **RELAY_PRODUCER_OPTIONS,  # idempotent; batches that hold a whole relay batch
            **self.settings.kafka_client_options(),
        )
        await self._producer.start()
        self.relay = OutboxRelay(self.pool, self.send, self.tracer, signer=self.signer)
        await self.relay.start()
        log.info("%s: ready (http %s:%d)", self.name, self.settings.http_host, self.settings.port)

    async def _stop_relay(self) -> None:
        self._joined.clear()
        if self.relay:
            await self.relay.stop()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def _close_database(self) -> None:
        for consumer in self.consumers:  # a pipelined batch still in flight ends first
            await consumer.drain()
        if self._keys_pool is not None:
            self.keys.attach(None)
            await self._keys_pool.close()
            self._keys_pool = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        self.tracer_provider.force_flush()

    def _live(self) -> Any:
        @get(include_in_schema=False)
        async def live(scope: Any) -> AsgiResponse:
            return AsgiResponse(b'{"status":"alive"}', 200, headers={"content-type": "application/json"})

        return live

    def _ready(self) -> Any:
        @get(include_in_schema=False)
        async def ready(scope: Any) -> AsgiResponse:
            database = False
            if self._pool is not None:
                try:
                    async with self._pool.acquire(timeout=2) as conn:
                        database = await conn.fetchval("SELECT true")
                except Exception:  # noqa: BLE001 - readiness reports, it does not raise
                    database = False
            broker = await self.broker.ping(timeout=2.0)
            joined, partitions = self._consumer_assignment()
            consumers_ok = joined == len(self._kafka_consumers)
            ok = bool(database and broker and self.relay is not None and consumers_ok)
            body = json.dumps(
                {
                    "service": self.name,
                    "status": "ready" if ok else "not_ready",
                    "database": bool(database),
                    "broker": bool(broker),
                    "consumers": {"joined": joined, "total": len(self._kafka_consumers), "partitions": partitions},
                },
                separators=(",", ":"),
            )
            return AsgiResponse(body.encode(), 200 if ok else 503, headers={"content-type": "application/json"})

        return ready

    def _consumer_assignment(self) -> tuple[int, int]:
        """(consumers that have joined their group at least once, partitions assigned now).

        A consumer counts as joined once the group gave it an assignment, even an empty one (a
        replica beyond the partition count is idle, not broken), and stays joined through later
        rebalances, so readiness does not flap. Reads aiokafka's subscription state: no I/O."""
        partitions = 0
        for name, subscriber in self._kafka_consumers.items():
            client = getattr(subscriber, "consumer", None)
            if client is None:
                continue
            try:
                subscription = client._subscription.subscription
                assigned = subscription is not None and subscription.assignment is not None
                partitions += len(client.assignment())
            except AttributeError:  # another client version: do not block readiness on it
                assigned = True
            if assigned:
                self._joined.add(name)
        return len(self._joined & self._kafka_consumers.keys()), partitions

    def _metrics(self) -> Any:
        @get(include_in_schema=False)
        async def metrics(scope: Any) -> AsgiResponse:
            text = await self.metrics.render()
            return AsgiResponse(text.encode(), 200, headers={"content-type": PROMETHEUS_CONTENT_TYPE})

        return metrics


async def _freeze_heap() -> None:
    """Move everything alive after start-up (modules, pydantic schemas, clients) out of the
    garbage collector's reach: a full collection then walks only what the work itself created.
    Measured with bench/withdrawal: without it, every full collection paused the consent
    service's event loop for ~50 ms, 16 times in 30 s, straight into the withdrawal latency."""
    gc.collect()
    gc.freeze()


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "0.0.0"


@asynccontextmanager
async def key_ring(settings: ServiceSettings) -> AsyncIterator[KeyRing]:
    """The service's key ring for a CLI process: attached to the keys database when
    LAMPO_KEYS_DATABASE is set (where a running service keeps the subject keys)."""
    keys = settings.key_ring()
    url = settings.keys_database_url
    if url is None:
        yield keys
        return
    tls = settings.pg_ssl()
    pool = await create_pool(url, min_size=1, max_size=2, **({"ssl": tls} if tls is not None else {}))
    try:
        keys.attach(pool)
        yield keys
    finally:
        keys.attach(None)
        await pool.close()


def configure_logging() -> None:
    """One line per record, no payloads: services log ids and reasons, never personal data."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # httpx logs every request's URL at INFO, and a service-to-service URL can name a customer
    # (/v1/subjects/<customer number>): only its warnings are kept.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


SERVER_KEEP_ALIVE_S: Final = 75
"""How long a served API keeps an idle connection open. Longer than its callers keep theirs (httpx
drops a connection idle for 5 s), so a caller never sends on a connection the server is closing:
with uvicorn's 5 s on both sides, staff's approval now and then met a connection dsar had just
closed (``RemoteProtocolError``) and answered the managing director 503."""


def serve(runtime: Runtime) -> None:
    """Run a service in the foreground: consumers, relay and health endpoints. Its heap as it
    stands after start-up is frozen (:func:`_freeze_heap`); services that tests or benchmarks
    start in their own process are not."""
    configure_logging()
    runtime.app.after_startup(_freeze_heap)
    options: dict[str, Any] = {
        "host": runtime.settings.http_host,
        "port": runtime.settings.port,
        "timeout_keep_alive": SERVER_KEEP_ALIVE_S,
    }
    asyncio.run(runtime.app.run(log_level=logging.WARNING, run_extra_options=options))
