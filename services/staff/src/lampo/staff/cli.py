"""``lampo admin ...`` (accounts and the audit chain) and ``lampo audit verify``.

The CLI works on the staff database directly, as the operator of the machine; every change it
makes is audited with interface ``cli`` and the operating-system user as actor.
"""

from __future__ import annotations

import getpass
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import typer

from lampo.cli.runner import run
from lampo.clock import SystemClock
from lampo.db import MigrationSource, create_pool, ensure_database, migrate, platform_migrations
from lampo.staff import approvals_cli
from lampo.staff.access import Access
from lampo.staff.app import MIGRATIONS, check_configuration
from lampo.staff.domain import ADMINISTRATOR
from lampo.staff.errors import StaffError
from lampo.staff.settings import StaffSettings

T = TypeVar("T")

app = typer.Typer(help="Staff accounts, roles and the audit log (staff service).", no_args_is_help=True)
audit_cli = typer.Typer(help="The staff audit log.", no_args_is_help=True)
app.add_typer(audit_cli, name="audit")
audit_app = typer.Typer(help="The staff audit log (same as `lampo admin audit`).", no_args_is_help=True)


# Decisions on requests waiting for approval go through the staff service with your own account.
app.command("approve")(approvals_cli.approve)
app.command("deny")(approvals_cli.deny)


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


@asynccontextmanager
async def _access() -> AsyncIterator[Access]:
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


def _do(action: Callable[[Access], Awaitable[T]]) -> T:
    async def go() -> T:
        async with _access() as access:
            return await action(access)

    try:
        return run(go())
    except StaffError as e:
        typer.secho(f"refused ({e.reason}): {e.detail}", fg="red", err=True)
        raise typer.Exit(1) from e


@app.command("create-first-admin")
def create_first_admin(username: str) -> None:
    """Create the first administrator (refused once an administrator exists). Prompts for the password."""
    password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    _do(lambda a: a.create_user(_actor(), username, password, [ADMINISTRATOR], interface="cli", first_admin=True))
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
    roles = _do(lambda a: a.grant(_actor(), username, role, interface="cli"))
    typer.echo(f"{username}: {', '.join(roles)}")


@app.command("revoke")
def revoke(username: str, role: str) -> None:
    """Remove a role from a user."""
    roles = _do(lambda a: a.revoke(_actor(), username, role, interface="cli"))
    typer.echo(f"{username}: {', '.join(roles) or '-'}")


@app.command("unlock")
def unlock(username: str) -> None:
    """Unlock an account locked after repeated failed logins."""
    _do(lambda a: a.unlock(_actor(), username, interface="cli"))
    typer.echo(f"unlocked {username}")


def _verify() -> None:
    report = _do(lambda a: a.verify_audit())
    if report.ok:
        typer.echo(f"audit chain intact: {report.rows} rows")
        return
    typer.secho(f"audit chain BROKEN at row {report.first_broken}: {report.reason}", fg="red", err=True)
    raise typer.Exit(1)


@audit_cli.command("verify")
def admin_audit_verify() -> None:
    """Recompute the audit log's hash chain; exit 1 naming the first broken row."""
    _verify()


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit log's hash chain; exit 1 naming the first broken row."""
    _verify()
