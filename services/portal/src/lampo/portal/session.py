"""Who the visitor is, once verified: the subject in the session (lampo.web's signed cookie).

The session holds, after a verification, ``customer_number``, ``verified_by`` (``email_code`` |
``strong_electronic``) and ``verified_at`` (ISO 8601, UTC), and nothing else about the person.
A route that acts for the subject takes ``Verified`` (``Annotated[Subject, Depends(verified)]``):
a visitor who has not verified, or whose verification is older than ``verified_ttl_s``, is sent
to the verification page (303) and comes back to the page they asked for afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request

from lampo.web import clear_session, session

Method = Literal["email_code", "strong_electronic"]
METHODS: tuple[Method, ...] = ("email_code", "strong_electronic")
KEYS = ("customer_number", "verified_by", "verified_at")
VERIFY_PAGE = "/verify"
DEFAULT_TTL_S = 30 * 60


@dataclass(frozen=True)
class Subject:
    """The verified data subject of this session."""

    customer_number: str
    verified_by: Method
    verified_at: datetime


def subject_of(data: dict[str, Any], now: datetime, ttl_s: int = DEFAULT_TTL_S) -> Subject | None:
    """The verified subject a session's data holds, or None (never verified, or too long ago)."""
    number, method, at = (data.get(k) for k in KEYS)
    if not isinstance(number, str) or method not in METHODS or not isinstance(at, str):
        return None
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        return None
    if when.tzinfo is None or not (now - timedelta(seconds=ttl_s) <= when <= now + timedelta(seconds=60)):
        return None
    return Subject(number, method, when)


def _ttl(request: Request) -> int:
    settings = getattr(request.app.state, "settings", None)
    return int(getattr(settings, "verified_ttl_s", DEFAULT_TTL_S))


def _now(request: Request) -> datetime:
    clock = getattr(request.app.state, "clock", None)
    return clock.now() if clock is not None else datetime.now(UTC)


def current_subject(request: Request) -> Subject | None:
    """The verified subject of this request's session, or None."""
    return subject_of(session(request), _now(request), _ttl(request))


def set_subject(request: Request, customer_number: str, method: Method, at: datetime) -> None:
    """Record a successful verification in the session."""
    session(request).update(
        {"customer_number": customer_number, "verified_by": method, "verified_at": at.astimezone(UTC).isoformat()}
    )


def forget_subject(request: Request) -> None:
    """Log out: the session is emptied."""
    clear_session(request)


def verify_url(next_path: str | None) -> str:
    if not next_path or not next_path.startswith("/") or next_path.startswith("//"):
        return VERIFY_PAGE
    return f"{VERIFY_PAGE}?next={quote(next_path, safe='/')}"


async def verified(request: Request) -> Subject:
    """A FastAPI dependency: the verified subject, or a redirect (303) to the verification page."""
    subject = current_subject(request)
    if subject is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target = verify_url(path if request.method == "GET" else None)
        raise HTTPException(status_code=303, detail="verification needed", headers={"location": target})
    return subject


Verified = Annotated[Subject, Depends(verified)]
