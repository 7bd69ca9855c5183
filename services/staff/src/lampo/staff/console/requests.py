"""The console's data subject requests: the queue by deadline, a request's page (participants,
results, history, trace), the decisions on it, and requests registered from a signed letter or
in person. Every call goes through ``Desk`` (lampo.staff.approvals), as the JSON API's do: the same
checks, the same events, the same audit rows (interface "console").

Who sees what: the pages need ``handle_dsar``; approve and deny need ``approve_erasure`` (their
buttons are shown only to a user who has it, and the POST answers the 403 page to anyone else).
A request that is moving (being resolved, or its participants working) refreshes its progress
section every two seconds through ``/static/console-progress.js`` (no inline script: the CSP
forbids it); without JavaScript the page has a refresh link.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from typing import Annotated, Any, Final
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from lampo.staff.approvals import UNANSWERED
from lampo.staff.console.auth import console, needs, render
from lampo.staff.domain import CUSTOMER_NUMBER, Rights
from lampo.staff.errors import InvalidInput, NoMatch, StaffError
from lampo.web import flash, gettext
from lampo.web.forms import corrections_of
from lampo.web.i18n import HELSINKI, N_

PAGE: Final = 25
POLL_SECONDS: Final = 2
MOVING: Final = ("received", "accepted", "in_progress")
"""States in which a request changes by itself: its page refreshes its progress."""
FINISHED_TASKS: Final = ("done", "failed", "cancelled")

KINDS: Final = {
    "access": N_("Access"),
    "portability": N_("Portability"),
    "erasure": N_("Erasure"),
    "rectification": N_("Rectification"),
    "restriction": N_("Restriction"),
    "objection": N_("Objection"),
}
STATES: Final = {
    "received": N_("Received"),
    "awaiting_approval": N_("Awaiting approval"),
    "accepted": N_("Accepted"),
    "in_progress": N_("In progress"),
    "failed": N_("Failed"),
    "completed": N_("Completed"),
    "completed_with_retention": N_("Completed, some data kept"),
    "rejected": N_("Rejected"),
    "cancelled": N_("Cancelled"),
}
TASK_STATES: Final = {
    "open": N_("working"),
    "held": N_("held"),
    "done": N_("done"),
    "failed": N_("failed"),
    "superseded": N_("superseded"),
    "cancelled": N_("cancelled"),
}
FILTERS: Final = {"unanswered": N_("Unanswered"), "all": N_("All"), **STATES}
METHODS: Final = {"signed_letter": N_("Signed letter"), "in_person": N_("In person, identity document checked")}
SCOPES: Final = {
    "processing": N_("All processing based on legitimate interest"),
    "direct_marketing": N_("Direct marketing"),
    "profiling": N_("Profiling"),
    "automated_decisions": N_("Automated decisions"),
}
CORRECTION_LABELS: Final = {
    "first_names": N_("First names"),
    "last_name": N_("Last name"),
    "street": N_("Street address"),
    "postal_code": N_("Postal code"),
    "city": N_("City"),
    "phone": N_("Phone"),
    "email": N_("E-mail"),
}
TONE: Final = {
    "completed": "ok", "completed_with_retention": "ok", "done": "ok",
    "awaiting_approval": "warn", "received": "warn", "held": "warn",
    "failed": "bad", "rejected": "bad", "cancelled": "bad",
}  # fmt: skip

Handler = Annotated[Rights, Depends(needs("handle_dsar"))]
Approver = Annotated[Rights, Depends(needs("approve_erasure"))]
RequestId = Annotated[str, Path(max_length=128)]

router = APIRouter(include_in_schema=False)


def _labels() -> dict[str, Any]:
    return {"KINDS": KINDS, "STATES": STATES, "TASK_STATES": TASK_STATES, "TONE": TONE}


def _page_of(request_id: str) -> str:
    return f"/console/requests/{quote(request_id, safe='')}"


def _answer(status: int, answer: Any) -> dict[str, Any]:
    """The coordinator's answer as a view, or the error it names (a 4xx passed on)."""
    if status == 404:
        raise NoMatch("request_id: no such request")
    if status >= 400 or not isinstance(answer, dict):
        error = answer.get("error", {}) if isinstance(answer, dict) else {}
        raise _Upstream(status, str(error.get("detail") or error.get("reason") or status))
    return answer


class _Upstream(StaffError):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = "refused"


@router.get("/console/requests")
async def queue(
    request: Request,
    user: Handler,
    status: Annotated[str, Query(max_length=32)] = "unanswered",
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> HTMLResponse:
    if status not in FILTERS:
        raise InvalidInput("status: unknown state")
    states = list(UNANSWERED) if status == "unanswered" else [] if status == "all" else [status]
    code, answer = await console(request).desk.queue(user, states, limit=PAGE, offset=offset)
    page = _answer(code, answer)
    now = console(request).access.clock.now()
    rows = [{**r, "late": _late(r, now)} for r in page["requests"]]

    def link(at: int) -> str:
        return "/console/requests?" + urlencode({"status": status, "offset": at})

    return render(
        request, "console/requests.html", user=user, rows=rows, status=status, filters=FILTERS,
        previous=link(max(0, offset - PAGE)) if offset > 0 else None,
        next=link(page["next_offset"]) if page["next_offset"] is not None else None,
        first=offset + 1, **_labels(),
    )  # fmt: skip


def _late(view: dict[str, Any], now: datetime) -> bool:
    """Overdue: marked so by the coordinator, or past its deadline unanswered (the coordinator's
    check runs now and then)."""
    due = datetime.fromisoformat(str(view["due_at"]).replace("Z", "+00:00"))
    return bool(view["overdue"]) or (view["status"] in UNANSWERED and due < now)


# --- registering a request received by letter or in person -----------------------------------------


def _form_context(**values: Any) -> dict[str, Any]:
    return {
        "KINDS": KINDS, "METHODS": METHODS, "SCOPES": SCOPES, "CORRECTION_LABELS": CORRECTION_LABELS,
        "values": values, "error": None,
    }  # fmt: skip


@router.get("/console/requests/new")
async def new_request(request: Request, user: Handler) -> HTMLResponse:
    today = console(request).access.clock.now().astimezone(HELSINKI).date()
    context = _form_context(received_on=today.isoformat(), verified_by=user.username)
    return render(request, "console/request_new.html", user=user, **context)


@router.post("/console/requests/new")
async def register_request(request: Request, user: Handler) -> Response:
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    try:
        body, verified_by = _submission(values, console(request).access.clock.now())
    except InvalidInput as e:
        context = _form_context(**values)
        context["error"] = e.detail
        return render(request, "console/request_new.html", user=user, status_code=422, **context)
    code, answer = await console(request).desk.submit(
        user, body, note={"method": body["verification"]["method"], "verified_by": verified_by}
    )
    if code >= 400:
        context = _form_context(**values)
        error = answer.get("error", {}) if isinstance(answer, dict) else {}
        context["error"] = str(error.get("detail") or error.get("reason") or code)
        return render(request, "console/request_new.html", user=user, status_code=code, **context)
    flash(request, gettext(request, N_("The request is registered.")))
    return RedirectResponse(_page_of(body["request_id"]), status_code=303)


def _submission(values: dict[str, str], now: datetime) -> tuple[dict[str, Any], str]:
    """The form as the body of ``POST /v1/dsar/requests``, and who verified the requester; a value
    that cannot be right is ``InvalidInput`` naming the field (never echoing it)."""
    kind = values.get("kind", "")
    if kind not in KINDS:
        raise InvalidInput("kind: choose the kind of request")
    customer = values.get("customer_number", "").strip()
    if not CUSTOMER_NUMBER.fullmatch(customer):
        raise InvalidInput("customer_number: 1-128 printable characters")
    method = values.get("method", "")
    if method not in METHODS:
        raise InvalidInput("method: choose how the requester's identity was verified")
    verified_by = values.get("verified_by", "").strip()
    if not 0 < len(verified_by) <= 128:
        raise InvalidInput("verified_by: name who verified the requester (1-128 characters)")
    try:
        received_on = date.fromisoformat(values.get("received_on", ""))
    except ValueError:
        raise InvalidInput("received_on: a date (YYYY-MM-DD)") from None
    today = now.astimezone(HELSINKI).date()
    if received_on > today:
        raise InvalidInput("received_on: not in the future")
    received_at = now if received_on == today else datetime.combine(received_on, time(0), HELSINKI)
    body: dict[str, Any] = {
        "request_id": str(uuid.uuid4()),
        "kind": kind,
        "identifiers": {"customer_number": customer},
        "received_at": received_at.isoformat(),
        # The coordinator records the staff service as the verifier; the person is in the audit log.
        "verification": {"method": method, "verified_by": "staff", "verified_at": now.isoformat()},
    }
    if kind == "rectification":
        corrections = corrections_of(values)
        if not corrections:
            raise InvalidInput("corrections: give at least one corrected value")
        body["corrections"] = corrections
    if kind == "objection":
        scope = values.get("scope", "")
        if scope not in SCOPES:
            raise InvalidInput("scope: choose what the objection is to")
        body["scope"] = scope
    if kind == "restriction" and values.get("lift") == "yes":
        body["lift"] = True
    return body, verified_by


# --- one request ---------------------------------------------------------------------------------


def _progress(view: dict[str, Any]) -> dict[str, Any]:
    current = [p for p in view["participants"] if p["current"]]
    finished = [p for p in current if p["status"] in FINISHED_TASKS]
    return {
        "participants": current,
        "total": len(current),
        "finished": len(finished),
        "moving": view["status"] in MOVING,
        "failed": [p["participant"] for p in current if p["status"] == "failed"],
    }


@router.get("/console/requests/{request_id}")
async def request_page(request: Request, request_id: RequestId, user: Handler) -> HTMLResponse:
    code, answer = await console(request).desk.view(user, request_id)
    view = _answer(code, answer)
    settings = console(request).settings
    trace = f"{settings.tracing_ui.rstrip('/')}/traces/{view['trace_id']}" if view.get("trace_id") else None
    return render(
        request, "console/request.html", user=user, view=view, trace=trace, progress=_progress(view),
        poll=POLL_SECONDS, may_approve="approve_erasure" in user.functions,
        late=_late(view, console(request).access.clock.now()),
        unanswered=view["status"] in UNANSWERED, page=_page_of(request_id), **_labels(),
    )  # fmt: skip


@router.get("/console/requests/{request_id}/progress")
async def progress(request: Request, request_id: RequestId, user: Handler) -> HTMLResponse:
    """The progress section alone, for the page's refresh (the page's own view was audited)."""
    code, answer = await console(request).desk.view(user, request_id, audited=False)
    view = _answer(code, answer)
    response = render(request, "console/progress.html", user=user, view=view, progress=_progress(view), **_labels())
    response.headers["x-request-status"] = view["status"]
    return response


@router.post("/console/requests/{request_id}/approve")
async def approve(request: Request, request_id: RequestId, user: Approver) -> RedirectResponse:
    await console(request).desk.approve(user, request_id)
    flash(request, gettext(request, N_("Approved. The participants start on the request once the coordinator has it.")))
    return RedirectResponse(_page_of(request_id), status_code=303)


@router.post("/console/requests/{request_id}/deny")
async def deny(
    request: Request, request_id: RequestId, user: Approver, reason: Annotated[str, Form(max_length=500)] = ""
) -> RedirectResponse:
    await console(request).desk.deny(user, request_id, reason.strip())
    flash(request, gettext(request, N_("Denied. The requester is told the reason.")))
    return RedirectResponse(_page_of(request_id), status_code=303)


@router.post("/console/requests/{request_id}/extend")
async def extend(
    request: Request, request_id: RequestId, user: Handler, reason: Annotated[str, Form(max_length=500)] = ""
) -> RedirectResponse:
    _answer(*await console(request).desk.extend(user, request_id, reason.strip()))
    flash(request, gettext(request, N_("The deadline is extended by two months.")))
    return RedirectResponse(_page_of(request_id), status_code=303)


@router.post("/console/requests/{request_id}/retry")
async def retry(
    request: Request, request_id: RequestId, user: Handler, participant: Annotated[str, Form(max_length=128)] = ""
) -> RedirectResponse:
    _answer(*await console(request).desk.retry(user, request_id, participant))
    flash(request, gettext(request, N_("The participant's task is sent again.")))
    return RedirectResponse(_page_of(request_id), status_code=303)


@router.post("/console/requests/{request_id}/cancel")
async def cancel(request: Request, request_id: RequestId, user: Handler) -> RedirectResponse:
    _answer(*await console(request).desk.cancel(user, request_id))
    flash(request, gettext(request, N_("The request is cancelled.")))
    return RedirectResponse(_page_of(request_id), status_code=303)
