"""Server-rendered pages for the suite's people: the privacy centre (lampo.portal) and the staff
console (lampo.staff.console). One :class:`Site` per service that serves pages:

    site = Site(package="lampo.portal")
    site.install(app, session_key=settings.web_session_key_bytes())
    ...
    return site.render(request, "status.html", request_id=rid)

Templates come from ``<package>/templates/`` and lampo.web's own (``base.html``: blocks
``title``, ``site_name``, ``nav``, ``content``); static files from lampo.web's ``static/`` and the
package's; catalogues as :mod:`lampo.web.i18n` says. In a template: ``_("Text")``,
``{% trans %}…{% endtrans %}``, ``csrf_field()`` in every ``<form method="post">``,
``format_datetime(x)``, ``format_date(x)``, ``flash_messages()``, ``request``, ``lang``,
``current_path``. The guard (:mod:`lampo.web.guard`) adds the session, CSRF and the headers.
Forms post ``application/x-www-form-urlencoded`` (the CSRF field is read from that; anything else
must send the ``X-CSRF-Token`` header).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib.resources import files
from typing import Any, Final
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.staticfiles import StaticFiles

from lampo.web import i18n
from lampo.web.guard import CSRF_FIELD, LANG_COOKIE, Guard, Scope, Session, csrf_token
from lampo.web.i18n import N_

__all__ = ["Site", "clear_session", "flash", "gettext", "safe_next", "session"]

FLASH_KEY: Final = "_flash"
_REASONS: Final = {
    "csrf": N_("The form had expired or did not come from this site. Please try again."),
    "cross_origin": N_("The form did not come from this site."),
    "too_large": N_("The form was too large."),
    "disconnected": N_("The connection was closed."),
}


def session(request: Request) -> Session:
    """The request's session (see lampo.web.guard): mutable, saved when changed."""
    s: Session = request.scope["session"]
    return s


def clear_session(request: Request) -> None:
    """Ends the session (logout, or a verification that no longer holds)."""
    session(request).clear()


def flash(request: Request, message: str) -> None:
    """A message (already translated) shown once, on the next page rendered."""
    s = session(request)
    s[FLASH_KEY] = [*s.get(FLASH_KEY, []), str(message)]


def lang_of(request: Request) -> str:
    return i18n.pick(getattr(request.state, "lang", None))


def gettext(request: Request, message: str, **values: Any) -> str:
    """``message`` in the request's language (for text made in Python: flashes, mail)."""
    site: Site = request.app.state.lampo_site
    text = site.translations[lang_of(request)].gettext(message)
    return text % values if values else text


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to go back to, never another site (no scheme, no host, no ``//``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


class Site:
    """The pages of one service (see the module's docstring)."""

    def __init__(self, package: str, *, idle_s: int = 30 * 60) -> None:
        self.package = package
        self.idle_s = idle_s
        packages = ["lampo.web", package]
        self.translations = {lang: i18n.load(packages, lang) for lang in i18n.LANGUAGES}
        loader = ChoiceLoader([PackageLoader(package, "templates"), PackageLoader("lampo.web", "templates")])
        # One environment per language: {% trans %} and _() bound once, nothing shared per request.
        self.environments: dict[str, Environment] = {}
        for lang in i18n.LANGUAGES:
            env = Environment(
                loader=loader,
                autoescape=select_autoescape(default=True, default_for_string=True),
                extensions=["jinja2.ext.i18n"],
                trim_blocks=True,
                lstrip_blocks=True,
            )
            env.install_gettext_translations(self.translations[lang], newstyle=True)  # type: ignore[attr-defined]
            env.globals["lang"] = lang
            env.globals["languages"] = i18n.LANGUAGES
            env.globals["format_datetime"] = lambda v, form="medium", _l=lang: i18n.format_datetime(v, _l, form)
            env.globals["format_date"] = lambda v, form="long", _l=lang: i18n.format_date(v, _l, form)
            self.environments[lang] = env

    def install(self, app: FastAPI, *, session_key: bytes, secure: bool | None = None) -> None:
        """Adds the guard, ``/static`` and ``/lang/{code}`` to ``app``. ``secure`` (the cookie's
        Secure flag) defaults to on unless ``LAMPO_WEB_INSECURE_COOKIES=1``."""
        if len(session_key) < 32:
            raise ValueError("the session key must be at least 32 bytes (LAMPO_WEB_SESSION_KEY, hex)")
        if secure is None:
            secure = os.environ.get("LAMPO_WEB_INSECURE_COOKIES", "") != "1"
        app.state.lampo_site = self
        statics: list[str | tuple[str, str]] = [("lampo.web", "static")]
        if files(self.package).joinpath("static").is_dir():
            statics.insert(0, (self.package, "static"))
        app.mount("/static", StaticFiles(packages=statics), name="static")

        @app.get("/lang/{code}", include_in_schema=False)
        async def choose_language(code: str, request: Request, next: str = "/") -> RedirectResponse:
            response = RedirectResponse(safe_next(next), status_code=303)
            flags = {"httponly": True, "samesite": "lax", "secure": bool(secure)}
            response.set_cookie(LANG_COOKIE, i18n.pick(code), max_age=365 * 24 * 3600, **flags)  # type: ignore[arg-type]
            return response

        app.add_middleware(Guard, key=session_key, refuse=self._refused, idle_s=self.idle_s, secure=bool(secure))

    def render(self, request: Request, template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
        """``template`` in the request's language, with the helpers the module lists."""
        lang = lang_of(request)
        html = self._render(lang, request.scope.get("session"), template, request=request, **context)
        return HTMLResponse(html, status_code=status_code, headers={"cache-control": "no-store"})

    def _render(self, lang: str, s: Session | None, template: str, **context: Any) -> str:
        sess = s if s is not None else Session()
        request = context.get("request")
        path = request.url.path if request is not None else "/"
        if request is not None and request.url.query:
            path += "?" + request.url.query
        helpers: dict[str, Callable[..., Any]] = {
            "csrf_field": lambda: Markup(  # noqa: S704 (the token is escaped)
                f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(csrf_token(sess))}">'
            ),
            "flash_messages": lambda: self._flashes(lang, sess),
        }
        env = self.environments[lang]
        return env.get_template(template).render(current_path=path, next_quoted=quote(path), **helpers, **context)

    def _flashes(self, lang: str, s: Session) -> Markup:
        messages = s.pop(FLASH_KEY, [])
        if not messages:
            return Markup("")
        items = "".join(f"<li>{escape(m)}</li>" for m in messages)
        return Markup(f'<div class="flash" role="status"><ul>{items}</ul></div>')  # noqa: S704 (escaped)

    async def _refused(self, scope: Scope, reason: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        lang = i18n.pick(scope.get("state", {}).get("lang"))
        message = self.translations[lang].gettext(_REASONS.get(reason, _REASONS["csrf"]))
        html = self._render(lang, scope.get("session"), "error.html", status=403, message=message)
        headers = [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store")]
        return 403, headers, html.encode()
