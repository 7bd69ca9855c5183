"""``lampo registry``: operator commands of the customer register."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from lampo.cli.runner import run

if TYPE_CHECKING:  # imported by the commands that use them (their --help stays fast)
    import asyncpg

app = typer.Typer(help="The customer register.", no_args_is_help=True)


@app.command()
def show(customer_number: str) -> None:
    """Which categories are held for a customer, from which source, on which legal basis
    (metadata only: no personal data is printed)."""
    import asyncpg
    from rich.console import Console
    from rich.table import Table

    from lampo.registry.settings import RegistrySettings

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
        typer.secho(f"lampo: no customer {customer_number} in the register", fg="red", err=True)
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

    import asyncpg

    from lampo.cli.progress import progress
    from lampo.registry.accuracy import AccuracyReport, accuracy_report
    from lampo.registry.settings import RegistrySettings
    from lampo.service import key_ring

    settings = RegistrySettings()

    async def fetch() -> AccuracyReport:
        conn = await asyncpg.connect(settings.database_url)
        try:
            async with key_ring(settings) as keys:
                return await accuracy_report(conn, keys, datetime.now(UTC), unconfirmed_years)
        finally:
            await conn.close()

    with progress("checking the register"):  # one pass over every customer's current data
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


audience_app = typer.Typer(help="Marketing audiences exported from the register.", no_args_is_help=True)
app.add_typer(audience_app, name="audience")


@audience_app.command("direct-marketing")
def direct_marketing(
    page: int = typer.Option(1000, "--page", min=1, max=5000, help="customer numbers read per query"),
) -> None:
    """Customer numbers direct marketing may reach, one a line: consent granted, relationship not
    ended, not restricted, no objection to direct marketing or processing (customer numbers only)."""
    from datetime import UTC, datetime

    import asyncpg

    from lampo.registry.settings import RegistrySettings
    from lampo.registry.store import RegistryStore

    settings = RegistrySettings()

    async def export() -> None:
        conn = await asyncpg.connect(settings.database_url)
        try:
            store = RegistryStore(conn, settings.key_ring())  # the audience reads no key
            after, now = "", datetime.now(UTC)
            while numbers := await store.direct_marketing_audience(after, page, now):
                for number in numbers:
                    typer.echo(number)
                after = numbers[-1]
        finally:
            await conn.close()

    run(export())


@app.command("objection-decide")
def objection_decide(
    customer_number: str,
    upheld: bool = typer.Option(
        ..., "--upheld/--rejected", help="upheld: processing stops for good; rejected: compelling grounds, it resumes"
    ),
) -> None:
    """Record the decision on a customer's pending objection to processing (GDPR Art. 21(1)):
    the restriction placed while it was pending is lifted (rejected) or kept for good (upheld)."""
    import asyncpg

    from lampo.clock import SystemClock
    from lampo.registry.privacy import decide_objection
    from lampo.registry.settings import RegistrySettings
    from lampo.service import key_ring

    settings = RegistrySettings()

    async def decide() -> str:
        conn = await asyncpg.connect(settings.database_url)
        try:
            async with key_ring(settings) as keys:
                return await decide_objection(conn, keys, SystemClock(), customer_number, upheld=upheld)
        finally:
            await conn.close()

    outcome = run(decide())
    if outcome == "no_customer":
        typer.secho(f"lampo: no customer {customer_number} in the register", fg="red", err=True)
        raise typer.Exit(1)
    if outcome == "not_pending":
        typer.secho(f"lampo: customer {customer_number} has no pending objection to processing", fg="red", err=True)
        raise typer.Exit(1)
    typer.echo(f"objection to processing of customer {customer_number}: {outcome}")
