"""``lampo dsar``: operator commands of the DSAR coordinator.

One approach throughout: the CLI works on the coordinator's database through the coordinator's
own command functions, in one transaction each; events it causes go through the outbox, which
the running service's relay sends (woken by NOTIFY). So ``submit`` is the same intake as Kafka
and HTTP. Approvals and denials are not taken here: they come only from an authenticated person
with the approving role, through the staff service (``lampo admin approve``). Nothing here prints
personal data: identifiers go in, only ids and facts come out.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from lampo.cli.runner import run

if TYPE_CHECKING:  # imported by the commands that use them (lampo --help and dsar --help stay fast)
    import asyncpg

    from lampo.dsar import packages
    from lampo.dsar.coordinator import Coordinator
    from lampo.dsar.settings import DsarSettings

app = typer.Typer(help="Data subject requests: submit, follow, approve, extend, retry, packages.", no_args_is_help=True)
console = Console()
T = TypeVar("T")

_STATUS_STYLE = {
    "completed": "green",
    "completed_with_retention": "green",
    "failed": "red",
    "rejected": "red",
    "cancelled": "dim",
    "awaiting_approval": "yellow",
}


@asynccontextmanager
async def _coordinator() -> AsyncIterator[tuple[Coordinator, asyncpg.Pool]]:
    from lampo.clock import SystemClock
    from lampo.db import create_pool
    from lampo.dsar.app import make_resolver
    from lampo.dsar.coordinator import Coordinator
    from lampo.dsar.settings import DsarSettings
    from lampo.service import key_ring
    from lampo.tracing import make_tracer_provider

    settings = DsarSettings()
    settings.master_key_bytes()  # configured, before anything is opened
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    provider = make_tracer_provider("lampo-dsar-cli")
    async with key_ring(settings) as keys:  # where the service keeps them (LAMPO_KEYS_DATABASE)
        resolver = make_resolver(settings, keys)
        coordinator = Coordinator(
            settings,
            keys=keys,
            clock=SystemClock(),
            tracer=provider.get_tracer("lampo.dsar.cli"),
            resolver=resolver,
            pool=lambda: pool,
        )
        try:
            yield coordinator, pool
        finally:
            await resolver.close()
            await pool.close()
            provider.force_flush()


def _command(work: Callable[[Coordinator, asyncpg.Connection], Awaitable[T]], *, write: bool = True) -> T:
    async def go() -> T:
        async with _coordinator() as (coordinator, pool), pool.acquire() as conn:
            if not write:
                return await work(coordinator, conn)
            async with conn.transaction():
                return await work(coordinator, conn)

    return run(go())  # a refusal (DsarError): one line from lampo's main (lampo.cli.errors)


def _read(work: Callable[[DsarSettings, asyncpg.Connection], Awaitable[T]]) -> T:
    """A read-only command: the coordinator's database alone, without the coordinator, its key
    ring, broker or tracer (no master key needed; `lampo dsar status` starts fast)."""
    from lampo.db.pool import create_pool
    from lampo.dsar.settings import DsarSettings

    async def go() -> T:
        settings = DsarSettings()
        pool = await create_pool(settings.database_url, min_size=1, max_size=1)
        try:
            async with pool.acquire() as conn:
                return await work(settings, conn)
        finally:
            await pool.close()

    return run(go())


async def _view(settings: DsarSettings, conn: asyncpg.Connection, request_id: str) -> dict[str, Any]:
    """The request as the coordinator shows it (Coordinator.view), read without the coordinator."""
    from lampo.dsar.view import view

    def package_uri(rid: str) -> str:
        from lampo.dsar.packages import package_uri  # only when the request has a package

        return package_uri(settings, rid)

    return await view(conn, request_id, package_uri=package_uri)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else "-"


def _status(status: str) -> str:
    style = _STATUS_STYLE.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def _print_view(view: dict[str, Any]) -> None:
    from rich.table import Table

    console.print(
        f"[bold]{view['request_id']}[/bold]  {view['kind']}  {_status(view['status'])}  (channel {view['channel']})"
    )
    console.print(
        f"received {_when(view['received_at'])}  due {_when(view['due_at'])}"
        + ("  [red]OVERDUE[/red]" if view["overdue"] else "")
    )
    if view["extended"]:
        console.print(f"extended by {view['extended']['by']}: {view['extended']['reason']}")
    if view["approved_by"]:
        console.print(f"approved by {view['approved_by']} at {_when(view['approved_at'])}")
    if view["rejection"]:
        console.print(f"[red]rejected[/red] {view['rejection']['reason']}: {view['rejection']['detail']}")
    if view["waiting_for"]:
        console.print(f"[yellow]waiting[/yellow]: {view['waiting_for']}")
    if view["participants"]:
        table = Table(
            "participant", "status", "attempt", "first sent", "finished", "seconds", "erased", "kept", "error"
        )
        for p in view["participants"]:
            kept = ", ".join(f"{r['category']} ({r['legal_basis']})" for r in p["retained"])
            seconds = f"{p['seconds']:.2f}" if p["seconds"] is not None else "-"
            erased = ", ".join(f"{k} {v}" for k, v in p["erased"].items())
            style = "dim" if not p["current"] else None
            table.add_row(
                p["participant"],
                p["status"],
                str(p["attempt"]),
                _when(p["first_sent_at"]),
                _when(p["finished_at"]),
                seconds,
                erased,
                kept,
                p["error"] or "",
                style=style,
            )
        console.print(table)
    if view["package"]:
        console.print(f"package {view['package']['uri']} sha256 {view['package']['sha256']}")
    history = Table("at", "from", "to", "actor", "detail", title="history")
    for h in view["history"]:
        history.add_row(_when(h["at"]), h["from_status"] or "-", h["to_status"], h["actor"], h["detail"] or "")
    console.print(history)


@app.command()
def submit(  # noqa: PLR0917 - Typer passes options by name
    kind: str = typer.Argument(..., help="access | portability | erasure | rectification | restriction | objection"),
    customer_number: str = typer.Option(None, "--customer-number", help="the requester's customer number"),
    personal_identity_code: str = typer.Option(None, "--personal-identity-code", help="never printed or logged"),
    email: str = typer.Option(None, "--email"),
    verified_by: str = typer.Option(..., "--verified-by", help="who verified the requester (staff name)"),
    method: str = typer.Option("staff", "--method", help="strong_electronic | signed_letter | in_person | staff"),
    category: Annotated[list[str] | None, typer.Option("--category", help="narrow the scope (repeatable)")] = None,
    corrections: str = typer.Option(None, "--corrections", help="rectification: JSON as in customer.upserted"),
    scope: str = typer.Option(
        None, "--scope", help="objection: processing | direct_marketing | profiling | automated_decisions"
    ),
    lift: bool = typer.Option(False, "--lift", help="restriction: lift the subject's standing restriction"),
    request_id: str = typer.Option(None, "--request-id", help="default: a new id"),
) -> None:
    """Take in a request at the service desk (the same intake as Kafka and HTTP)."""
    from lampo.contracts.catalog import DSAR_REQUESTS, parse
    from lampo.contracts.dsar import DsarSubmitted
    from lampo.contracts.envelope import CloudEvent
    from lampo.contracts.errors import ContractViolation
    from lampo.dsar.domain import intake_problem
    from lampo.tracing import FLOW, PRIVACY, current_traceparent

    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "request_id": request_id or f"req-{uuid.uuid4().hex[:16]}",
        "kind": kind,
        "identifiers": {
            k: v
            for k, v in {
                "customer_number": customer_number,
                "personal_identity_code": personal_identity_code,
                "email": email,
            }.items()
            if v
        },
        "verification": {"method": method, "verified_by": verified_by, "verified_at": now.isoformat()},
        "received_at": now.isoformat(),
        "channel": "cli",
    }
    if category:
        body["categories"] = category
    if corrections:
        body["corrections"] = json.loads(corrections)
    if scope:
        body["scope"] = scope
    if lift:
        body["lift"] = True
    problem = intake_problem(body)
    if problem is not None:  # the operator is told at once, naming the section (the contract's reading drops it)
        _fail(f"invalid schema: {problem}")
    try:
        parsed = parse(DSAR_REQUESTS, CloudEvent.new("dsar.submitted", "urn:lampo:dsar:cli", body).to_bytes())
    except ContractViolation as e:
        _fail(f"invalid {e.reason}: {e.detail}")
    submitted = parsed.data
    assert isinstance(submitted, DsarSubmitted)

    async def work(c: Coordinator, conn: asyncpg.Connection) -> tuple[str, bool]:
        with c.tracer.start_as_current_span("dsar submit", attributes={"lampo.channel": "cli", FLOW: PRIVACY}):
            row, created = await c.submit(
                conn, submitted, actor=f"cli:{verified_by}", traceparent=current_traceparent(), raw=body
            )
        return row["request_id"], created

    rid, created = _command(work)
    console.print(f"{'submitted' if created else '[yellow]already known[/yellow]'} [bold]{rid}[/bold]")


@app.command()
def status(request_id: str) -> None:
    """A request's state, its participants with timings, and its history."""
    view = _read(lambda settings, conn: _view(settings, conn, request_id))
    _print_view(view)


@app.command("list")
def list_requests(
    status: Annotated[list[str] | None, typer.Option("--status", help="only these states (repeatable)")] = None,
    limit: int = typer.Option(50, help="most recent first"),
) -> None:
    """Recent requests."""
    from rich.table import Table

    from lampo.dsar.store import DsarStore

    rows = _read(lambda _, conn: DsarStore(conn).list_requests(status, limit))
    table = Table("request", "kind", "status", "channel", "received", "due", "completed")
    for r in rows:
        due = _when(r["due_at"]) + (" [red]overdue[/red]" if r["overdue_at"] else "")
        table.add_row(
            r["request_id"],
            r["kind"],
            _status(r["status"]),
            r["channel"],
            _when(r["received_at"]),
            due,
            _when(r["completed_at"]),
        )
    console.print(table)


@app.command()
def due(days: int = typer.Option(7, help="due within this many days (overdue ones too)")) -> None:
    """Unanswered requests due soon, the most urgent first."""
    from rich.table import Table

    from lampo.dsar.domain import UNANSWERED_STATUSES
    from lampo.dsar.store import DsarStore

    now = datetime.now(UTC)
    rows = _read(lambda _, conn: DsarStore(conn).due_before(now + timedelta(days=days)))
    table = Table("request", "kind", "status", "due", "left", "extended")
    for r in rows:
        left = r["due_at"] - now
        text = (
            f"[red]{-left.days} d overdue[/red]"
            if left.total_seconds() < 0
            else f"{left.days} d {left.seconds // 3600} h"
        )
        table.add_row(
            r["request_id"],
            r["kind"],
            _status(r["status"]),
            _when(r["due_at"]),
            text,
            "yes" if r["extended_at"] else "",
        )
    console.print(table if rows else f"nothing unanswered is due within {days} days ({', '.join(UNANSWERED_STATUSES)})")


@app.command()
def approve(request_id: str) -> None:
    """Moved: approve with your own staff account, `lampo admin approve REQUEST_ID`."""
    typer.secho(
        f"lampo: approvals go through the staff service with your own account: lampo admin approve {request_id}",
        fg="yellow", err=True,
    )  # fmt: skip
    raise typer.Exit(2)


@app.command()
def deny(request_id: str) -> None:
    """Moved: deny with your own staff account, `lampo admin deny REQUEST_ID --reason ...`."""
    typer.secho(
        f"lampo: denials go through the staff service with your own account: lampo admin deny {request_id} --reason ...",
        fg="yellow", err=True,
    )  # fmt: skip
    raise typer.Exit(2)


@app.command()
def extend(
    request_id: str,
    reason: str = typer.Option(..., "--reason", help="why (recorded; tell the requester)"),
    by: str = typer.Option("operator", "--by"),
) -> None:
    """Extend the deadline once by two months (within the first month)."""
    row = _command(lambda c, conn: c.extend(conn, request_id, reason=reason, by=by))
    console.print(f"[bold]{request_id}[/bold] now due {_when(row['due_at'])}")


@app.command()
def retry(
    request_id: str, participant: str = typer.Option(..., "--participant"), by: str = typer.Option("operator", "--by")
) -> None:
    """Send a failed participant's task again (a new attempt); the others are not redone."""
    task_id = _command(lambda c, conn: c.retry(conn, request_id, participant, by=by))
    console.print(f"sent {participant} a new task {task_id} for [bold]{request_id}[/bold]")


@app.command()
def cancel(request_id: str, by: str = typer.Option("operator", "--by")) -> None:
    """Cancel an unanswered request."""
    _command(lambda c, conn: c.cancel(conn, request_id, by=by))
    console.print(f"cancelled [bold]{request_id}[/bold]")


def _fail(message: str) -> NoReturn:
    """One line on stderr, exit 1 (a refusal the command words itself)."""
    typer.secho(f"lampo: {message}", fg="red", err=True)
    raise typer.Exit(1)


class _Exists(Exception):
    """The file to write a package to exists already."""


def _operator(name: str | None) -> str:
    """Who runs a command: ``--as`` or the operator's OS user name (recorded, never the subject)."""
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a container's): the uid, then
        return f"uid:{os.getuid()}"


@app.command()
def package(
    request_id: str,
    out: Annotated[Path, typer.Option("--out", help="where to write the plaintext ZIP (a new file, mode 0600)")],
    as_: Annotated[str | None, typer.Option("--as", help="who writes it (default: your OS user name)")] = None,
) -> None:
    """Write an access / portability package (decrypted) to a new file only you can read; recorded
    in the package's log like a fetch over HTTP. A package that expired or whose subject was
    erased is gone (410)."""
    from lampo.cli.progress import progress
    from lampo.dsar import packages

    who = _operator(as_)
    if out.exists():
        _fail(f"refused: {out} exists: a package is written to a new file only")

    async def go() -> tuple[int, str, str]:
        # O_EXCL: never over an existing file (or a link put there meanwhile); 0600 from the start
        try:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise _Exists() from None
        digest, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as f, progress(f"package of {request_id}", transfer=True) as step:
                async with _coordinator() as (c, pool):
                    opened = await packages.open_package(
                        lambda: pool, c.keys, request_id, caller=who, action="cli_write", now=c.clock.now(),
                        check_channel=False,
                    )  # fmt: skip
                    async for chunk in opened.chunks():
                        f.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                        step(size, opened.size)
        except BaseException:
            out.unlink(missing_ok=True)  # nothing half-written is left behind
            raise
        return size, digest.hexdigest(), opened.sha256

    try:
        size, sha256, expected = run(go())
    except packages.PackageGone as e:
        _fail(f"410 gone: {e.detail}")
    except _Exists:
        _fail(f"refused: {out} exists: a package is written to a new file only")
    if sha256 != expected:
        out.unlink(missing_ok=True)
        _fail(f"failed: the package read does not match its sha256 {expected}; nothing kept")
    console.print(f"wrote {out} ({size} bytes, sha256 {sha256}, mode 0600)")


@app.command("package-log")
def package_log(request_id: str) -> None:
    """Who fetched, wrote out, transferred or destroyed a request's package, and when."""
    from rich.table import Table

    from lampo.dsar import packages

    rows = _read(lambda _, conn: packages.PackageStore(conn).log_of(request_id))
    table = Table("at", "who", "action", "outcome", "detail", title=f"package of {request_id}")
    for r in rows:
        table.add_row(r["at"].isoformat(timespec="seconds"), r["actor"], r["action"], r["outcome"], r["detail"] or "")
    console.print(table if rows else f"nothing recorded for the package of {request_id}")


@app.command()
def transfer(
    request_id: str,
    to: Annotated[str, typer.Option("--to", help="the receiving controller's https:// address")],
    country: Annotated[str, typer.Option("--country", help="its country, ISO 3166-1 alpha-2 (EU/EEA only)")],
    as_: Annotated[str | None, typer.Option("--as", help="who orders it (default: your OS user name)")] = None,
) -> None:
    """Send a portability package to another controller at the subject's request (Art. 20(2)):
    POSTs the ZIP there and records where it went, when and by whom."""
    from lampo.dsar import packages

    who = _operator(as_)

    async def go() -> packages.Transfer:
        async with _coordinator() as (c, pool):
            return await packages.transfer(
                lambda: pool, c.keys, c.settings, request_id, to=to, country=country, by=who, now=c.clock.now
            )

    done = run(go())
    if done.outcome != "delivered":
        _fail(f"not delivered to {done.to}: HTTP {done.http_status or 'no answer'} (recorded)")
    console.print(f"sent the package of [bold]{request_id}[/bold] to {done.to} ({done.country}), recorded")


@app.command()
def report(request_id: str, raw: bool = typer.Option(False, "--raw", help="print the Markdown source")) -> None:
    """The erasure report: what each participant erased, what was kept, under which law, until when."""
    from lampo.dsar.report import erasure_report

    async def work(settings: DsarSettings, conn: asyncpg.Connection) -> str:
        view = await _view(settings, conn, request_id)
        row = await conn.fetchrow("SELECT customer_numbers FROM requests WHERE request_id = $1", request_id)
        view["customer_numbers"] = list(row["customer_numbers"] or []) if row else []
        return erasure_report(view, view["history"])

    text = _read(work)
    if raw:
        typer.echo(text)
    else:
        from rich.markdown import Markdown

        console.print(Markdown(text))
