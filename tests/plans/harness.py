"""The whole suite in one process, on loaded databases, without Kafka: each service is built by its
own ``build()`` with a data and a keys database of its own, its consumers are fed records through
their real consume path (``ReliableConsumer._process``: parse, signature check, inbox, handler),
and what its outbox relay would publish is delivered to the consumers of that topic in the other
services. Every statement the services run on their pools is recorded (asyncpg's query logger,
and cursors), with its parameters, so that the plan test explains exactly what the code runs.

The databases are loaded first by a generic filler (every table of every database, in foreign-key
order, ``generate_series`` and ANALYZE), so a table added later is loaded too; the events then
act on customers of their own, made by the real handlers.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import importlib.util
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka.structs import ConsumerRecord

import lampo.db.pool
from lampo.clock import SystemClock
from lampo.contracts.catalog import (
    BILLING_INBOUND,
    CONSENT_INBOUND,
    DSAR_REQUESTS,
    EVENT_TYPES,
    RECORDINGS_INBOUND,
    REGISTRY_INBOUND,
    RETENTION_INBOUND,
)
from lampo.contracts.envelope import CONTENT_TYPE, CloudEvent
from lampo.crypto import new_master_key
from lampo.messaging.outbox import OutboxRelay
from lampo.service import Runtime
from lampo.testing import drop_database, signed_headers, signing_settings, synthetic_identity_code, unique

_EXAMPLES_FILE = Path(__file__).parents[2] / "libs" / "tests" / "contracts" / "conftest.py"
_spec = importlib.util.spec_from_file_location("lampo_contract_examples_plans", _EXAMPLES_FILE)
assert _spec is not None and _spec.loader is not None
_examples = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_examples)
EXAMPLES: dict[str, dict[str, Any]] = _examples.EXAMPLES

PG = "postgresql://lampo:lampo@127.0.0.1:5432"
PARTICIPANTS = ("registry", "billing", "recordings", "consent")
SERVICES = (*PARTICIPANTS, "retention", "dsar")

# -- recording the statements ---------------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    service: str
    database: str
    query: str
    args: tuple[Any, ...]


@dataclass
class Recorder:
    """Statements by service, while ``on``; the first parameters seen for each text are kept."""

    on: bool = True
    seen: dict[tuple[str, str], Statement] = field(default_factory=dict)  # by (database, text)

    def record(self, conn: asyncpg.Connection, query: str, args: Sequence[Any]) -> None:
        if not self.on:
            return
        database = conn._params.database or ""  # type: ignore[attr-defined]
        key = (database, query)
        if key not in self.seen:
            self.seen[key] = Statement(_SERVICE_OF_DATABASE.get(database, "?"), database, query, tuple(args))

    def statements(self) -> list[Statement]:
        return list(self.seen.values())


RECORDER = Recorder()
_SERVICE_OF_DATABASE: dict[str, str] = {}
_original_init = lampo.db.pool._init_connection
_original_cursor = asyncpg.connection.Connection.cursor
_original_executemany = asyncpg.connection.Connection.executemany


async def _recording_init(conn: asyncpg.Connection) -> None:
    await _original_init(conn)

    def log(q: Any) -> None:
        if isinstance(q.args, tuple):  # executemany's rows are recorded by _recording_executemany
            RECORDER.record(conn, q.query, q.args)

    conn.add_query_logger(log)


async def _recording_executemany(
    self: asyncpg.Connection, command: str, args: Any, *, timeout: float | None = None
) -> None:
    rows = list(args)
    if rows:
        RECORDER.record(self, command, tuple(rows[0]))  # explained with its first row
    await _original_executemany(self, command, rows, timeout=timeout)


def _recording_cursor(self: asyncpg.Connection, query: str, *args: Any, **kwargs: Any) -> Any:
    RECORDER.record(self, query, args)
    return _original_cursor(self, query, *args, **kwargs)


def install_recorder() -> Callable[[], None]:
    lampo.db.pool._init_connection = _recording_init
    asyncpg.connection.Connection.cursor = _recording_cursor  # type: ignore[method-assign]
    asyncpg.connection.Connection.executemany = _recording_executemany  # type: ignore[method-assign]

    def uninstall() -> None:
        asyncpg.connection.Connection.executemany = _original_executemany  # type: ignore[method-assign]
        lampo.db.pool._init_connection = _original_init
        asyncpg.connection.Connection.cursor = _original_cursor  # type: ignore[method-assign]

    return uninstall


# -- loading every table ----------------------------------------------------------------------------

# Values the generic filler cannot guess: checked enumerations, and the state a real register's
# rows are in (finished requests, answered tasks), so that timers see no work in the filler.
OVERRIDES: dict[str, dict[str, str]] = {
    "items": {
        "kind": "(ARRAY['invoice','payment','collection','credit_check'])[1 + g % 4]",
        "restricted_reason": "NULL",
    },
    "ledger": {
        "kind": "'consent.given'",
        "outcome": "'changed'",
        "state_after": "'granted'",
        "purpose": "(ARRAY['profiling','direct_marketing','automated_decisions'])[1 + g % 3]",
    },
    "consent_state": {"purpose": "'profiling'", "state": "'granted'"},
    "receipts": {"receipt_id": "gen_random_uuid()", "receipt": "'{}'::jsonb"},
    "profiling_consent": {"purpose": "'profiling'", "state": "'granted'"},
    "recording_chunks": {"chunk_index": "0", "chunk_count": "2"},
    "requests": {
        "status": "'completed'",
        "kind": "'access'",
        "completed_at": "now() - g * interval '1 minute'",
        "overdue_at": "NULL",
        "due_at": "now() + interval '30 days'",
        "next_resolve_at": "NULL",
        "lift_notice_at": "NULL",
    },
    "tasks": {"status": "'done'", "timeout_at": "now() + interval '1 day'", "current": "true"},
    "packages": {"expires_at": "now() + interval '30 days'"},
    "purges": {"status": "'done'"},
    "holds": {"released_at": "now()"},
    "subjects": {"kind": "'person'"},
    "lookup": {"kind": "'email'"},
    "subject_keys": {"kek_id": "NULL"},
    "inbox": {"handled_at": "now() - g * interval '1 second'"},  # a day's events: none due for pruning
    "outbox": {"subject_id": "NULL"},
    "clocks": {"category": "''"},
    "scheduled_deletions": {"delete_after": "current_date + 1 + g % 1000"},
}
# Not loaded: the migrations' own rows, and the outbox, whose rows leave as soon as they are relayed
# (its size follows the relay's backlog, not the register; filler there would be published).
SKIP_TABLES = {"schema_migrations", "purposes", "outbox"}


async def fill(url: str, rows: int) -> dict[str, int]:
    """``rows`` rows in every table of the database (foreign keys point at rows of the same g)."""
    conn = await asyncpg.connect(url)
    try:
        tables = [
            r["relname"]
            for r in await conn.fetch(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY c.relname"
            )
        ]
        deps = {t: set() for t in tables}
        for r in await conn.fetch(
            "SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent"
            " FROM pg_constraint WHERE contype = 'f'"
        ):
            if r["child"] in deps and r["parent"] != r["child"]:
                deps[r["child"]].add(r["parent"])
        order: list[str] = []
        while len(order) < len(tables):
            for t in tables:
                if t not in order and deps[t] <= set(order):
                    order.append(t)
        loaded: dict[str, int] = {}
        await conn.execute("SET session_replication_role = replica")  # no triggers while loading
        await conn.execute("SET synchronous_commit = off")  # a test filler: no wait for each flush
        for table in order:
            if table in SKIP_TABLES:
                continue
            columns = await conn.fetch(
                "SELECT attname, format_type(atttypid, atttypmod) AS type, attnotnull,"
                " pg_get_expr(d.adbin, d.adrelid) AS dflt"
                " FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
                " WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                table,
            )
            names, values = [], []
            for c in columns:
                expr = OVERRIDES.get(table, {}).get(c["attname"]) or _value(c["type"], c["attnotnull"], c["dflt"])
                if expr is None:
                    continue
                names.append(f'"{c["attname"]}"')
                values.append(expr)
            await conn.execute(
                f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(values)}"
                f" FROM generate_series(1, {rows}) AS g ON CONFLICT DO NOTHING"
            )
            loaded[table] = rows
        await conn.execute("SET session_replication_role = DEFAULT")
        await conn.execute(f"ANALYZE {', '.join(loaded)}")  # the loaded tables only: quicker than all
        return loaded
    finally:
        await conn.close()


def _value(type_: str, not_null: bool, default: str | None) -> str | None:
    if default is not None and default.startswith("nextval"):
        return None
    if type_ == "text":
        return "'f' || g"
    if type_ == "text[]":
        return "ARRAY['f' || g]"
    if type_ == "bytea":
        return "decode(md5(g::text), 'hex')"
    if type_ in ("integer", "bigint", "smallint", "numeric", "double precision"):
        return "g"
    if type_ == "boolean":
        return "false" if default is None else None
    if type_ == "date":
        return "current_date - g % 1000"
    if type_ == "jsonb":
        return "'{}'::jsonb" if not_null else None
    if type_ == "uuid":
        return "gen_random_uuid()"
    if type_.startswith("timestamp"):
        return "now() - g * interval '1 minute'" if not_null and default is None else None
    return None if not not_null else "NULL"


# -- the suite -----------------------------------------------------------------------------------


def record_of(
    topic: str, key: str | None, value: bytes, headers: dict[str, str], offset: int
) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(
        topic,
        0,
        offset,
        int(datetime.now(UTC).timestamp() * 1000),
        0,
        key.encode() if key else None,
        value,
        None,
        len(key or ""),
        len(value),
        tuple((k, v.encode()) for k, v in headers.items()),
    )


@dataclass
class Service:
    name: str
    runtime: Runtime
    database: str
    keys_database: str
    extra: Any = None  # the service's own object (dsar.app.Dsar, retention.app.Retention)


class Suite:
    """Every service on databases of its own; ``deliver`` feeds their consumers, ``pump`` relays."""

    def __init__(self) -> None:
        self.services: dict[str, Service] = {}
        self.rejected: list[tuple[str, str, str, str]] = []  # (consumer, topic, reason, detail)
        self._offset = 0
        self._pending: list[tuple[str, str, bytes, dict[str, str]]] = []
        self.published: list[tuple[str, str, bytes, dict[str, str]]] = []
        self._relays: dict[str, OutboxRelay] = {}
        self.master_key = new_master_key()
        self.tokens = {name: uuid.uuid4().hex for name in ("dsar", "staff")}
        self.requests: list[tuple[str, dict[str, Any], str]] = []  # (kind, extra, request_id) sent

    def settings_of(self, name: str, cls: type[Any], **extra: Any) -> Any:
        database = unique(f"plans_{name}")
        keys = f"{database}_keys"
        _SERVICE_OF_DATABASE[database] = name
        _SERVICE_OF_DATABASE[keys] = name
        return cls(
            database=database,
            keys_database=keys,
            consumer_group=unique(f"plans-{name}"),
            master_key=self.master_key,
            api_clients=self.tokens,
            **signing_settings("coordinator" if name == "dsar" else name),
            **extra,
        )

    async def start(self, rows: int) -> None:
        from lampo.billing.app import build as billing
        from lampo.billing.settings import BillingSettings
        from lampo.consent.app import build as consent
        from lampo.consent.settings import ConsentSettings
        from lampo.dsar.app import build as dsar
        from lampo.dsar.resolver import RegistryResolver, StoreLookup, StoresResolver, store_subject_id
        from lampo.dsar.settings import DsarSettings
        from lampo.recordings.app import build as recordings
        from lampo.recordings.settings import RecordingsSettings
        from lampo.registry.app import build as registry
        from lampo.registry.settings import RegistrySettings
        from lampo.retention.app import build as retention
        from lampo.retention.settings import RetentionSettings

        RECORDER.on = False  # start-up (migrations, filler) is not the request path
        clock = SystemClock()
        built = {
            "registry": registry(self.settings_of("registry", RegistrySettings), clock=clock),
            "billing": billing(self.settings_of("billing", BillingSettings), clock=clock),
            "recordings": recordings(self.settings_of("recordings", RecordingsSettings), clock=clock),
            "consent": consent(self.settings_of("consent", ConsentSettings), clock=clock),
        }
        kept = retention(self.settings_of("retention", RetentionSettings), clock=clock)
        for name, runtime in built.items():
            self.services[name] = Service(name, runtime, runtime.settings.database, runtime.settings.keys_database)
        self.services["retention"] = Service(
            "retention", kept.runtime, kept.runtime.settings.database, kept.runtime.settings.keys_database, kept
        )

        def transport(service: str, path: str) -> httpx.AsyncBaseTransport:
            rt = built[service]
            app = dict(rt._routes).get(path) or dict(rt._mounts)[path]
            return httpx.ASGITransport(app=app)

        token = self.tokens["dsar"]
        dsar_settings = self.settings_of("dsar", DsarSettings, api_token=token)
        registry_resolver = RegistryResolver(
            "http://registry", token=token, transport=transport("registry", "/v1/resolve")
        )
        stores = [
            StoreLookup(s, f"http://{s}", token=token, transport=transport(s, "/v1/resolve"))
            for s in ("billing", "recordings", "consent")
        ]
        coordinator: Any = None

        def pseudonym(number: str) -> str:
            return store_subject_id(coordinator.runtime.keys.blind_index, number)

        coordinator = dsar(
            dsar_settings, clock=clock, resolver=StoresResolver(registry_resolver, stores, pseudonym), run_checker=False
        )
        self.services["dsar"] = Service(
            "dsar", coordinator.runtime, dsar_settings.database, dsar_settings.keys_database, coordinator
        )
        await asyncio.gather(*(service.runtime._connect_database() for service in self.services.values()))
        for service in self.services.values():
            for consumer in service.runtime.consumers:
                consumer._dead_letter = self._dead_letter_of(consumer.name, consumer.topic)  # type: ignore[method-assign]
            relay = OutboxRelay(service.runtime.pool, self._send, service.runtime.tracer, signer=service.runtime.signer)
            self._relays[service.name] = relay
        await asyncio.gather(
            *(
                fill(f"{PG}/{db}", rows)
                for service in self.services.values()
                for db in (service.database, service.keys_database)
            )
        )
        RECORDER.on = True

    def _dead_letter_of(self, consumer: str, topic: str) -> Callable[..., Awaitable[None]]:
        async def dead_letter(record: ConsumerRecord[Any, Any], reason: str, detail: str) -> None:
            self.rejected.append((consumer, topic, reason, detail))

        return dead_letter

    async def _send(self, topic: str, key: str, value: bytes, headers: dict[str, str]) -> None:
        self._pending.append((topic, key, value, headers))
        self.published.append((topic, key, value, headers))

    async def stop(self) -> None:
        for service in self.services.values():
            if service.runtime._pool is not None:
                await service.runtime._pool.close()
            if service.runtime._keys_pool is not None:
                await service.runtime._keys_pool.close()
        await asyncio.gather(
            *(
                drop_database(db)
                for service in self.services.values()
                for db in (service.database, service.keys_database)
            )
        )

    async def deliver(self, topic: str, key: str | None, value: bytes, headers: dict[str, str] | None = None) -> None:
        self._offset += 1
        record = record_of(topic, key, value, {"content-type": CONTENT_TYPE, **(headers or {})}, self._offset)
        for service in self.services.values():
            for consumer in service.runtime.consumers:
                if consumer.topic == topic:
                    await consumer._process([record])

    async def pump(self, rounds: int = 20) -> None:
        """Relay every outbox and deliver what it published, until nothing is left."""
        for _ in range(rounds):
            for relay in self._relays.values():
                while await relay.drain_once():
                    pass
            if not self._pending:
                return
            pending, self._pending = self._pending, []
            for topic, key, value, headers in pending:
                await self.deliver(topic, key, value, headers)

    async def send(
        self, topic: str, event_type: str, data: dict[str, Any], *, key: str, signer: str | None = None
    ) -> None:
        value = CloudEvent.new(event_type, "urn:system:plans", data).to_bytes()
        await self.deliver(topic, key, value, signed_headers(value, signer) if signer else None)

    async def tick(self) -> None:
        """The coordinator's periodic work (resolution, timeouts, deadlines, lifts) once."""
        await self.services["dsar"].extra.coordinator.tick()
        await self.pump()


# -- what a register's day brings: every inbound event type, every request kind --------------------


def example(event_type: str, **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(EXAMPLES[event_type])
    data.update(changes)
    return data


def audio_of(size: int = 64) -> str:
    return base64.b64encode(bytes(size)).decode()


@dataclass
class Customer:
    number: str
    n: int

    @property
    def identity_code(self) -> str:
        return synthetic_identity_code(self.n)


def new_customer(n: int) -> Customer:
    return Customer(f"pl{uuid.uuid4().hex[:10]}", n)


async def ingest(suite: Suite, c: Customer) -> None:
    """One customer's data in every store, through every inbound event type."""
    now = datetime.now(UTC)
    types = {
        t
        for topic in (REGISTRY_INBOUND, BILLING_INBOUND, RECORDINGS_INBOUND, CONSENT_INBOUND)
        for t in EVENT_TYPES[topic]
    }
    sent: set[str] = set()

    async def send(topic: str, event_type: str, **changes: Any) -> None:
        sent.add(event_type)
        await suite.send(topic, event_type, example(event_type, customer_number=c.number, **changes), key=c.number)

    upserted = example("customer.upserted", customer_number=c.number)
    upserted["person"]["personal_identity_code"] = c.identity_code
    upserted["contact"]["email"] = f"{c.number}@example.fi"
    await suite.send(REGISTRY_INBOUND, "customer.upserted", upserted, key=c.number)
    sent.add("customer.upserted")
    await send(REGISTRY_INBOUND, "contract.updated")
    await send(REGISTRY_INBOUND, "consumption.reported")
    await send(REGISTRY_INBOUND, "interaction.logged")
    invoice = f"INV-{uuid.uuid4().hex[:8]}"
    for event_type in EVENT_TYPES[BILLING_INBOUND]:  # the invoice first: payments refer to it
        changes: dict[str, Any] = {"invoice_number": invoice} if "invoice_number" in EXAMPLES[event_type] else {}
        await send(BILLING_INBOUND, event_type, **changes)
    recording = f"REC-{uuid.uuid4().hex[:8]}"
    for index in (0, 1):  # both chunks: held, then put together
        await send(RECORDINGS_INBOUND, "call.recorded", recording_id=recording, chunk_index=index, chunk_count=2)
    await send(RECORDINGS_INBOUND, "email.archived", message_id=f"<{uuid.uuid4().hex[:8]}@example.fi>")
    for event_type in EVENT_TYPES[CONSENT_INBOUND]:
        await send(CONSENT_INBOUND, event_type, at=(now - timedelta(minutes=5)).isoformat())
    await send(REGISTRY_INBOUND, "customer.relationship_ended")
    missing = types - sent
    assert not missing, f"event types this harness does not send yet: {sorted(missing)}"
    await suite.pump()


async def hold(suite: Suite, c: Customer) -> str:
    hold_id = f"HOLD-{uuid.uuid4().hex[:8]}"
    await suite.send(
        RETENTION_INBOUND,
        "legal_hold.placed",
        example("legal_hold.placed", hold_id=hold_id, customer_number=c.number),
        key=c.number,
    )
    await suite.pump()
    await suite.send(
        RETENTION_INBOUND,
        "legal_hold.released",
        example(
            "legal_hold.released", hold_id=hold_id, customer_number=c.number, released_at=datetime.now(UTC).isoformat()
        ),
        key=c.number,
    )
    await suite.pump()
    return hold_id


async def request(suite: Suite, c: Customer, kind: str, **extra: Any) -> str:
    """A data subject request of ``kind`` for the customer, approved by staff if it waits for that,
    and run to its end (every participant's task, the acks, the package)."""
    request_id = str(uuid.uuid4())
    data = example(
        "dsar.submitted",
        request_id=request_id,
        kind=kind,
        identifiers={"customer_number": c.number},
        received_at=datetime.now(UTC).isoformat(),
        **extra,
    )
    data["verification"]["verified_at"] = datetime.now(UTC).isoformat()
    await suite.send(DSAR_REQUESTS, "dsar.submitted", data, key=request_id)
    suite.requests.append((kind, extra, request_id))
    await suite.tick()
    if await status_of(suite, request_id) == "awaiting_approval":
        approved = {
            "request_id": request_id,
            "approved_by": "managing.director",
            "approved_at": datetime.now(UTC).isoformat(),
        }
        await suite.send(DSAR_REQUESTS, "dsar.approved", approved, key=request_id, signer="staff")
    for _ in range(3):
        await suite.tick()
    return request_id


EVERY_REQUEST: list[tuple[str, dict[str, Any]]] = [
    ("access", {}),
    ("portability", {}),
    ("rectification", {"corrections": {"contact": {"email": "oikaistu@example.fi"}}}),
    ("restriction", {}),
    ("restriction", {"lift": True}),
    ("objection", {"scope": "profiling"}),
    ("objection", {"scope": "processing"}),
    ("erasure", {}),
]
"""Every kind of request, in an order that leaves each something to act on (erasure last)."""


async def status_of(suite: Suite, request_id: str) -> str:
    async with suite.services["dsar"].runtime.pool.acquire() as conn:
        return str(await conn.fetchval("SELECT status FROM requests WHERE request_id = $1", request_id))


def by_service(statements: Iterable[Statement]) -> dict[str, list[Statement]]:
    out: dict[str, list[Statement]] = {}
    for s in statements:
        out.setdefault(s.service, []).append(s)
    return out


async def run_jobs(suite: Suite) -> None:
    """The scheduled jobs every service runs on ``runtime.every`` (inbox pruning, package expiry)."""
    for service in suite.services.values():
        for job in service.runtime.jobs.values():
            await job()


async def staff_reads(suite: Suite, c: Customer, access_request: str) -> None:
    """What the staff service reads over HTTP: the request, its package, the customer's register
    entry and the direct-marketing audience."""
    headers = {"authorization": f"Bearer {suite.tokens['staff']}"}
    reads = [
        ("dsar", f"/v1/requests/{access_request}"),
        ("dsar", f"/v1/packages/{access_request}"),
        ("registry", f"/v1/subjects/{c.number}"),
        ("registry", "/v1/audiences/direct_marketing"),
    ]
    for service, path in reads:
        mounts = suite.services[service].runtime._mounts
        app = next(a for prefix, a in mounts if path.startswith(prefix))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{service}") as client:
            response = await client.get(path, headers=headers)
        assert response.status_code == 200, (service, path, response.status_code, response.text[:200])


async def workload(suite: Suite, c: Customer, store_only: Customer) -> None:
    """What a register's day brings: every inbound event type, a legal hold placed and released,
    every kind of request run to its end, an access request of a customer the registry does not
    know (the stores' resolve routes answer), the scheduled jobs."""
    await ingest(suite, c)
    await hold(suite, c)
    for kind, extra in EVERY_REQUEST:
        request_id = await request(suite, c, kind, **extra)
        if kind == "access":
            await staff_reads(suite, c, request_id)
    for topic, event_type in (
        (BILLING_INBOUND, "credit.checked"),
        (RECORDINGS_INBOUND, "email.archived"),
        (CONSENT_INBOUND, "consent.given"),
    ):
        await suite.send(
            topic, event_type, example(event_type, customer_number=store_only.number), key=store_only.number
        )
    await suite.pump()
    await request(suite, store_only, "access")
    await run_jobs(suite)


async def close_pools(suite: Suite) -> None:
    """Close every pool: a backend's table statistics reach pg_stat_user_tables when it exits."""
    for service in suite.services.values():
        rt = service.runtime
        if rt._keys_pool is not None:
            await rt._keys_pool.close()
            rt._keys_pool = None
        if rt._pool is not None:
            await rt._pool.close()
            rt._pool = None


async def open_pools(suite: Suite) -> None:
    for service in suite.services.values():
        rt = service.runtime
        rt._pool = await lampo.db.pool.create_pool(f"{PG}/{service.database}", min_size=1, max_size=10)
        rt._keys_pool = await lampo.db.pool.create_pool(f"{PG}/{service.keys_database}", min_size=1, max_size=5)
        rt.keys.attach(rt._keys_pool)
        suite._relays[service.name]._pool = rt._pool


async def seq_reads(suite: Suite) -> dict[tuple[str, str], int]:
    """Rows read by sequential scans so far, by (database, table), in every database of the suite."""
    out: dict[tuple[str, str], int] = {}
    for service in suite.services.values():
        for db in (service.database, service.keys_database):
            conn = await asyncpg.connect(f"{PG}/{db}")
            try:
                for r in await conn.fetch("SELECT relname, seq_tup_read FROM pg_stat_user_tables"):
                    out[(db, r["relname"])] = int(r["seq_tup_read"])
            finally:
                await conn.close()
    return out
