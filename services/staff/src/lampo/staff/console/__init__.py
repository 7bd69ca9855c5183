"""The staff console: server-rendered pages under ``/console/`` on the staff service's port, in
Finnish and English (lampo.web), behind the staff service's own login and roles.

- ``auth.py``: login, the confidentiality commitment, logout, ``current_user`` and ``needs``.
- ``requests.py``: the request queue by deadline, a request's page with its participants and
  trace, the decisions (approve, deny, extend, retry, cancel) and requests registered by staff.
- ``customers.py``: customer look-up and the customer's data by category, as the role allows.
- ``admin.py``: users and roles, locked accounts, login alerts, the audit log and its chain.

``create_console`` builds the pages' FastAPI app; the runtime mounts it at every prefix in
``PREFIXES`` (the pages, their static files and the language switch).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Final

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from lampo.staff.access import Access
from lampo.staff.approvals import Desk
from lampo.staff.console import auth
from lampo.staff.console.auth import (
    INTERFACE,
    Console,
    LoginRequired,
    Refused,
    confidentiality_redirect,
    login_redirect,
    render,
)
from lampo.staff.domain import Rights
from lampo.staff.errors import ConfidentialityCommitmentMissing, StaffError
from lampo.staff.settings import StaffSettings
from lampo.web import Site

PREFIXES: Final = ("/console", "/static", "/lang")
# The pages' modules, each with an APIRouter ``router``; one not written yet is left out.
PAGES: Final = ("lampo.staff.console.requests", "lampo.staff.console.customers", "lampo.staff.console.admin")


def create_console(
    access: Callable[[], Access], desk: Desk, registry: httpx.AsyncClient, settings: StaffSettings
) -> FastAPI:
    """The console's app. ``access`` gives the bound service layer once the runtime's pool exists;
    ``desk`` and ``registry`` are the JSON API's own (the same calls, the same audit)."""
    app = FastAPI(title="Muuramen Lämpö staff console", openapi_url=None, docs_url=None, redoc_url=None)
    site = Site(package="lampo.staff")
    site.install(app, session_key=settings.web_session_key_bytes())
    app.state.console = Console(access, desk.via(INTERFACE), registry, settings, site)
    app.include_router(auth.router)
    for name in PAGES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:  # a page's own import failed: that is a bug, not a missing page
                raise
            continue
        app.include_router(module.router)

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, e: LoginRequired) -> Response:
        return login_redirect(request)

    @app.exception_handler(ConfidentialityCommitmentMissing)
    async def to_commitment(request: Request, e: ConfidentialityCommitmentMissing) -> Response:
        return confidentiality_redirect(request)

    @app.exception_handler(Refused)
    async def refused(request: Request, e: Refused) -> Response:
        user = await _user_or_none(request)
        return render(request, "console/refused.html", user=user, status_code=403, needed=e.needed)

    @app.exception_handler(StaffError)
    async def failed(request: Request, e: StaffError) -> Response:
        user = await _user_or_none(request)
        return render(request, "console/error.html", user=user, status_code=e.status, status=e.status, detail=e.detail)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> Response:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")) or "form"
        user = await _user_or_none(request)
        return render(request, "console/error.html", user=user, status_code=422, status=422, detail=f"{where}: invalid")

    return app


async def _user_or_none(request: Request) -> Rights | None:
    try:
        return await auth.current_user(request)
    except LoginRequired:
        return None
