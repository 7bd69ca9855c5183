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
        table.add_row(r["section"], r["category"], r["source_system"], r["origin"], r["legal_basis"], r["event_time"].isoformat())
    Console().print(table)
