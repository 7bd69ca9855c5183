"""lampo.http_auth: a route answers only the callers it names."""

from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI

from lampo.crypto import new_master_key
from lampo.http_auth import CALLERS_KEY, Caller, Callers, credential_headers, guard, requires
from lampo.service import Runtime
from lampo.settings import ServiceSettings

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


# -- plain ASGI routes, the service's document, the outgoing credential ----------------------------


async def plain(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"resolved"})


def runtime(**routes: Any) -> Runtime:
    settings = ServiceSettings(
        master_key=new_master_key(), api_clients={"dsar": "dsar-secret", "staff": "staff-secret"}
    )
    return Runtime(settings, migrations=None, routes=list(routes.items()), mounts=[("/thing", app())])


async def test_a_guarded_plain_route_answers_only_its_callers() -> None:
    guarded = guard(plain, CALLERS, "staff", methods=["post"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guarded), base_url="http://t") as client:
        assert (await client.post("/r")).status_code == 401
        assert (await client.post("/r")).headers["www-authenticate"] == "Bearer"
        assert (await client.post("/r", headers={"authorization": "Bearer portal-secret"})).status_code == 403
        answer = await client.post("/r", headers={"authorization": "Bearer staff-secret"})
        assert (answer.status_code, answer.text) == (200, "resolved")


def test_the_services_document_names_every_routes_callers_and_lists_an_unguarded_one() -> None:
    rt = runtime(**{"/v1/resolve": guard(plain, CALLERS, "dsar"), "/v1/naked": plain})
    paths = rt.openapi()["paths"]
    assert paths["/thing"]["get"][CALLERS_KEY] == ["staff"]
    assert paths["/v1/resolve"]["post"][CALLERS_KEY] == ["dsar"]
    assert set(paths["/v1/resolve"]["post"]["responses"]) >= {"401", "403"}
    # A route that does not say whom it answers is still listed, with no callers: the suite's
    # per-route test then fails on it.
    assert set(paths["/v1/naked"]) == {"get", "post"} and CALLERS_KEY not in paths["/v1/naked"]["post"]
    assert not any(p.startswith(("/health", "/metrics")) for p in paths)


def test_callers_come_from_the_settings_and_the_own_credential_goes_out() -> None:
    settings = ServiceSettings(master_key=new_master_key(), api_clients={"portal": "p"}, api_token="mine")
    assert Callers.of(settings).identify("Bearer p") == Caller("portal")
    assert credential_headers(settings) == {"authorization": "Bearer mine"}
    assert credential_headers(ServiceSettings(master_key=new_master_key())) == {}
