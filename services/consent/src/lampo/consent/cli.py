"""``lampo consent``: ask whether a purpose may use a customer now.

``lampo consent check CUSTOMER PURPOSE`` prints ``allowed`` or ``not allowed`` with the reason;
the exit code is 0 when allowed and 1 when not, so scripts can gate on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from lampo.cli.runner import run

if TYPE_CHECKING:  # imported by the commands that use them (their --help stays fast)
    from lampo.consent.domain import Purpose, Verdict

app = typer.Typer(help="The consent ledger.", no_args_is_help=True)


async def verdict(database_url: str, customer_number: str, purpose: str) -> Verdict:
    import asyncpg

    from lampo.consent.domain import may_use
    from lampo.consent.store import purpose_and_state

    conn = await asyncpg.connect(database_url)
    try:
        found, current, restricted = await purpose_and_state(conn, customer_number, purpose)
    finally:
        await conn.close()
    return may_use(found, purpose, current, restricted)


@app.command()
def check(customer_number: str, purpose: str) -> None:
    """May PURPOSE use CUSTOMER_NUMBER now? Exit code 0: allowed; 1: not allowed."""
    from lampo.consent.settings import ConsentSettings

    answer = run(verdict(ConsentSettings().database_url, customer_number, purpose))
    typer.echo(
        f"{'allowed' if answer.allowed else 'not allowed'}: {purpose} for customer {customer_number}: {answer.reason}"
    )
    raise typer.Exit(0 if answer.allowed else 1)


@app.command()
def purposes() -> None:
    """The declared purposes, their legal description and consent-text version."""
    import asyncpg

    from lampo.consent.settings import ConsentSettings
    from lampo.consent.store import ConsentStore

    async def fetch() -> dict[str, Purpose]:
        conn = await asyncpg.connect(ConsentSettings().database_url)
        try:
            return await ConsentStore(conn).purposes()
        finally:
            await conn.close()

    for p in run(fetch()).values():
        typer.echo(
            f"{p.name} (text {p.consent_text_version}; objection scopes {', '.join(sorted(p.objection_scopes))})"
        )
        typer.echo(f"    {p.legal_description}")
