"""``lampo registry``: operator commands of the customer register."""

from __future__ import annotations

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from lampo.cli.runner import run
from lampo.registry.settings import RegistrySettings

app = typer.Typer(help="The customer register.", no_args_is_help=True)


@app.command()
def show(customer_number: str) -> None:
    """Which categories are held for a customer, from which source, on which legal basis
    (metadata only: no personal data is printed)."""

    async def fetch() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(RegistrySettings().database_url)
        try:
            rows: list[asyncpg.Record] = await conn.fetch(
                "SELECT s.section, s.category, s.source_system, s.origin, s.legal_basis, s.event_time"
                " FROM sections s WHERE s.customer_number = $1 ORDER BY s.category, s.section",
                customer_number,
            )
            return rows
        finally:
            await conn.close()

    rows = run(fetch())
    if not rows:
        typer.echo(f"no customer {customer_number} in the register")
        raise typer.Exit(1)
    table = Table("section", "category", "source", "origin", "legal basis", "as of")
    for r in rows:
        table.add_row(
            r["section"], r["category"], r["source_system"], r["origin"], r["legal_basis"], r["event_time"].isoformat()
        )
    Console().print(table)


@app.command()
def accuracy(
    unconfirmed_years: int = typer.Option(
        3, "--unconfirmed-years", min=1, help="contact data older than this is reported"
    ),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Proactive accuracy checks (§12): invalid or missing required data, identity codes on several
    customer numbers, contact data not confirmed for N years. Counts and customer numbers only."""
    import json
    from datetime import UTC, datetime

    from lampo.crypto import KeyRing
    from lampo.registry.accuracy import AccuracyReport, accuracy_report

    settings = RegistrySettings()

    async def fetch() -> AccuracyReport:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return await accuracy_report(
                conn, KeyRing(settings.master_key_bytes()), datetime.now(UTC), unconfirmed_years
            )
        finally:
            await conn.close()

    report = run(fetch())
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
        return
    typer.echo(f"invalid or missing required data: {len(report.problems)}")
    for customer, problems in report.problems.items():
        typer.echo(f"  {customer}: {', '.join(problems)}")
    typer.echo(f"identity codes on several customer numbers: {len(report.duplicate_identity_codes)}")
    for group in report.duplicate_identity_codes:
        typer.echo(f"  {', '.join(group)}")
    typer.echo(f"contact data not confirmed for {unconfirmed_years} years: {len(report.unconfirmed_contacts)}")
    for customer in report.unconfirmed_contacts:
        typer.echo(f"  {customer}")
