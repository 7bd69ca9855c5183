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

from lampo.contracts.catalog import REGISTRY_EVENTS, REGISTRY_INBOUND
from lampo.registry.app import build
from lampo.testing import Producer, TopicReader, customer_upserted, drop_database, eventually, fast_forward_group, running


async def test_killed_between_effect_and_commit_has_one_effect_after_restart(fresh_settings) -> None:
    settings = fresh_settings
    await fast_forward_group(settings.consumer_group or "", [REGISTRY_INBOUND])
    env = {
        **os.environ,
        "LAMPO_DATABASE": settings.database or "",
        "LAMPO_CONSUMER_GROUP": settings.consumer_group or "",
        "LAMPO_MASTER_KEY": settings.master_key.get_secret_value() if settings.master_key else "",
    }
    script = Path(__file__).with_name("crash_after_effect.py")
    process = await asyncio.create_subprocess_exec(sys.executable, str(script), env=env)
    customer = str(uuid.uuid4().int % 10**9)
    event = customer_upserted(customer, 21)
    try:
        async with TopicReader(REGISTRY_EVENTS) as notices:
            async with Producer() as producer:
                await producer.send(REGISTRY_INBOUND, customer, event)
            returncode = await asyncio.wait_for(process.wait(), timeout=90)
            assert returncode == -signal.SIGKILL  # it died at the chosen moment

            runtime = build(settings)
            async with running(runtime.app):
                consumer = runtime.consumers[0]
                # the record comes back (its offset was never committed) and is recognised
                await eventually(lambda: consumer.stats.duplicates == 1, timeout=60)
                await notices.wait_for(lambda r: json.loads(r.value)["data"]["customer_number"] == customer)
                seen = await notices.quiet(1.0)
                async with runtime.pool.acquire() as conn:
                    customers = await conn.fetchval("SELECT count(*) FROM customers WHERE customer_number = $1", customer)
                    sections = await conn.fetchval("SELECT count(*) FROM sections WHERE customer_number = $1", customer)
                    handled = await conn.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", event.id)
                assert consumer.stats.processed == 0
        assert (customers, sections, handled) == (1, 4, 1)
        announced = {json.loads(r.value)["id"] for r in seen if json.loads(r.value)["data"]["customer_number"] == customer}
        assert len(announced) == 1
    finally:
        if process.returncode is None:
            process.kill()
        await drop_database(settings.database or "")
