"""``lampo db provision``: one PostgreSQL role per service, owner of its database alone."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from lampo.cli.runner import run

app = typer.Typer(help="PostgreSQL roles and databases of the services.", no_args_is_help=True)

# Tables of record handed to lampo_audit_owner once the service has migrated: (table, trigger function).
PROTECTED = {"staff": ("audit_log", "audit_log_append_only")}


def _admin_url(given: str | None) -> str:
    """--admin-url, else LAMPO_PG_ADMIN_URL, else the services' server (LAMPO_PG_URL or its default)."""
    from lampo.settings import ServiceSettings

    return given or os.environ.get("LAMPO_PG_ADMIN_URL") or ServiceSettings(master_key=None).pg_url


@app.command("provision")
def provision_cmd(
    services: Annotated[list[str], typer.Argument(help="service names, e.g. registry staff")],
    secret_file: Annotated[
        Path | None,
        typer.Option(help="a local secret (any bytes): each role's password is derived from it (HMAC-SHA256)"),
    ] = None,
    admin_url: str = typer.Option(
        None,
        help="a superuser's URL (default LAMPO_PG_ADMIN_URL, else LAMPO_PG_URL or its default)",
        show_default=False,
    ),
    keys: Annotated[
        bool, typer.Option(help="also the keys database lampo_<service>_keys (LAMPO_KEYS_DATABASE), owned by the role")
    ] = False,
) -> None:
    """Create role lampo_<service> (no superuser) and its database lampo_<service>, owned by it and
    connectable by it alone. Each role's password is derived from --secret-file (the service then
    runs with LAMPO_PG_ROLE=lampo_<service> and LAMPO_PG_ROLE_PASSWORD=`lampo db password <service>
    --secret-file ...`), or, without it, read from LAMPO_PG_PASSWORD_<SERVICE>. Safe to repeat."""
    from lampo.db.roles import derived_password, provision, role_of

    url = _admin_url(admin_url)
    secret = secret_file.read_bytes() if secret_file else None
    for service in services:
        if secret is not None:
            password = derived_password(secret, role_of(service))
        else:
            password = os.environ.get(f"LAMPO_PG_PASSWORD_{service.upper()}", "")
            if not password:
                raise typer.BadParameter(f"give --secret-file or LAMPO_PG_PASSWORD_{service.upper()}")
        for database in [f"lampo_{service}"] + ([f"lampo_{service}_keys"] if keys else []):
            done = run(provision(url, service, password, database=database))
            typer.echo(f"{done.role}: owns {done.database}{' (created)' if done.created else ''}")


@app.command("password")
def password_cmd(service: str, secret_file: Annotated[Path, typer.Option()]) -> None:
    """Print the password of lampo_<service> derived from the secret file."""
    from lampo.db.roles import derived_password, role_of

    typer.echo(derived_password(secret_file.read_bytes(), role_of(service)))


@app.command("protect-audit")
def protect_cmd(
    service: str,
    admin_url: str = typer.Option(
        None, help="a superuser's URL (default LAMPO_PG_ADMIN_URL, else LAMPO_PG_URL or its default)"
    ),
) -> None:
    """After the service migrated: its audit table and trigger function go to lampo_audit_owner,
    the service keeping INSERT and SELECT (it can no longer drop or disable the triggers)."""
    from lampo.db.roles import protect_audit, role_of

    url = _admin_url(admin_url)
    if service not in PROTECTED:
        raise typer.BadParameter(f"one of {', '.join(PROTECTED)}")
    table, function = PROTECTED[service]
    run(protect_audit(url, service, f"lampo_{service}", table=table, function=function))
    typer.echo(f"lampo_{service}.{table}: owned by lampo_audit_owner; {role_of(service)} may INSERT and SELECT")
