"""``lampo admin ...`` (accounts and the audit chain) and ``lampo audit verify``.

The CLI works on the staff database directly, as the operator of the machine; every change it
makes is audited with interface ``cli`` and the operating-system user as actor, and the chain's
new head is then published (staff.audit-heads.v1). It needs the audit key (LAMPO_AUDIT_KEY, or
LAMPO_MASTER_KEY it is derived from) and the broker (LAMPO_KAFKA_BOOTSTRAP).
"""

from __future__ import annotations

import getpass
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

import typer

from lampo.cli.runner import run
from lampo.staff import approvals_cli

if TYPE_CHECKING:  # imported by the commands that use them (their --help stays fast)
    from lampo.staff.access import Access
    from lampo.staff.domain import ChainReport

T = TypeVar("T")

app = typer.Typer(help="Staff accounts, roles and the audit log (staff service).", no_args_is_help=True)
audit_cli = typer.Typer(help="The staff audit log.", no_args_is_help=True)
app.add_typer(audit_cli, name="audit")
audit_app = typer.Typer(help="The staff audit log (same as `lampo admin audit`).", no_args_is_help=True)


# Decisions on requests waiting for approval go through the staff service with your own account.
app.command("approve")(approvals_cli.approve)
app.command("deny")(approvals_cli.deny)


async def _publish(access: Access) -> int | None:
    from lampo.staff.audit_head import publish_once

    head = await access.audit_head()
    if head is not None:
        await publish_once(access.settings, head)
    return None if head is None else head.seq


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


@asynccontextmanager
async def _access() -> AsyncIterator[Access]:
    from lampo.clock import SystemClock
    from lampo.db import MigrationSource, create_pool, ensure_database, migrate, platform_migrations
    from lampo.staff.access import Access
    from lampo.staff.app import MIGRATIONS, check_configuration
    from lampo.staff.settings import StaffSettings

    settings = StaffSettings()
    roles = check_configuration(settings)
    tls = settings.pg_ssl()
    await ensure_database(settings.database_url, ssl_context=tls)
    pool = await create_pool(settings.database_url, min_size=1, max_size=2, **({"ssl": tls} if tls else {}))
    try:
        await migrate(pool, [platform_migrations(), MigrationSource("staff", MIGRATIONS)])
        yield Access(settings, roles, lambda: pool, SystemClock())
    finally:
        await pool.close()


def _do(action: Callable[[Access], Awaitable[T]], *, publish: bool = False) -> T:
    """Run ``action``; ``publish``: the chain changed, so its new head is published."""

    async def go() -> T:
        async with _access() as access:
            result = await action(access)
            if publish:
                await _publish(access)
            return result

    return run(go())  # a refusal (StaffError): one line from lampo's main (lampo.cli.errors)


def _new_password() -> str:
    """Prompted twice on a terminal; else the password twice on standard input, one a line."""
    import sys

    if sys.stdin.isatty():
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    first, second = sys.stdin.readline().rstrip("\n"), sys.stdin.readline().rstrip("\n")
    if not first:
        raise typer.BadParameter("no password on standard input (give it twice, one a line, or run in a terminal)")
    if first != second:
        raise typer.BadParameter("the two passwords on standard input differ")
    return first


@app.command("create-first-admin")
def create_first_admin(username: str) -> None:
    """Create the first administrator (refused once an administrator exists). Prompts for the password."""
    from lampo.staff.domain import ADMINISTRATOR

    password = _new_password()
    _do(
        lambda a: a.create_user(_actor(), username, password, [ADMINISTRATOR], interface="cli", first_admin=True),
        publish=True,
    )
    typer.echo(f"created administrator {username}")


@app.command("users")
def users() -> None:
    """Every user, their roles and whether they are locked."""
    for user in _do(lambda a: a.users()):
        roles = ",".join(str(r) for r in user["roles"]) or "-"  # type: ignore[attr-defined]
        typer.echo(f"{user['username']}\t{roles}\t{'locked' if user['locked'] else 'active'}")


@app.command("grant")
def grant(username: str, role: str) -> None:
    """Grant a role to a user."""
    roles = _do(lambda a: a.grant(_actor(), username, role, interface="cli"), publish=True)
    typer.echo(f"{username}: {', '.join(roles)}")


@app.command("revoke")
def revoke(username: str, role: str) -> None:
    """Remove a role from a user."""
    roles = _do(lambda a: a.revoke(_actor(), username, role, interface="cli"), publish=True)
    typer.echo(f"{username}: {', '.join(roles) or '-'}")


@app.command("unlock")
def unlock(username: str) -> None:
    """Unlock an account locked after repeated failed logins."""
    _do(lambda a: a.unlock(_actor(), username, interface="cli"), publish=True)
    typer.echo(f"unlocked {username}")


@app.command("commitments")
def commitments() -> None:
    """Who holds a confidentiality commitment (§8), to which text version and since when."""
    for c in _do(lambda a: a.commitments()):
        typer.echo(f"{c['username']}\t{c['text_version']}\t{c['committed_at']}")


async def _verified(access: Access) -> ChainReport:
    from lampo.staff.audit_head import last_head

    return await access.verify_audit(await last_head(access.settings, access.audit_key))


def _verify() -> None:
    from lampo.cli.progress import progress

    with progress("checking the audit chain"):  # reads and recomputes every row
        report = _do(_verified)
    if report.ok:
        against = f", matches the head published at row {report.head_seq}" if report.head_seq else ""
        typer.echo(f"audit chain intact: {report.rows} rows{against}")
        return
    typer.secho(f"audit chain BROKEN at row {report.first_broken}: {report.reason}", fg="red", err=True)
    raise typer.Exit(1)


_VERIFY_HELP = (
    "Recompute the audit log's keyed chain (LAMPO_AUDIT_KEY) and compare it with the last head published "
    "to staff.audit-heads.v1; exit 1 naming the first broken row (an edit, a cut tail, a recomputed chain)."
)
_PUBLISH_HELP = "Publish the audit chain's head now (the service also does every LAMPO_AUDIT_HEAD_INTERVAL_S)."


@audit_cli.command("verify", help=_VERIFY_HELP)
def admin_audit_verify() -> None:
    _verify()


@audit_app.command("verify", help=_VERIFY_HELP)
def audit_verify() -> None:
    _verify()


def _publish_head() -> None:
    seq = _do(_publish)
    typer.echo("audit log empty: nothing to publish" if seq is None else f"published the audit head at row {seq}")


@audit_cli.command("publish-head", help=_PUBLISH_HELP)
def admin_audit_publish_head() -> None:
    _publish_head()


@audit_app.command("publish-head", help=_PUBLISH_HELP)
def audit_publish_head() -> None:
    _publish_head()
