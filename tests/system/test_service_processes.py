"""Every service as run in production (``lampo-<name>``, through ``lampo.service.serve``): ready,
on /metrics, and with its start-up heap frozen out of the garbage collector's full collections
(without it, each full collection paused a service's event loop for ~50 ms under load)."""

from __future__ import annotations

import re

import httpx


async def test_every_served_service_froze_its_start_up_heap(suite) -> None:
    async with httpx.AsyncClient() as client:
        for name, service in suite.services.items():
            text = (await client.get(f"{service.url}/metrics", timeout=5)).text
            frozen = re.search(r"^lampo_process_gc_frozen_objects(?:\{[^}]*\})? (\d+)", text, re.M)
            assert frozen is not None, f"{name}: no lampo_process_gc_frozen_objects on /metrics"
            assert int(frozen.group(1)) > 10_000, f"{name}: only {frozen.group(1)} objects frozen"
