"""Every route but login (and the platform's health endpoints) refuses a request without a valid token."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from staff_support import Suite


def _routes(suite: Suite) -> list[tuple[str, str]]:
    [mount] = [app for prefix, app in suite.staff.runtime.app._mounts if prefix == "/v1"]
    found = []
    for route in mount.routes:
        if isinstance(route, APIRoute):
            for method in route.methods:
                found.append((method, re.sub(r"\{[^}]+\}", "x-1", route.path)))
    return sorted(found)


async def test_every_route_without_a_valid_token_is_refused(suite: Suite) -> None:
    routes = _routes(suite)
    assert ("GET", "/v1/openapi.json") in routes and ("POST", "/v1/users/x-1/unlock") in routes
    for method, path in routes:
        if path == "/v1/login":
            continue
        for headers in ({}, {"authorization": "Bearer not-a-token"}, {"authorization": "Basic cm9vdDpyb290"}):
            r = await suite.client.request(method, path, headers=headers, json={})
            assert r.status_code == 401, (method, path, headers, r.status_code)
            assert r.json()["error"]["reason"] == "unauthorised"


@pytest.mark.parametrize("path", ["/health/live", "/health/ready"])
async def test_health_needs_no_token(suite: Suite, path: str) -> None:
    assert (await suite.client.get(path)).status_code == 200


async def test_functions_need_their_role(suite: Suite) -> None:
    cs = await suite.as_role("customer_service")
    for method, path in (("GET", "/v1/users"), ("POST", "/v1/dsar/requests"), ("GET", "/v1/audit/verify")):
        assert (await suite.client.request(method, path, headers=cs, json={})).status_code == 403
