"""The privacy centre's pages (lampo.web): home, verification, requests, status, logout."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from lampo.portal.session import current_subject, forget_subject
from lampo.portal.settings import PortalSettings
from lampo.web import Site

if TYPE_CHECKING:
    from lampo.portal.app import Portal


def create_pages(
    portal: Callable[[], Portal], site: Site, settings: PortalSettings, extra: Sequence[APIRouter] = ()
) -> FastAPI:
    """The pages app; ``portal`` gives the bound service once the runtime exists."""
    app = FastAPI(title="Muuramen Lämpö privacy centre", openapi_url=None, docs_url=None, redoc_url=None)
    site.install(app, session_key=settings.web_session_key_bytes())

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def home(request: Request) -> HTMLResponse:
        return site.render(request, "home.html", subject=current_subject(request))

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> RedirectResponse:
        forget_subject(request)
        return RedirectResponse("/", status_code=303)

    for router in extra:
        app.include_router(router)
    return app
