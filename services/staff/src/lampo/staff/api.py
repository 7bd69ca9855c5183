"""The staff HTTP API (FastAPI), mounted under /v1 on the service runtime; OpenAPI at
/v1/openapi.json. Every route but ``POST /v1/login`` needs ``Authorization: Bearer <token>``
(the platform's /health/* and /metrics are outside /v1).

Errors are ``{"error": {"reason", "detail"}}``; a detail names the field and the rule, and never
echoes the input (a password typed in the wrong field stays out of responses and logs).
"""

import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from lampo.contracts.dsar import DsarSubmitted
from lampo.staff.access import Access
from lampo.staff.approvals import Desk
from lampo.staff.approvals import add_routes as add_approval_routes
from lampo.staff.audit_head import last_head
from lampo.staff.customer_view import Customers
from lampo.staff.domain import Rights, parse_categories
from lampo.staff.errors import (
    Forbidden,
    InvalidInput,
    StaffError,
    Throttled,
)

_REQUEST_ID = re.compile(r"[!-~]{1,128}")

Bearer = HTTPBearer(auto_error=False, description="A token from POST /v1/login (15 minutes)")


class Login(BaseModel):
    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=1024)


class Token(BaseModel):
    token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_at: datetime


class NewUser(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    roles: list[str] = Field(default_factory=list, max_length=16)


class NewGrant(BaseModel):
    role: str = Field(min_length=1, max_length=64)


class UserRoles(BaseModel):
    username: str
    roles: list[str]


class UserInfo(UserRoles):
    locked: bool
    failed_attempts: int


class Subject(BaseModel):
    customer_number: str
    subject_id: str
    restricted: bool
    categories: dict[str, list[dict[str, Any]]] = Field(
        description="Category -> items from every store holding it (registry, billing, recordings, consent), each naming its store"
    )
    not_connected: list[str] = Field(
        description="Categories the role may read that no connected store holds for this API yet"
    )
    withheld: bool = Field(False, description="the subject is restricted: its data is stored, not used (Art. 18)")
    unavailable: list[str] = Field(
        default_factory=list, description="Stores that could not answer (their categories may be incomplete)"
    )


class Search(BaseModel):
    by: Literal["customer_number", "identity_code", "email", "name"]
    value: str = Field(min_length=1, max_length=320)


class Found(BaseModel):
    customer_numbers: list[str]


class AuditStatus(BaseModel):
    ok: bool
    rows: int
    first_broken: int | None = None
    reason: str | None = None
    head_seq: int | None = Field(None, description="the row of the last published head the chain was checked against")


class Commitment(BaseModel):
    text_version: str = Field(min_length=1, max_length=64, description="the version of the text committed to")


class CommitmentRecord(Commitment):
    username: str
    committed_at: datetime


def _error(status: int, reason: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": {"reason": reason, "detail": detail}}, status_code=status)


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no valid token (or, at login, wrong credentials)"},
    403: {"description": "the user's roles do not allow this"},
    422: {"description": "invalid input"},
}


def create_api(access: Callable[[], Access], customers: Customers, desk: Desk) -> FastAPI:
    """``access`` gives the bound service layer once the runtime's pool exists; ``customers``
    reads a customer across the stores (customer_view.py, shared with the console); ``desk`` does
    what staff does with data subject requests (approvals.py, shared with the console)."""
    api = FastAPI(
        title="Muuramen Lämpö staff API",
        version="1",
        description="Staff access to the customer register: personal accounts, roles by category, audited reads, DSARs.",
        openapi_url=None,  # served below, behind a token like every other route
        docs_url=None,
        redoc_url=None,
    )

    @api.exception_handler(StaffError)
    async def staff_error(request: Request, e: StaffError) -> JSONResponse:
        response = _error(e.status, e.reason, e.detail)
        if e.status == 401:
            response.headers["www-authenticate"] = "Bearer"
        if isinstance(e, Throttled):
            response.headers["retry-after"] = str(e.retry_after_s)
        return response

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return _error(422, "invalid", f"{where}: {first.get('msg', 'invalid')}")

    async def rights(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(Bearer)]) -> Rights:
        return await access().authenticate(credentials.credentials if credentials else None)

    def needs(function: str) -> Callable[..., Awaitable[Rights]]:
        async def check(user: Annotated[Rights, Depends(rights)]) -> Rights:
            if function not in user.functions:
                raise Forbidden(f"the user's roles do not include {function}")
            return user

        return check

    User = Annotated[Rights, Depends(rights)]
    Admin = Annotated[Rights, Depends(needs("manage_users"))]
    Dpo = Annotated[Rights, Depends(needs("handle_dsar"))]
    Auditor = Annotated[Rights, Depends(needs("read_audit"))]
    Username = Annotated[str, Path(max_length=64)]

    async def confided(user: User) -> Rights:
        """§8: customer data only after the user's confidentiality commitment is recorded."""
        await access().require_commitment(user.username)
        return user

    Confided = Annotated[Rights, Depends(confided)]

    async def searcher(user: Confided) -> Rights:
        """A user whose roles may read some customer data (checked before the body is)."""
        if not user.read:
            await customers.refuse_search(user)
        return user

    Searcher = Annotated[Rights, Depends(searcher)]

    @api.post(
        "/v1/login",
        response_model=Token,
        responses={
            401: {"description": "wrong credentials: the same answer for an unknown name, a wrong password and a locked account"},
            429: {"description": "too many failed logins from this address (Retry-After)"},
        },
    )  # fmt: skip
    async def login(body: Login, request: Request) -> Token:
        address = request.client.host if request.client else None
        session = await access().login(body.username, body.password, address=address)
        return Token(token=session.token, expires_at=session.expires_at)

    @api.post("/v1/me/confidentiality", response_model=CommitmentRecord, responses={401: ERRORS[401], 422: ERRORS[422]})
    async def commit_confidentiality(body: Commitment, user: User) -> CommitmentRecord:
        """Record the user's confidentiality commitment (§8) to the text version in force."""
        at = await access().commit_confidentiality(user.username, body.text_version)
        return CommitmentRecord(username=user.username, text_version=body.text_version, committed_at=at)

    @api.post("/v1/logout", status_code=204, responses={401: ERRORS[401]})
    async def logout(
        user: User, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(Bearer)]
    ) -> Response:
        assert credentials is not None  # ``user`` required it
        await access().logout(credentials.credentials)
        return Response(status_code=204)

    @api.get(
        "/v1/subjects/{customer_number}",
        response_model=Subject,
        responses={**ERRORS, 404: {"description": "no such customer"}, 503: {"description": "registry unreachable"}},
    )
    async def read_subject(
        customer_number: Annotated[str, Path(max_length=128)],
        user: Confided,
        categories: Annotated[str | None, Query(max_length=256, description="comma-separated §6 categories")] = None,
    ) -> Subject:
        view = await customers.read(user, customer_number, parse_categories(categories))
        return Subject(
            customer_number=view.customer_number,
            subject_id=view.subject_id,
            restricted=view.restricted,
            categories=view.categories,
            not_connected=view.not_connected,
            withheld=view.withheld,
            unavailable=view.unavailable,
        )

    @api.post(
        "/v1/search",
        response_model=Found,
        responses={**ERRORS, 503: {"description": "registry unreachable"}},
    )
    async def search(body: Search, user: Searcher) -> Found:
        """Customer look-up through the registry's blind indexes; the value stays in the body."""
        return Found(customer_numbers=await customers.search(user, body.by, body.value))

    @api.get(
        "/v1/subjects/{customer_number}/recordings/{recording_id}/audio",
        response_class=StreamingResponse,
        responses={
            **ERRORS,
            200: {"description": "the recording's audio", "content": {"audio/wav": {}}},
            404: {"description": "no such recording of this customer, or withheld"},
            503: {"description": "recordings store unreachable"},
        },
    )
    async def play(
        customer_number: Annotated[str, Path(max_length=128)],
        recording_id: Annotated[str, Path(max_length=128)],
        user: Confided,
    ) -> StreamingResponse:
        audio = await customers.audio(user, customer_number, recording_id)
        return StreamingResponse(audio.body, media_type=audio.media_type, headers={"cache-control": "no-store"})

    @api.post(
        "/v1/dsar/requests",
        status_code=201,
        responses={
            **ERRORS,
            200: {"description": "request_id already known"},
            503: {"description": "DSAR service unreachable"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DsarSubmitted"}}},
            }
        },
    )
    async def submit_dsar(request: Request, user: Dpo) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            await access().require_commitment(user.username)  # §8 first, as for a well-formed body
            raise InvalidInput("body: not a JSON object")
        status, answer = await desk.submit(user, body)
        return JSONResponse(answer, status_code=status)

    @api.get(
        "/v1/dsar/requests/{request_id}",
        responses={**ERRORS, 404: {"description": "unknown request"}, 503: {"description": "DSAR service unreachable"}},
    )
    async def follow_dsar(request_id: Annotated[str, Path(max_length=128)], user: Dpo) -> JSONResponse:
        status, answer = await desk.view(user, request_id)
        return JSONResponse(answer, status_code=status)

    @api.get(
        "/v1/dsar/requests",
        summary="The queue: requests by deadline (nearest first), with their participants' status",
        responses={**ERRORS, 503: {"description": "DSAR service unreachable"}},
    )
    async def dsar_queue(
        user: Dpo,
        status: Annotated[list[str] | None, Query(max_length=16, description="only these states (repeatable)")] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> JSONResponse:
        code, answer = await desk.queue(user, status or [], limit=limit, offset=offset)
        return JSONResponse(answer, status_code=code)

    @api.get("/v1/users", response_model=list[UserInfo], responses={401: ERRORS[401], 403: ERRORS[403]})
    async def list_users(user: Admin) -> list[dict[str, object]]:
        return await access().users()

    @api.post(
        "/v1/users", status_code=201, response_model=UserRoles,
        responses={**ERRORS, 409: {"description": "username taken"}},
    )  # fmt: skip
    async def create_user(body: NewUser, user: Admin) -> UserRoles:
        roles = await access().create_user(user.username, body.username, body.password, body.roles)
        return UserRoles(username=body.username, roles=roles)

    @api.post(
        "/v1/users/{username}/grants",
        response_model=UserRoles,
        responses={**ERRORS, 404: {"description": "no such user"}},
    )
    async def grant(username: Username, body: NewGrant, user: Admin) -> UserRoles:
        return UserRoles(username=username, roles=await access().grant(user.username, username, body.role))

    @api.delete(
        "/v1/users/{username}/grants/{role}", response_model=UserRoles,
        responses={**ERRORS, 404: {"description": "no such user or grant"}, 409: {"description": "last administrator"}},
    )  # fmt: skip
    async def revoke(username: Username, role: Annotated[str, Path(max_length=64)], user: Admin) -> UserRoles:
        return UserRoles(username=username, roles=await access().revoke(user.username, username, role))

    @api.post(
        "/v1/users/{username}/unlock", status_code=204, responses={**ERRORS, 404: {"description": "no such user"}}
    )
    async def unlock(username: Username, user: Admin) -> Response:
        await access().unlock(user.username, username)
        return Response(status_code=204)

    @api.get("/v1/audit/verify", response_model=AuditStatus, responses={401: ERRORS[401], 403: ERRORS[403]})
    async def verify(user: Auditor) -> AuditStatus:
        service = access()
        report = await service.verify_audit(await last_head(service.settings, service.audit_key))
        return AuditStatus(ok=report.ok, rows=report.rows, first_broken=report.first_broken, reason=report.reason,
                           head_seq=report.head_seq)  # fmt: skip

    add_approval_routes(api, desk, needs)  # approve, deny, extend, retry, cancel

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = get_openapi(title=api.title, version=api.version, description=api.description, routes=api.routes)
            model = DsarSubmitted.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(model.pop("$defs", {}))
            components["DsarSubmitted"] = model
            schema["paths"]["/v1/openapi.json"] = {
                "get": {"summary": "This document", "security": [{"HTTPBearer": []}], "responses": {"200": {"description": "OpenAPI 3.1"}, "401": ERRORS[401]}}
            }  # fmt: skip
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]

    @api.get("/v1/openapi.json", include_in_schema=False)
    async def document(user: User) -> JSONResponse:
        return JSONResponse(api.openapi())

    return api
