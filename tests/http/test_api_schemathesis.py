"""A schemathesis run over the registry's and the coordinator's HTTP APIs (their OpenAPI documents,
``Runtime.openapi()``), as each of their callers with its valid credential and without any: no 5xx
on any generated input, and every answer conforms to the document (status code, content type,
response schema). The coordinator resolves through this registry over real HTTP with its own
credential. The staff API has its own run (services/staff/tests/test_dsar_and_openapi.py)."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis import openapi
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode

from lampo.contracts.catalog import CONSENT_EVENTS, DSAR_REQUESTS, PRIVACY_ACKS, PRIVACY_TASKS, REGISTRY_INBOUND
from lampo.crypto import new_master_key
from lampo.dsar.app import build as build_dsar
from lampo.dsar.settings import DsarSettings
from lampo.registry.app import build as build_registry
from lampo.registry.settings import RegistrySettings
from lampo.service import Runtime
from lampo.testing import drop_database, fast_forward_group, running, unique

TOKENS = {name: secrets.token_urlsafe(16) for name in ("staff", "portal", "dsar")}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def served(runtime: Runtime) -> AsyncIterator[str]:
    """The started runtime's app over real HTTP (in this event loop, where its pool lives)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(runtime.app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for this
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


def fuzz(document: dict[str, Any], url: str, callers: list[str | None]) -> tuple[int, list[str]]:
    """Every operation, positive and negative inputs, as each caller (None: no credential)."""
    schema = openapi.from_dict(document)
    failures: list[str] = []
    calls = 0

    def run(operation: Any, mode: GenerationMode, who: str | None) -> None:
        headers = {"authorization": f"Bearer {TOKENS[who]}"} if who else {}

        @settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: Any) -> None:
            nonlocal calls
            response = case.call(base_url=url, headers=headers, timeout=30)
            calls += 1
            try:
                case.validate_response(response, checks=CHECKS)
            except FailureGroup as group:  # failed checks: collected, the run goes on
                failures.extend(
                    f"{case.method} {case.formatted_path} as {who}: {response.status_code} {f.title}: {f.message[:200]}"
                    for f in group.exceptions
                )

        check()

    for result in schema.get_all_operations():
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for who in callers:
                run(result.ok(), mode, who)
    return calls, failures


async def test_the_registry_and_the_coordinator_answer_every_generated_input_as_documented() -> None:
    registry_settings = RegistrySettings(
        database=unique("test_registry"), consumer_group=unique("test-registry"), master_key=new_master_key(),
        api_clients={"dsar": TOKENS["dsar"], "staff": TOKENS["staff"]},
    )  # fmt: skip
    await fast_forward_group(registry_settings.consumer_group or "", [REGISTRY_INBOUND, CONSENT_EVENTS, PRIVACY_TASKS])
    registry = build_registry(registry_settings)
    dsar_settings: DsarSettings | None = None
    try:
        async with running(registry.app), served(registry) as registry_url:
            dsar_settings = DsarSettings(
                database=unique("test_dsar"), consumer_group=unique("test-dsar"), master_key=new_master_key(),
                registry_url=registry_url, participants=["nobody-answers"], resolve_backoff_s=0.2,
                api_clients={"staff": TOKENS["staff"], "portal": TOKENS["portal"]}, api_token=TOKENS["dsar"],
            )  # fmt: skip
            await fast_forward_group(dsar_settings.consumer_group or "", [DSAR_REQUESTS, PRIVACY_ACKS])
            dsar = build_dsar(dsar_settings)
            async with running(dsar.runtime.app), served(dsar.runtime) as dsar_url:
                runs = [
                    (registry.openapi(), registry_url, [None, "dsar", "staff"]),
                    (dsar.runtime.openapi(), dsar_url, [None, "staff", "portal"]),
                ]
                for document, _, _ in runs:
                    assert document["paths"], "an API without operations"
                results = [await asyncio.to_thread(fuzz, *run) for run in runs]
    finally:
        for database in (registry_settings.database, dsar_settings.database if dsar_settings else None):
            if database:
                await drop_database(database)
    for calls, failures in results:
        assert calls > 100
        assert not failures, "\n".join(failures[:10])
