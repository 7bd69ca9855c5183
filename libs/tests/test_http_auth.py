"""lampo.http_auth: a route answers only the callers it names."""

from typing import Annotated

import httpx
from fastapi import Depends, FastAPI

from lampo.http_auth import Caller, Callers, requires

CALLERS = Callers({"staff": "staff-secret", "portal": "portal-secret", "unset": ""})
StaffOnly = Annotated[Caller, Depends(requires(lambda: CALLERS, "staff"))]


def app() -> FastAPI:
    api = FastAPI()

    @api.get("/thing")
    async def thing(caller: StaffOnly) -> dict[str, str]:
        return {"caller": caller.name}

    return api


async def status(headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app()), base_url="http://t") as client:
        r = await client.get("/thing", headers=headers)
        return r.status_code, r.json()


async def test_without_a_credential_the_answer_is_401() -> None:
    assert (await status({}))[0] == 401
    assert (await status({"authorization": "Bearer nothing-anyone-holds"}))[0] == 401
    assert (await status({"authorization": "Basic c3RhZmYtc2VjcmV0"}))[0] == 401
    # A caller configured without a token holds nothing: an empty token is no credential.
    assert (await status({"authorization": "Bearer "}))[0] == 401


async def test_a_known_caller_the_route_does_not_answer_gets_403() -> None:
    assert (await status({"authorization": "Bearer portal-secret"}))[0] == 403


async def test_the_named_caller_is_answered_and_known_by_name() -> None:
    assert await status({"authorization": "Bearer staff-secret"}) == (200, {"caller": "staff"})


def test_no_clients_configured_refuses_everyone() -> None:
    assert Callers({}).identify("Bearer staff-secret") is None
