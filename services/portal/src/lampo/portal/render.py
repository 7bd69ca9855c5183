"""Rendering a portal page: ``render(request, "x.html", **context)``.

Every page of the privacy centre (this package's and the ones other modules add, such as
``consent_pages`` and ``statement_pages``) extends ``portal.html`` (the site name, the nav, the
logout form) and renders through here, which adds ``subject`` (the verified subject or None).
The running service is ``portal(request)`` (``lampo.portal.app.Portal``: settings, clients, pool).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from lampo.portal.session import current_subject
from lampo.web import Site

if TYPE_CHECKING:
    from lampo.portal.app import Portal


def render(request: Request, template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    site: Site = request.app.state.lampo_site
    context.setdefault("subject", current_subject(request))
    return site.render(request, template, status_code=status_code, **context)


def portal(request: Request) -> Portal:
    running: Portal = request.app.state.portal
    return running
