"""A consumer killed after its effect but before its offset commit re-reads the record on
restart and still has one effect."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from pathlib import Path

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lampo.contracts.catalog import REGISTRY_EVENTS, REGISTRY_INBOUND
from lampo.registry.app import build
from lampo.testing import (
    Producer,
    TopicReader,
    customer_upserted,
    drop_database,
    eventually,
    running,
)

from .conftest import fast_forward


async def test_killed_between_effect_and_commit_has_one_effect_after_restart(fresh_settings) -> None:
    settings = fresh_settings
    await fast_forward(settings.consumer_group or "")
    env = {
        **os.environ,
        "LAMPO_DATABASE": settings.database or "",
        "LAMPO_CONSUMER_GROUP": settings.consumer_group or "",
        "LAMPO_MASTER_KEY": settings.master_key.get_secret_value() if settings.master_key else "",
    }
    customer = str(uuid.uuid4().int % 10**9)
    event = customer_upserted(customer, 21)
    env["LAMPO_TEST_KILL_AFTER_EVENT"] = event.id
    script = Path(__file__).with_name("crash_after_effect.py")
    process = await asyncio.create_subprocess_exec(sys.executable, str(script), env=env)
    try:
        async with TopicReader(REGISTRY_EVENTS) as notices:
            async with Producer() as producer:
                await producer.send(REGISTRY_INBOUND, customer, event)
            returncode = await asyncio.wait_for(process.wait(), timeout=90)
            assert returncode == -signal.SIGKILL  # it died at the chosen moment

            spans = InMemorySpanExporter()
            runtime = build(settings, span_processors=[SimpleSpanProcessor(spans)])
            async with running(runtime.app):
                # the record comes back (its offset was never committed) and is recognised
                await eventually(
                    lambda: any(
                        s.attributes.get("messaging.message.id") == event.id and s.attributes.get("lampo.duplicate")
                        for s in spans.get_finished_spans()
                    ),
                    timeout=60,
                )
                async with runtime.pool.acquire() as conn:
                    subject_id = await conn.fetchval(
                        "SELECT subject_id FROM customers WHERE customer_number = $1", customer
                    )
                await notices.wait_for(lambda r: json.loads(r.value)["data"]["subject_id"] == subject_id)
                seen = await notices.quiet(1.0)
                async with runtime.pool.acquire() as conn:
                    customers = await conn.fetchval(
                        "SELECT count(*) FROM customers WHERE customer_number = $1", customer
                    )
                    sections = await conn.fetchval(
                        "SELECT count(*) FROM sections WHERE customer_number = $1 AND payload IS NOT NULL", customer
                    )
                    handled = await conn.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", event.id)
                # (other suites on the shared broker may publish to the topic meanwhile, so the
                # count of processed records is not asserted; the inbox and the rows are)
        assert (customers, sections, handled) == (1, 4, 1)
        # this registry's notices only: another suite's registry on the broker announces in its own subject ids
        announced = {json.loads(r.value)["id"] for r in seen if json.loads(r.value)["data"]["subject_id"] == subject_id}
        assert len(announced) == 1
    finally:
        if process.returncode is None:
            process.kill()
        await drop_database(settings.database or "")
