"""Every service as run in production (``lampo-<name>``, through ``lampo.service.serve``): ready,
on /metrics, and with its start-up heap frozen out of the garbage collector's full collections
(without it, each full collection paused a service's event loop for ~50 ms under load)."""

from __future__ import annotations

import asyncio
import re
import socket
import uuid

import httpx
import pytest


async def test_every_served_service_froze_its_start_up_heap(suite) -> None:
    async with httpx.AsyncClient() as client:
        for name, service in suite.services.items():
            text = (await client.get(f"{service.url}/metrics", timeout=5)).text
            frozen = re.search(r"^lampo_process_gc_frozen_objects(?:\{[^}]*\})? (\d+)", text, re.M)
            assert frozen is not None, f"{name}: no lampo_process_gc_frozen_objects on /metrics"
            assert int(frozen.group(1)) > 10_000, f"{name}: only {frozen.group(1)} objects frozen"


async def test_the_served_apis_answer_only_the_callers_they_name(suite, require) -> None:
    """Over real HTTP, with the credentials `launch` provisions as `make up` does: the coordinator
    takes a portal's request and shows it to the portal and to staff; the registry resolves for the
    coordinator only; nobody without a credential is answered."""
    require("dsar", "registry")
    dsar, registry = suite["dsar"].url, suite["registry"].url
    request_id = f"sys-{uuid.uuid4().hex[:12]}"
    body = {
        "request_id": request_id,
        "kind": "access",
        "identifiers": {"customer_number": f"nobody-{uuid.uuid4().hex[:6]}"},
        "verification": {"method": "strong_electronic", "verified_by": "portal", "verified_at": "2026-11-28T09:59:00Z"},
    }
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.post(f"{dsar}/v1/requests", json=body)).status_code == 401
        created = await client.post(f"{dsar}/v1/requests", json=body, headers=suite.as_caller("portal"))
        assert created.status_code == 201 and created.json()["channel"] == "portal", created.text
        for caller in ("portal", "staff"):
            seen = await client.get(f"{dsar}/v1/requests/{request_id}", headers=suite.as_caller(caller))
            assert seen.status_code == 200, (caller, seen.text)
        assert (await client.get(f"{dsar}/v1/requests/{request_id}")).status_code == 401
        assert (
            await client.post(f"{dsar}/v1/requests/{request_id}/cancel", headers=suite.as_caller("portal"))
        ).status_code == 403

        lookup = {"customer_number": "nobody-here"}
        assert (await client.post(f"{registry}/v1/resolve", json=lookup)).status_code == 401
        assert (
            await client.post(f"{registry}/v1/resolve", json=lookup, headers=suite.as_caller("staff"))
        ).status_code == 403
        answered = await client.post(f"{registry}/v1/resolve", json=lookup, headers=suite.as_caller("dsar"))
        assert answered.status_code == 404 and answered.json() == {"error": "no_match"}
        for name, service in suite.services.items():  # health and metrics stay open
            assert (await client.get(f"{service.url}/health/live")).status_code == 200, name


def _outward_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            address = str(s.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


async def test_every_service_listens_on_loopback_only(suite) -> None:
    address = _outward_address()
    if address is None:
        pytest.skip("this machine has no address besides loopback")
    for name, service in suite.services.items():
        with socket.socket() as s:
            s.settimeout(2)
            assert s.connect_ex((address, service.port)) != 0, f"{name} answers on {address}:{service.port}"
        with socket.socket() as s:
            s.settimeout(2)
            assert s.connect_ex(("127.0.0.1", service.port)) == 0, name


async def test_a_served_api_keeps_an_idle_connection_open_longer_than_its_callers_do(suite) -> None:
    """Callers (httpx) drop a connection after 5 s idle; a server that closes it at 5 s too races
    them, and the loser's request fails (staff answered an approval 503: dsar had closed the
    connection it was sent on). Raw HTTP/1.1 on one socket: a second request after 6 s idle is
    still answered."""
    service = next(iter(suite.services.values()))
    host, port = service.url.removeprefix("http://").split(":")
    request = f"GET /health/live HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        for _ in range(2):
            writer.write(request)
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), timeout=10)
            assert status.startswith(b"HTTP/1.1 200"), status
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            await asyncio.sleep(6)
    finally:
        writer.close()
