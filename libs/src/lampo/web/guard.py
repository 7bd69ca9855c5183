"""The web pages' guard, one ASGI middleware: the signed session cookie, CSRF on every form, the
security headers, and the page language.

- **Session**: ``lampo_session``, a signed (itsdangerous, HMAC-SHA256) and timestamped cookie
  holding a small dict (ids and flags only, never personal data), HttpOnly, SameSite=Lax, Secure
  unless ``LAMPO_WEB_INSECURE_COOKIES=1``, sliding: it lapses after ``idle_s`` without a request.
  A tampered, expired or foreign cookie is an empty session. Reachable as ``request.session``.
- **CSRF**: every unsafe request (POST, PUT, PATCH, DELETE) to a page must carry the session's
  token (the hidden field ``csrf_token`` that ``csrf_field()`` writes, or the header
  ``X-CSRF-Token``), and its ``Origin``, when sent, must be this site; otherwise 403 and nothing
  runs. The JSON APIs (``/v1/``), health and metrics are outside the guard: they take bearer
  credentials, never cookies.
- **Headers**: a strict Content-Security-Policy (no inline script or style, nothing from another
  origin, no framing), nosniff, same-origin referrers and opener, no caching of pages.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from http.cookies import CookieError, SimpleCookie
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer

from lampo.web.i18n import pick

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SESSION_COOKIE: Final = "lampo_session"
LANG_COOKIE: Final = "lampo_lang"
CSRF_FIELD: Final = "csrf_token"
CSRF_KEY: Final = "_csrf"
OUTSIDE: Final = ("/v1/", "/health", "/metrics")
"""Paths the guard leaves alone: APIs with bearer credentials, probes and scrapes."""
UNSAFE: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_FORM: Final = 1 << 20

CSP: Final = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self'",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
)
HEADERS: Final = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
]


class Session(dict[str, Any]):
    """The session's values; knows whether a request changed them."""

    changed = False

    def __setitem__(self, key: str, value: Any) -> None:
        self.changed = True
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.changed = True
        super().__delitem__(key)

    def pop(self, key: str, *default: Any) -> Any:
        self.changed = self.changed or key in self
        return super().pop(key, *default)

    def clear(self) -> None:
        self.changed = self.changed or bool(self)
        super().clear()

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.changed = True
        super().update(*args, **kwargs)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self.changed = True
        return super().setdefault(key, default)


def csrf_token(session: Session) -> str:
    """The session's CSRF token, made on first use."""
    token = session.get(CSRF_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_KEY] = token
    return token


def _cookies(scope: Scope) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except CookieError:  # a malformed cookie header is no cookie
                return {}
    return {k: m.value for k, m in jar.items()}


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


def _same_origin(scope: Scope, origin: str) -> bool:
    host = _header(scope, b"host")
    parts = urlsplit(origin)
    return bool(host) and parts.scheme in ("http", "https") and parts.netloc == host


class Guard:
    """See the module's docstring. ``refuse(scope, reason)`` renders the 403 page."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        key: bytes,
        refuse: Callable[[Scope, str], Awaitable[tuple[int, list[tuple[bytes, bytes]], bytes]]],
        idle_s: int = 30 * 60,
        secure: bool = True,
    ) -> None:
        self.app = app
        self.serializer = URLSafeTimedSerializer(key, salt="lampo.web.session")
        self.refuse = refuse
        self.idle_s = idle_s
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(OUTSIDE):
            await self.app(scope, receive, send)
            return
        cookies = _cookies(scope)
        session = Session()
        raw = cookies.get(SESSION_COOKIE)
        if raw:
            try:
                loaded = self.serializer.loads(raw, max_age=self.idle_s)
                if isinstance(loaded, dict):
                    dict.update(session, loaded)
            except BadSignature:
                session.changed = True  # drop the bad cookie
        scope["session"] = session
        scope.setdefault("state", {})["lang"] = pick(cookies.get(LANG_COOKIE))

        if scope["method"] in UNSAFE:
            receive, reason = await self._check_csrf(scope, receive, session)
            if reason:
                status, headers, body = await self.refuse(scope, reason)
                await send({"type": "http.response.start", "status": status, "headers": headers + HEADERS})
                await send({"type": "http.response.body", "body": body})
                return

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] not in dict(HEADERS)]
                headers += HEADERS
                cookie = self._cookie(session)
                if cookie:
                    headers.append((b"set-cookie", cookie.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, guarded_send)

    def _cookie(self, session: Session) -> str | None:
        flags = "Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if self.secure else "")
        if session:
            # Sliding: every answer renews the cookie, so it lapses only after idle_s of silence.
            value = self.serializer.dumps(dict(session))
            return f"{SESSION_COOKIE}={value}; Max-Age={self.idle_s}; {flags}"
        if session.changed:
            return f"{SESSION_COOKIE}=; Max-Age=0; {flags}"
        return None

    async def _check_csrf(self, scope: Scope, receive: Receive, session: Session) -> tuple[Receive, str | None]:
        origin = _header(scope, b"origin")
        if origin is not None and not _same_origin(scope, origin):
            return receive, "cross_origin"
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return receive, "disconnected"
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_FORM:
                return receive, "too_large"
        sent = _header(scope, b"x-csrf-token")
        kind = (_header(scope, b"content-type") or "").split(";")[0].strip()
        if sent is None and kind == "application/x-www-form-urlencoded":
            values = parse_qs(body.decode("utf-8", "replace")).get(CSRF_FIELD)
            sent = values[0] if values else None
        expected = session.get(CSRF_KEY)
        if not isinstance(expected, str) or not sent or not hmac.compare_digest(sent, expected):
            return receive, "csrf"
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        return replay, None
