"""The coordinator on the real broker and database, with real participants.

Participants are ``lampo.participant.Participant`` instances on their own runtime, database and
consumer group: the real protocol over the real broker, with small handlers written here (the
registry, billing, recordings and consent participants are built elsewhere, at the same time).

Identity: ``StandInRegistry`` serves the registry's ``POST /v1/resolve`` over real HTTP (uvicorn on
a free port) from a table the test fills, answering only the coordinator's own credential as the
registry does; stopping it makes the registry unreachable for real.

HTTP callers: the coordinator answers ``CLIENTS`` (``staff``, ``portal``, and ``billing``, a known
caller no route answers); ``as_caller(name)`` is that caller's ``Authorization`` header.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lampo.clock import Clock, ManualClock
from lampo.contracts.catalog import DSAR_REQUESTS, PRIVACY_ACKS, PRIVACY_TASKS
from lampo.contracts.envelope import CloudEvent
from lampo.crypto import new_master_key
from lampo.dsar.app import Dsar, build
from lampo.dsar.settings import DsarSettings
from lampo.participant import Participant, TaskHandler, subscribe
from lampo.service import Runtime
from lampo.settings import ServiceSettings
from lampo.testing import (
    drop_database,
    eventually,
    fast_forward_group,
    running,
    signing_settings,
    synthetic_identity_code,
    unique,
)

MASTER_KEY = new_master_key()
# The coordinator of this test process writes its events and tasks under a source of its own:
# other coordinators on the shared broker (another checkout's tests, a system suite) read
# dsar.requests.v1 too and answer the same requests, and their answers are not ours.
SOURCE = f"urn:lampo:dsar:test-{uuid.uuid4().hex[:8]}"
_COORDINATOR_TOPICS = ("dsar.events.v1", "privacy.tasks.v1")
START = datetime(2026, 11, 28, 9, 58, tzinfo=UTC)
CLIENTS = {name: secrets.token_urlsafe(16) for name in ("staff", "portal", "billing")}
DSAR_TOKEN = secrets.token_urlsafe(16)  # the coordinator's own credential, for the registry


def as_caller(name: str) -> dict[str, str]:
    return {"authorization": f"Bearer {CLIENTS[name]}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StandInRegistry:
    """``POST /v1/resolve`` as the lead specified it: 200 subject, 404 no_match, 400 malformed."""

    def __init__(self) -> None:
        self.port = free_port()
        self.by_identifier: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls = 0
        self.refused = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        app = FastAPI()

        @app.post("/v1/resolve")
        async def resolve(body: dict[str, Any], authorization: Annotated[str | None, Header()] = None) -> JSONResponse:
            if authorization != f"Bearer {DSAR_TOKEN}":
                self.refused += 1
                return JSONResponse({"detail": "unauthenticated"}, status_code=401)
            self.calls += 1
            keys = [
                (k, str(v))
                for k, v in body.items()
                if k in ("customer_number", "personal_identity_code", "email") and v
            ]
            if not keys:
                return JSONResponse({"error": "malformed"}, status_code=400)
            for key in keys:
                if key in self.by_identifier:
                    return JSONResponse(self.by_identifier[key])
            return JSONResponse({"error": "no_match"}, status_code=404)

        self.app = app

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, customer_number: str, *, pic: str | None = None, email: str | None = None) -> str:
        subject_id = f"s-{uuid.uuid4().hex[:12]}"
        subject = {"subject_id": subject_id, "customer_numbers": [customer_number], "kind": "person"}
        self.by_identifier[("customer_number", customer_number)] = subject
        if pic:
            self.by_identifier[("personal_identity_code", pic)] = subject
        if email:
            self.by_identifier[("email", email)] = subject
        return subject_id

    async def start(self) -> None:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        server = self._server
        await eventually(lambda: server.started, timeout=10, interval=0.02)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = None


@dataclass
class Env:
    dsar: Dsar
    spans: InMemorySpanExporter
    settings: DsarSettings
    clock: Any  # a ManualClock unless the test runs on the system's clock

    @property
    def coordinator(self):  # type: ignore[no-untyped-def]
        return self.dsar.coordinator

    @property
    def pool(self):  # type: ignore[no-untyped-def]
        return self.dsar.runtime.pool

    async def request(self, request_id: str) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            return await self.coordinator.view(conn, request_id)  # type: ignore[no-any-return]

    async def status(self, request_id: str) -> str | None:
        async with self.pool.acquire() as conn:
            return await conn.fetchval("SELECT status FROM requests WHERE request_id = $1", request_id)  # type: ignore[no-any-return]


@asynccontextmanager
async def dsar_service(
    registry: StandInRegistry, *, run_checker: bool = True, clock: Clock | None = None, **overrides: Any
) -> AsyncIterator[Env]:
    """The coordinator on a ManualClock at START, or on ``clock`` (a test whose operator CLI runs as
    its own process, on the system's clock, gives the service the system's clock too)."""
    settings = DsarSettings(
        database=unique("test_dsar"),
        consumer_group=unique("test-dsar"),
        master_key=MASTER_KEY,
        registry_url=registry.url,
        check_interval_s=0.5,
        resolve_backoff_s=0.2,
        # the stand-in registry alone, unless a test adds stores; signing as the coordinator and
        # trusting the test keys of the default participants and those a test names
        **{
            "api_clients": CLIENTS,
            "api_token": DSAR_TOKEN,
            "store_resolve_urls": {},
            "source": SOURCE,
            **signing_settings("coordinator", *overrides.get("participants", ())),
            **overrides,
        },
    )
    await fast_forward_group(settings.consumer_group or "", [DSAR_REQUESTS, PRIVACY_ACKS])
    clock = clock or ManualClock(START)
    spans = InMemorySpanExporter()
    dsar = build(settings, span_processors=[SimpleSpanProcessor(spans)], clock=clock, run_checker=run_checker)
    try:
        async with running(dsar.runtime.app):
            yield Env(dsar, spans, settings, clock)
    finally:
        await drop_database(settings.database or "")


@dataclass
class ParticipantProcess:
    """A participant on its own runtime; ``stop()`` / ``start()`` it like a crashed service."""

    name: str
    handlers: Mapping[str, TaskHandler]
    settings: ServiceSettings = field(init=False)
    runtime: Runtime | None = None
    tasks_seen: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Signs its acks as its own name (the coordinator trusts that name's test key).
        self.settings = ServiceSettings(
            database=unique("test_part"), consumer_group=unique("test-part"), master_key=MASTER_KEY,
            signer=self.name, **signing_settings(self.name),
        )  # fmt: skip

    async def start(self) -> None:
        runtime = Runtime(self.settings, migrations=None)
        subscribe(runtime, Participant(self.name, self.handlers))
        await runtime.app.start()
        self.runtime = runtime

    async def stop(self) -> None:
        if self.runtime is not None:
            await self.runtime.app.stop()
            self.runtime = None


@asynccontextmanager
async def participants(*processes: ParticipantProcess) -> AsyncIterator[dict[str, ParticipantProcess]]:
    for p in processes:
        await fast_forward_group(p.settings.consumer_group or "", [PRIVACY_TASKS])
        await p.start()
    try:
        yield {p.name: p for p in processes}
    finally:
        for p in processes:
            await p.stop()
            await drop_database(p.settings.database or "")


def submitted(
    kind: str = "access",
    *,
    request_id: str | None = None,
    customer_number: str | None = None,
    verified: bool = True,
    received_at: datetime = START,
    **extra: Any,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "request_id": request_id or f"req-{uuid.uuid4().hex[:12]}",
        "kind": kind,
        "identifiers": {"customer_number": customer_number or str(uuid.uuid4().int % 10**9)},
        "received_at": received_at.isoformat(),
        "channel": "portal",
    }
    if verified:
        data["verification"] = {
            "method": "strong_electronic",
            "verified_by": "portal",
            "verified_at": received_at.isoformat(),
        }
    data.update(extra)
    return data


def legal_hold_state(customer_number: str) -> dict[str, Any]:
    """retention.holds.v1's ``legal_hold.state`` data: one court hold on the customer's basic data."""
    return {
        "customer_number": customer_number,
        "holds": [
            {
                "hold_id": "h-1",
                "categories": ["basic"],
                "case_reference": "R 26/1234",
                "authority": "Keski-Suomen käräjäoikeus",
                "placed_at": "2026-11-01T10:00:00Z",
            }
        ],
    }


def event(event_type: str, data: dict[str, Any]) -> CloudEvent:
    return CloudEvent.new(event_type, "urn:system:portal", data)


def data_of(record: Any) -> dict[str, Any]:
    return json.loads(record.value)["data"]  # type: ignore[no-any-return]


def type_of(record: Any) -> str:
    return json.loads(record.value)["type"]  # type: ignore[no-any-return]


def ours(record: Any) -> bool:
    """Written by this process's coordinator (see ``SOURCE``), or not a coordinator's topic."""
    return record.topic not in _COORDINATOR_TOPICS or json.loads(record.value).get("source") == SOURCE


def for_request(request_id: str, event_type: str | None = None) -> Callable[[Any], bool]:
    def match(record: Any) -> bool:
        if record.key != request_id.encode() or not ours(record):
            return False
        return event_type is None or type_of(record) == event_type

    return match


__all__ = ["SOURCE", "START", "synthetic_identity_code"]
