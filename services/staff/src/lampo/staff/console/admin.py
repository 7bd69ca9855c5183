"""The staff console's administrative pages, under ``/console/admin/…``: login alerts, locked
accounts and unlock, users and roles (administrator: ``manage_users``); the audit log searched by
customer, user and time, and the chain verified with its progress (auditor: ``read_audit``); the
record of processing (``handle_dsar`` or ``read_audit``); the accuracy report of §12 and its
follow-up (``handle_dsar``).

Every change goes through the same :class:`lampo.staff.access.Access` methods as the JSON API
(``/v1/users…``), so it is checked and audited once; the console's own rows carry interface
``console``. Work that can take more than a second (the chain check, the accuracy report) runs as
a background job (:mod:`lampo.staff.jobs`) whose page refreshes itself (``<meta
http-equiv="refresh">``: no script) until the result is there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from lampo.staff.access import Access
from lampo.staff.audit_head import last_head
from lampo.staff.console.auth import INTERFACE, console, current_user, refuse, render
from lampo.staff.domain import ACCURACY_OUTCOMES, AuditEntry, ChainReport, Rights
from lampo.staff.errors import StaffError, UpstreamUnavailable
from lampo.staff.jobs import Job, Jobs
from lampo.web import flash, gettext
from lampo.web.i18n import HELSINKI, N_

router = APIRouter(prefix="/console/admin", include_in_schema=False)

MACROS = "console/admin_macros.html"  # the pages' shared parts (their strings are in admin.po)
REFRESH_S = 1  # how often a running job's page reloads itself
ACCURACY_TIMEOUT_S = 300.0
SHOWN = 500  # rows of each accuracy section shown on the page (the report says how many in all)

# Which functions open which page (roles.toml): one of them is enough.
PAGES: dict[str, tuple[str, ...]] = {
    "alerts": ("manage_users", "read_audit"),
    "users": ("manage_users",),
    "audit": ("read_audit",),
    "record": ("handle_dsar", "read_audit"),
    "accuracy": ("handle_dsar",),
}

# Why an action was refused, by the reason of the StaffError (the detail may echo input; this never does).
_REFUSED = {
    "weak_password": N_("The password is too weak: at least 12 characters, not containing the username, not a common password."),
    "invalid": N_("Check the form: a value is not valid."),
    "user_exists": N_("That username is taken."),
    "unknown_user": N_("There is no such user."),
    "unknown_role": N_("There is no such role."),
    "grant_not_found": N_("The user does not hold that role."),
    "last_administrator": N_("The last administrator keeps the role: grant it to another user first."),
    "upstream_unavailable": N_("The register did not answer. Try again in a moment."),
}  # fmt: skip

JOBS = Jobs(lambda: datetime.now(HELSINKI))


def _allowed(user: Rights) -> dict[str, bool]:
    return {page: bool(user.functions & set(functions)) for page, functions in PAGES.items()}


async def _user(request: Request, page: str | None = None) -> Rights:
    """The logged-in user, if their roles open ``page`` (any administrative page when None);
    else the console's audited 403 page."""
    user = await current_user(request)
    allowed = _allowed(user)
    if not (allowed[page] if page else any(allowed.values())):
        needed = PAGES[page] if page else tuple(dict.fromkeys(f for fs in PAGES.values() for f in fs))
        await refuse(request, user, " | ".join(needed))
    return user


def _access(request: Request) -> Access:
    return console(request).access


def _render(request: Request, user: Rights, template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    return render(request, template, user=user, status_code=status_code, allowed=_allowed(user), **context)


def _refused(request: Request, e: StaffError) -> str:
    return gettext(request, _REFUSED.get(e.reason, _REFUSED["invalid"]))


def _see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


# --- the index -------------------------------------------------------------------------------------


@router.get("")
async def index(request: Request) -> Response:
    user = await _user(request)
    return _render(request, user, "console/admin_index.html")


# --- login alerts ------------------------------------------------------------------------------------


@router.get("/alerts")
async def alerts(request: Request) -> Response:
    user = await _user(request, "alerts")
    return _render(request, user, "console/admin_alerts.html", alerts=await _access(request).recent_alerts())


# --- users, roles and locked accounts ------------------------------------------------------------------


async def _users_page(request: Request, user: Rights, *, error: str | None = None, status_code: int = 200) -> Response:
    access = _access(request)
    return _render(
        request, user, "console/admin_users.html", status_code=status_code, error=error,
        users=await access.users(), roles=sorted(access.roles),
    )  # fmt: skip


@router.get("/users")
async def users(request: Request) -> Response:
    return await _users_page(request, await _user(request, "users"))


@router.post("/users")
async def create_user(request: Request) -> Response:
    user = await _user(request, "users")
    form = await request.form()
    username = str(form.get("username", "")).strip()
    roles = [str(r) for r in form.getlist("roles")]
    try:
        await _access(request).create_user(
            user.username, username, str(form.get("password", "")), roles, interface=INTERFACE
        )
    except StaffError as e:
        return await _users_page(request, user, error=_refused(request, e), status_code=e.status)
    flash(request, gettext(request, N_("User %(username)s created."), username=username))
    return _see_other("/console/admin/users")


@router.post("/users/{username}/unlock")
async def unlock(request: Request, username: str) -> Response:
    user = await _user(request, "users")
    try:
        await _access(request).unlock(user.username, username, interface=INTERFACE)
    except StaffError as e:
        return await _users_page(request, user, error=_refused(request, e), status_code=e.status)
    flash(request, gettext(request, N_("%(username)s unlocked: they can sign in again."), username=username))
    return _see_other("/console/admin/users")


@router.post("/users/{username}/grant")
async def grant(request: Request, username: str) -> Response:
    user = await _user(request, "users")
    role = (await _form(request)).get("role", "")
    try:
        await _access(request).grant(user.username, username, role, interface=INTERFACE)
    except StaffError as e:
        return await _users_page(request, user, error=_refused(request, e), status_code=e.status)
    flash(request, gettext(request, N_("Role %(role)s granted to %(username)s."), role=role, username=username))
    return _see_other("/console/admin/users")


@router.post("/users/{username}/revoke")
async def revoke(request: Request, username: str) -> Response:
    user = await _user(request, "users")
    role = (await _form(request)).get("role", "")
    try:
        await _access(request).revoke(user.username, username, role, interface=INTERFACE)
    except StaffError as e:
        return await _users_page(request, user, error=_refused(request, e), status_code=e.status)
    flash(request, gettext(request, N_("Role %(role)s revoked from %(username)s."), role=role, username=username))
    return _see_other("/console/admin/users")


# --- the audit log -----------------------------------------------------------------------------------------


def _moment(value: str | None) -> datetime | None:
    """A ``datetime-local`` value, in Finnish time; ValueError when it is not one."""
    if not value:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=HELSINKI)


@router.get("/audit")
async def audit(request: Request) -> Response:
    user = await _user(request, "audit")
    q = request.query_params
    query = {k: q.get(k, "").strip() for k in ("customer", "actor", "since", "until")}
    if not any(query.values()):
        return _render(request, user, "console/admin_audit.html", query=query, rows=None, next_page=None)
    try:
        before = int(q["before"]) if q.get("before") else None
        since, until = _moment(query["since"]), _moment(query["until"])
    except ValueError:
        message = gettext(request, N_("Check the search: a time or page is not valid."))
        return _render(request, user, "console/admin_audit.html", status_code=422, query=query, rows=None,
                       next_page=None, error=message)  # fmt: skip
    try:
        rows, older = await _access(request).search_audit(
            user.username, customer_number=query["customer"] or None, actor=query["actor"] or None,
            since=since, until=until, before_seq=before, interface=INTERFACE,
        )  # fmt: skip
    except StaffError as e:
        return _render(request, user, "console/admin_audit.html", status_code=e.status, query=query, rows=None,
                       next_page=None, error=_refused(request, e))  # fmt: skip
    next_page = None
    if older is not None:
        next_page = "/console/admin/audit?" + urlencode({**{k: v for k, v in query.items() if v}, "before": older})
    return _render(request, user, "console/admin_audit.html", query=query, rows=rows, next_page=next_page)


# --- the audit chain, verified in the background --------------------------------------------------------------


def _job_page(request: Request, user: Rights, template: str, job: Job | None, **context: Any) -> HTMLResponse:
    # A running job's page reloads itself (<meta http-equiv="refresh">, no script) until the result is there.
    return _render(request, user, template, job=job, refresh_s=REFRESH_S, **context)


@router.get("/audit/verify")
async def verify_form(request: Request) -> Response:
    user = await _user(request, "audit")
    return _job_page(request, user, "console/admin_verify.html", None)


@router.post("/audit/verify")
async def verify_start(request: Request) -> Response:
    user = await _user(request, "audit")
    access = _access(request)

    async def check(job: Job) -> ChainReport:
        job.progress("head", 0, 0)
        head = await last_head(access.settings, access.audit_key)
        return await access.verify_audit(head, progress=job.progress)

    job = JOBS.start("audit_verify", user.username, check)
    return _see_other(f"/console/admin/audit/verify/{job.id}")


@router.get("/audit/verify/{job_id}")
async def verify_job(request: Request, job_id: str) -> Response:
    user = await _user(request, "audit")
    job = JOBS.get(job_id, user.username)
    if job is None or job.kind != "audit_verify":
        return _job_page(request, user, "console/admin_verify.html", None)
    return _job_page(request, user, "console/admin_verify.html", job)


# --- the record of processing (GDPR Art. 30) --------------------------------------------------------------------


@router.get("/record")
async def record(request: Request) -> Response:
    user = await _user(request, "record")
    from lampo.datamap import load_datamap
    from lampo.ropa import record_of_processing
    from lampo.staff.settings import DATAMAP_FILE

    access = _access(request)
    # The data map the retention service applies (the staff service checks its recipients at start too).
    datamap = load_datamap(access.settings.datamap_file or DATAMAP_FILE)
    return _render(request, user, "console/admin_record.html", record=record_of_processing(datamap),
                   commitments=await access.commitments())  # fmt: skip


# --- the accuracy report of §12 and its follow-up ----------------------------------------------------------------


async def _accuracy_page(
    request: Request, user: Rights, job: Job | None, *, years: int = 3, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    followups = await _access(request).followups()
    done = {(f["customer_number"], f["finding"]): f for f in reversed(followups)}  # the latest of each
    return _render(
        request, user, "console/admin_accuracy.html", status_code=status_code, job=job, years=years, error=error,
        followups=followups, done=done, outcomes=ACCURACY_OUTCOMES, shown=SHOWN, refresh_s=REFRESH_S,
    )  # fmt: skip


@router.get("/accuracy")
async def accuracy(request: Request) -> Response:
    return await _accuracy_page(request, await _user(request, "accuracy"), None)


@router.post("/accuracy")
async def accuracy_start(request: Request) -> Response:
    user = await _user(request, "accuracy")
    raw = (await _form(request)).get("years", "")
    if not raw.isdigit() or not 1 <= int(raw) <= 50:
        message = gettext(request, N_("Give the number of years as a whole number from 1 to 50."))
        return await _accuracy_page(request, user, None, error=message, status_code=422)
    years = int(raw)
    registry = console(request).registry

    async def report(job: Job) -> dict[str, Any]:
        job.progress("registry", 0, 0)
        try:
            # One pass over every customer's current data: longer than an ordinary read may take.
            answer = await registry.get("/v1/accuracy", params={"unconfirmed_years": years}, timeout=ACCURACY_TIMEOUT_S)
        except Exception as e:
            raise UpstreamUnavailable("registry unreachable") from e
        if answer.status_code != 200:
            raise UpstreamUnavailable(f"registry answered {answer.status_code}")
        result: dict[str, Any] = answer.json()
        return result

    await _access(request).audit(
        AuditEntry(user.username, "accuracy_report_run", INTERFACE, detail={"unconfirmed_years": years})
    )
    job = JOBS.start("accuracy", user.username, report)
    return _see_other(f"/console/admin/accuracy/{job.id}")


@router.get("/accuracy/{job_id}")
async def accuracy_job(request: Request, job_id: str) -> Response:
    user = await _user(request, "accuracy")
    job = JOBS.get(job_id, user.username)
    if job is None or job.kind != "accuracy":
        return _see_other("/console/admin/accuracy")
    return await _accuracy_page(request, user, job)


@router.post("/accuracy/followups")
async def followup(request: Request) -> Response:
    user = await _user(request, "accuracy")
    form = await _form(request)
    job_id = form.get("job", "")
    back = f"/console/admin/accuracy/{job_id}" if JOBS.get(job_id, user.username) else "/console/admin/accuracy"
    try:
        await _access(request).record_followup(
            user.username, form.get("customer_number", ""), form.get("finding", ""), form.get("outcome", ""),
            interface=INTERFACE,
        )  # fmt: skip
    except StaffError as e:
        return await _accuracy_page(request, user, None, error=_refused(request, e), status_code=e.status)
    flash(
        request, gettext(request, N_("Follow-up recorded for %(customer)s."), customer=form.get("customer_number", ""))
    )
    return _see_other(back + "#followups")
