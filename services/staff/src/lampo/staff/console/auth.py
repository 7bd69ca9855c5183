"""The staff console's base: who is logged in, what they may do, and the pages every user sees
(login, the confidentiality commitment, the start page, logout).

The console logs in through the staff service's own login (``Access.login``: argon2id, the
per-account lockout, the per-address throttle, the login alerts, each attempt audited); its
session cookie (lampo.web) holds that login's bearer token, ``staff_token``, and nothing else of
the user. A page takes the user with ``Depends(current_user)`` (the user's ``Rights``, or the
login page) or ``Depends(needs(function))`` (a 403 page, audited, when the roles lack it). Customer
data is shown only after the user's confidentiality commitment (§8): ``Desk`` and the routes that
read a customer raise ``ConfidentialityCommitmentMissing``, which leads to the commitment page.

Pages render through ``render(request, template, user=..., ...)``, which gives every template the
user and the sections of the navigation the user may open (``SECTIONS``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final, NoReturn
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from lampo.staff.access import Access
from lampo.staff.approvals import Desk
from lampo.staff.domain import AuditEntry, Rights
from lampo.staff.errors import ConfidentialityCommitmentMissing, InvalidCredentials, Throttled, Unauthorised
from lampo.staff.settings import StaffSettings
from lampo.web import Site, clear_session, flash, gettext, safe_next, session
from lampo.web.i18n import N_

STAFF_TOKEN: Final = "staff_token"  # noqa: S105 - the session key the token is kept under
INTERFACE: Final = "console"
"""How the audit log names the console (the JSON API is "http", the CLI "cli")."""
HOME: Final = "/console/"
LOGIN: Final = "/console/login"
CONFIDENTIALITY: Final = "/console/confidentiality"


def _may_handle_requests(user: Rights) -> bool:
    return "handle_dsar" in user.functions


def _may_read_customers(user: Rights) -> bool:
    return bool(user.read)


def _may_administer(user: Rights) -> bool:
    return bool({"manage_users", "read_audit"} & user.functions)


SECTIONS: Final[tuple[tuple[str, str, Callable[[Rights], bool]], ...]] = (
    ("/console/requests", N_("Requests"), _may_handle_requests),
    ("/console/customers", N_("Customers"), _may_read_customers),
    ("/console/admin", N_("Administration"), _may_administer),
)
"""The navigation: (path, label, who may open it). Each page checks the user's rights itself."""


@dataclass(frozen=True)
class Console:
    """What the console's pages use, on ``request.app.state.console``. ``access`` gives the bound
    service layer once the runtime's pool exists."""

    get_access: Callable[[], Access]
    desk: Desk
    registry: httpx.AsyncClient
    settings: StaffSettings
    site: Site

    @property
    def access(self) -> Access:
        return self.get_access()


def console(request: Request) -> Console:
    c: Console = request.app.state.console
    return c


class LoginRequired(Exception):
    """No live staff session behind this request: the login page answers."""


class Refused(Exception):
    """The user's roles do not allow this page or action: a 403 page answers."""

    def __init__(self, needed: str) -> None:
        super().__init__(needed)
        self.needed = needed


async def current_user(request: Request) -> Rights:
    """The logged-in user's rights (roles, functions, readable categories), or ``LoginRequired``.
    A token that expired, was ended or whose account is locked ends the console's session too."""
    token = session(request).get(STAFF_TOKEN)
    if not isinstance(token, str):
        raise LoginRequired()
    try:
        return await console(request).access.authenticate(token)
    except Unauthorised:
        clear_session(request)
        flash(request, gettext(request, N_("Your session has ended. Please log in again.")))
        raise LoginRequired() from None


User = Annotated[Rights, Depends(current_user)]


def _route_of(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", request.url.path))


async def refuse(request: Request, user: Rights, needed: str) -> NoReturn:
    """Audit the refusal (who, which page, what was missing) and answer with the 403 page."""
    await console(request).access.audit(
        AuditEntry(user.username, "console_refused", INTERFACE, "forbidden",
                   detail={"needs": needed, "route": f"{request.method} {_route_of(request)}"})
    )  # fmt: skip
    raise Refused(needed)


def needs(function: str) -> Callable[..., Awaitable[Rights]]:
    """A dependency: the user, if their roles include ``function`` (``approve_erasure``,
    ``handle_dsar``, ``manage_users``, ``read_audit``); else the audited 403 page."""

    async def check(request: Request, user: User) -> Rights:
        if function not in user.functions:
            await refuse(request, user, function)
        return user

    return check


def sections(user: Rights | None) -> list[tuple[str, str]]:
    return [(path, label) for path, label, allowed in SECTIONS if user is not None and allowed(user)]


def render(
    request: Request, template: str, *, user: Rights | None = None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """A console page: ``template`` with the user and the navigation the user may open."""
    return console(request).site.render(
        request, template, status_code=status_code, user=user, sections=sections(user), **context
    )


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    wanted = target if request.method == "GET" else HOME
    return RedirectResponse(f"{LOGIN}?next={quote(wanted)}", status_code=303)


def confidentiality_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    wanted = target if request.method == "GET" else HOME
    return RedirectResponse(f"{CONFIDENTIALITY}?next={quote(wanted)}", status_code=303)


async def committed(request: Request, user: Rights) -> bool:
    try:
        await console(request).access.require_commitment(user.username)
    except ConfidentialityCommitmentMissing:
        return False
    return True


router = APIRouter(include_in_schema=False)


@router.get("/console")
async def console_root() -> RedirectResponse:
    return RedirectResponse(HOME, status_code=307)


@router.get(HOME)
async def home(request: Request, user: User) -> HTMLResponse:
    return render(request, "console/home.html", user=user, has_committed=await committed(request, user))


@router.get(LOGIN)
async def login_page(request: Request, next: str = HOME) -> Response:
    if isinstance(session(request).get(STAFF_TOKEN), str):
        try:
            await current_user(request)
            return RedirectResponse(safe_next(next, HOME), status_code=303)  # logged in already
        except LoginRequired:
            pass  # the session ended: the form, with the flash that says so
    return render(request, "console/login.html", next=safe_next(next, HOME), username="", error=None)


@router.post(LOGIN)
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=256)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2048)] = HOME,
) -> Response:
    target = safe_next(next, HOME)
    address = request.client.host if request.client else None
    if not username or not password:
        return render(request, "console/login.html", status_code=422, next=target, username=username,
                      error="missing")  # fmt: skip
    try:
        # The service's own login: the same lockout, throttle, alerts and audit rows as POST /v1/login.
        started = await console(request).access.login(username, password, interface=INTERFACE, address=address)
    except InvalidCredentials:
        return render(request, "console/login.html", status_code=401, next=target, username=username,
                      error="credentials")  # fmt: skip
    except Throttled as e:
        response = render(request, "console/login.html", status_code=429, next=target, username=username,
                          error="throttled")  # fmt: skip
        response.headers["retry-after"] = str(e.retry_after_s)
        return response
    clear_session(request)  # a new session (and CSRF token) for the new login
    session(request)[STAFF_TOKEN] = started.token
    user = await console(request).access.authenticate(started.token)
    if not await committed(request, user):
        return RedirectResponse(f"{CONFIDENTIALITY}?next={quote(target)}", status_code=303)
    return RedirectResponse(target, status_code=303)


@router.get(CONFIDENTIALITY)
async def confidentiality_page(request: Request, user: User, next: str = HOME) -> HTMLResponse:
    return render(
        request, "console/confidentiality.html", user=user, next=safe_next(next, HOME),
        version=console(request).settings.confidentiality_text_version, has_committed=await committed(request, user),
    )  # fmt: skip


@router.post(CONFIDENTIALITY)
async def commit(
    request: Request,
    user: User,
    text_version: Annotated[str, Form(max_length=64)] = "",
    agree: Annotated[str, Form(max_length=8)] = "",
    next: Annotated[str, Form(max_length=2048)] = HOME,
) -> Response:
    target = safe_next(next, HOME)
    if agree != "yes":
        return render(
            request, "console/confidentiality.html", status_code=422, user=user, next=target,
            version=console(request).settings.confidentiality_text_version, has_committed=False, error=True,
        )  # fmt: skip
    await console(request).access.commit_confidentiality(user.username, text_version, interface=INTERFACE)
    flash(request, gettext(request, N_("Your confidentiality commitment is recorded.")))
    return RedirectResponse(target, status_code=303)


@router.post("/console/logout")
async def logout(request: Request) -> RedirectResponse:
    token = session(request).get(STAFF_TOKEN)
    if isinstance(token, str):
        await console(request).access.logout(token, interface=INTERFACE)  # audited, the token ended
    clear_session(request)
    flash(request, gettext(request, N_("You have logged out.")))
    return RedirectResponse(LOGIN, status_code=303)
