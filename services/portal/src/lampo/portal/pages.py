"""The privacy centre's pages (lampo.web): home, verification (choose a way; each verifier adds
its own pages), my requests, a new request per kind, a request's status and its package, logout.
Every form works without JavaScript; lampo.web adds the session and CSRF."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import HTTPException
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from lampo.portal import labels, store
from lampo.portal.clients import Unavailable
from lampo.portal.domain import KINDS, OBJECTION_SCOPES, Kind, read_form, submitted
from lampo.portal.email_code import NEXT
from lampo.portal.render import portal, render
from lampo.portal.session import Verified, current_subject, forget_subject
from lampo.portal.settings import PortalSettings
from lampo.portal.verify import Verifier
from lampo.web import Site, flash, gettext, safe_next, session
from lampo.web.forms import RECTIFIABLE
from lampo.web.i18n import N_, pick

if TYPE_CHECKING:
    from lampo.portal.app import Portal


def _lang(request: Request) -> str:
    return pick(getattr(request.state, "lang", None))


def _package_state(view: dict[str, Any], now: datetime) -> str | None:
    """``ready``, ``gone`` (expired or destroyed) or None (no package)."""
    package = view.get("package")
    if not package:
        return None
    expires = package.get("expires_at")
    if package.get("destroyed") or (expires and datetime.fromisoformat(expires) <= now):
        return "gone"
    return "ready"


def create_pages(
    portal_of: Callable[[], Portal], site: Site, settings: PortalSettings, verifiers: Sequence[Verifier],
    extra: Sequence[APIRouter] = (),
) -> FastAPI:  # fmt: skip
    """The pages app; ``portal_of`` gives the bound service once the runtime exists."""
    app = FastAPI(title="Muuramen Lämpö privacy centre", openapi_url=None, docs_url=None, redoc_url=None)
    site.install(app, session_key=settings.web_session_key_bytes())

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> Response:
        if e.status_code in (301, 302, 303, 307) and e.headers and "location" in e.headers:
            return RedirectResponse(e.headers["location"], status_code=e.status_code)
        if e.status_code == 404:
            return render(request, "not_found.html", status_code=404)
        return render(request, "error.html", status_code=e.status_code, status=e.status_code,
                      message=gettext(request, N_("Something went wrong. Please try again.")))  # fmt: skip

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def home(request: Request) -> HTMLResponse:
        return render(request, "home.html")

    @app.get("/verify", response_class=HTMLResponse, include_in_schema=False)
    async def choose(request: Request, next: str | None = None) -> HTMLResponse:
        if next:
            session(request)[NEXT] = safe_next(next)
        return render(request, "verify.html", verifiers=verifiers)

    for verifier in verifiers:
        app.include_router(verifier.router())

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> RedirectResponse:
        forget_subject(request)
        flash(request, gettext(request, N_("You have logged out.")))
        return RedirectResponse("/", status_code=303)

    @app.get("/requests", response_class=HTMLResponse, include_in_schema=False)
    async def my_requests(request: Request, subject: Verified) -> HTMLResponse:
        p = portal(request)
        async with p.runtime.pool.acquire() as conn:
            mine = await store.requests_of(conn, subject.customer_number)

        async def status_of(request_id: str) -> str | None:
            try:
                view = await p.dsar_api.request(request_id)
            except Unavailable:
                return None
            return view["status"] if view else None

        statuses = await asyncio.gather(*(status_of(r.request_id) for r in mine))
        rows = [{"request": r, "status": s} for r, s in zip(mine, statuses, strict=True)]
        return render(request, "requests.html", rows=rows, labels=labels)

    @app.get("/requests/new", response_class=HTMLResponse, include_in_schema=False)
    async def new_request(request: Request, subject: Verified) -> HTMLResponse:
        return render(request, "new_request.html", kinds=KINDS, labels=labels)

    def kind_of(kind: str) -> Kind:
        for k in KINDS:
            if k == kind:
                return k
        raise HTTPException(404)

    def form_page(
        request: Request, kind: Kind, *, values: dict[str, str], errors: dict[str, str], status: int = 200
    ) -> HTMLResponse:
        return render(request, "request_form.html", status_code=status, kind=kind, values=values, errors=errors,
                      labels=labels, scopes=OBJECTION_SCOPES, rectifiable=list(RECTIFIABLE))  # fmt: skip

    @app.get("/requests/new/{kind}", response_class=HTMLResponse, include_in_schema=False)
    async def request_form(request: Request, kind: str, subject: Verified) -> HTMLResponse:
        return form_page(request, kind_of(kind), values={}, errors={})

    @app.post("/requests/new/{kind}", response_model=None, include_in_schema=False)
    async def submit(request: Request, kind: str, subject: Verified) -> Response:
        k = kind_of(kind)
        form = await request.form()
        answers = {key: value for key, value in form.items() if isinstance(value, str)}
        result = read_form(k, answers)
        if not result.ok:
            return form_page(request, k, values=result.values, errors=result.errors, status=422)
        p = portal(request)
        request_id = str(uuid.uuid4())
        now = p.runtime.clock.now()
        body = submitted(
            request_id, k, subject.customer_number, method=subject.verified_by, extra=result.extra,
            verified_at=subject.verified_at.astimezone(UTC).isoformat(), received_at=now.astimezone(UTC).isoformat(),
        )  # fmt: skip
        # Whose it is, before the coordinator can announce it (its mail finds the subject here).
        async with p.runtime.pool.acquire() as conn:
            await store.add_request(
                conn, request_id, subject.customer_number, kind=k, language=_lang(request), verified_by=subject.verified_by,
                now=now,
            )  # fmt: skip
        try:
            status, _answer = await p.dsar_api.submit(body)
        except Unavailable:
            async with p.runtime.pool.acquire() as conn:
                await store.forget_request(conn, request_id)
            return render(request, "unavailable.html", status_code=503)
        if status not in (200, 201, 422):  # 422: refused at intake, recorded there: its status page says why
            async with p.runtime.pool.acquire() as conn:
                await store.forget_request(conn, request_id)
            return render(request, "unavailable.html", status_code=503)
        flash(request, gettext(request, N_("Your request has been sent. We will also tell you by e-mail.")))
        return RedirectResponse(f"/requests/{request_id}", status_code=303)

    async def own_view(request: Request, request_id: str, customer_number: str) -> dict[str, Any]:
        p = portal(request)
        async with p.runtime.pool.acquire() as conn:
            mine = await store.own_request(conn, request_id, customer_number)
        if mine is None:
            raise HTTPException(404)
        view = await p.dsar_api.request(request_id)
        if view is None:
            raise HTTPException(404)
        return view

    @app.get("/requests/{request_id}", response_class=HTMLResponse, include_in_schema=False)
    async def status(request: Request, request_id: str, subject: Verified) -> HTMLResponse:
        try:
            view = await own_view(request, request_id, subject.customer_number)
        except Unavailable:
            return render(request, "unavailable.html", status_code=503)
        participants = [t for t in view.get("participants", []) if t.get("current", True)]
        return render(request, "status.html", view=view, participants=participants, labels=labels,
                      package=_package_state(view, portal(request).runtime.clock.now()))  # fmt: skip

    @app.get("/requests/{request_id}/package", response_model=None, include_in_schema=False)
    async def package(request: Request, request_id: str, subject: Verified) -> Response:
        p = portal(request)
        async with p.runtime.pool.acquire() as conn:
            if await store.own_request(conn, request_id, subject.customer_number) is None:
                raise HTTPException(404)
        opened = p.dsar_api.package(request_id)
        try:
            answer = await opened.__aenter__()
        except Unavailable:
            return render(request, "unavailable.html", status_code=503)
        if answer.status_code != 200:
            await opened.__aexit__(None, None, None)
            if answer.status_code == 410:  # expired, or destroyed with its subject's data
                return render(request, "package_gone.html", status_code=410, request_id=request_id)
            if answer.status_code == 404:
                return render(request, "not_found.html", status_code=404)
            return render(request, "unavailable.html", status_code=503)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in answer.aiter_bytes():
                    yield chunk
            finally:
                await opened.__aexit__(None, None, None)

        headers = {k: answer.headers[k] for k in ("content-length", "x-content-sha256") if k in answer.headers}
        headers["content-disposition"] = f'attachment; filename="{request_id}.zip"'
        headers["cache-control"] = "no-store"
        return StreamingResponse(chunks(), media_type="application/zip", headers=headers)

    for router in extra:
        app.include_router(router)
    return app


__all__ = ["create_pages", "current_subject"]
