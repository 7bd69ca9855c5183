"""``lampo billing``: operator commands of the billing store."""

from __future__ import annotations

import typer

from lampo.cli.runner import run

app = typer.Typer(help="The billing store.", no_args_is_help=True)


@app.command("purge-due")
def purge_due_command() -> None:
    """Delete kept billing items whose statutory period has ended (run daily, e.g. from cron);
    destroys the data key of an erased customer once nothing of theirs is left."""
    import asyncpg

    from lampo.billing.handlers import purge_due
    from lampo.billing.settings import BillingSettings
    from lampo.cli.progress import progress
    from lampo.clock import SystemClock
    from lampo.service import key_ring

    async def purge() -> dict[str, int]:
        settings = BillingSettings()
        conn = await asyncpg.connect(settings.database_url)
        try:
            async with key_ring(settings) as keys:
                return await purge_due(conn, keys, SystemClock())
        finally:
            await conn.close()

    with progress("deleting billing items past their period"):  # one transaction: no partial counts
        counts = run(purge())
    held = f"; {counts['items_held']} due items kept under a legal hold" if counts["items_held"] else ""
    typer.echo(
        f"deleted {counts['items_deleted']} kept items; destroyed {counts['customers_forgotten']} customer keys{held}"
    )


@app.command("rules")
def rules_command() -> None:
    """Print the statutory retention rules in force (validates the rules file)."""
    from lampo.billing.domain import RetentionRules

    for rule in RetentionRules.load().rules.values():
        kept = f"{rule.period_years} y, {rule.trigger}" if rule.retain else "not kept"
        typer.echo(f"{rule.kind:<13} {kept:<28} {rule.legal_basis}")
