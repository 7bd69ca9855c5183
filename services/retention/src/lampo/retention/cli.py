"""``lampo retention`` (due, sweep, holds) and ``lampo ropa`` (the record of processing).

The commands work on the retention service's own database; events they cause (purge tasks,
hold states) are written to its outbox and leave through the running service's relay.
"""

from __future__ import annotations

import getpass
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from lampo.cli.runner import run
from lampo.contracts.categories import Category  # an option's type: Typer reads it to build --help

if TYPE_CHECKING:  # imported by the commands that use them (their --help stays fast)
    import asyncpg

    from lampo.datamap import DataMap
    from lampo.retention.settings import RetentionSettings
    from lampo.retention.sweep import SweepResult

app = typer.Typer(help="Retention: what is due, sweeps, legal holds.", no_args_is_help=True)
holds_app = typer.Typer(help="Legal holds placed by authorities' cases.", no_args_is_help=True)
app.add_typer(holds_app, name="holds")
ropa_app = typer.Typer(help="The record of processing (GDPR Art. 30), generated from the data map.")

CLI_INTERFACE = "cli"


def _console() -> Console:
    return Console()


def _datamap(settings: RetentionSettings, path: Path | None = None) -> DataMap:
    from lampo.datamap import load_datamap
    from lampo.retention.errors import DataMapError

    try:
        return load_datamap(path or settings.datamap)
    except DataMapError as e:
        typer.secho(str(e), fg="red", err=True)
        raise typer.Exit(2) from e


@asynccontextmanager
async def _pool(settings: RetentionSettings) -> AsyncIterator[asyncpg.Pool]:
    from lampo.db import MigrationSource, create_pool, ensure_database, migrate, platform_migrations
    from lampo.retention.app import MIGRATIONS

    await ensure_database(settings.database_url)
    pool = await create_pool(settings.database_url, min_size=1, max_size=4)
    try:
        await migrate(pool, [platform_migrations(), MigrationSource(settings.service, MIGRATIONS)])
        yield pool
    finally:
        await pool.close()


def _when(value: str | None) -> datetime:
    from lampo.clock import SystemClock

    if value is None:
        return SystemClock().now()
    try:
        when = datetime.fromisoformat(value)
    except ValueError as e:
        raise typer.BadParameter(f"not an ISO 8601 time: {value}") from e
    if when.tzinfo is None:
        raise typer.BadParameter("give the time with a zone, e.g. 2030-01-01T00:00:00+02:00")
    return when


def _actor(actor: str | None) -> str:
    return actor or getpass.getuser()


AtOption = Annotated[str | None, typer.Option("--at", help="As of this time (ISO 8601 with zone); default now.")]


@app.command()
def due(at: AtOption = None) -> None:
    """What a sweep would purge now: customer numbers per rule, and how many holds keep."""
    from rich.table import Table

    from lampo.clock import SystemClock
    from lampo.retention.settings import RetentionSettings
    from lampo.retention.sweep import Sweeper

    settings = RetentionSettings()
    datamap = _datamap(settings)
    now = _when(at)

    async def count() -> dict[str, tuple[int, int]]:
        async with _pool(settings) as pool:
            return await Sweeper(pool, datamap, SystemClock()).due(now)

    counts = run(count())
    table = Table("category", "rule", "participant", "due", "held", title=f"Due as of {now.isoformat()}")
    for category, rule in datamap.rules():
        n, held = counts[rule.rule]
        table.add_row(category.value, rule.rule, rule.participant, str(n), str(held))
    _console().print(table)
    _console().print(f"total due: {sum(n for n, _ in counts.values())}, held: {sum(h for _, h in counts.values())}")


@app.command()
def sweep(at: AtOption = None) -> None:
    """Run a sweep now: purge tasks for everything due, with progress."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from lampo.clock import SystemClock
    from lampo.retention.errors import RetentionError
    from lampo.retention.settings import RetentionSettings
    from lampo.retention.sweep import Sweeper

    settings = RetentionSettings()
    datamap = _datamap(settings)
    now = _when(at)

    async def go() -> SweepResult:
        async with _pool(settings) as pool:
            sweeper = Sweeper(
                pool,
                datamap,
                SystemClock(),
                batch=settings.sweep_batch,
                pause_s=settings.sweep_pause_s,
                workers=settings.sweep_workers,
            )
            with Progress(
                TextColumn("sweeping"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=_console()
            ) as bar:
                task = bar.add_task("sweep", total=None)
                return await sweeper.sweep(
                    now,
                    interface=CLI_INTERFACE,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )

    try:
        result = run(go())
    except RetentionError as e:
        typer.secho(str(e), fg="red", err=True)
        raise typer.Exit(1) from e
    _console().print(
        f"sweep {result.sweep_id}: {result.customers} customer numbers, {result.tasks} purge tasks, {result.purges} purges"
    )
    for rule, n in sorted(result.per_rule.items()):
        _console().print(f"  {rule}: {n}")


@holds_app.command("list")
def holds_list(
    customer: Annotated[str | None, typer.Option(help="Only this customer number.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include released holds.")] = False,
) -> None:
    """Standing holds (and released ones with --all)."""
    from rich.table import Table

    from lampo.retention import store
    from lampo.retention.settings import RetentionSettings

    settings = RetentionSettings()

    async def fetch() -> list[asyncpg.Record]:
        async with _pool(settings) as pool, pool.acquire() as conn:
            return await store.list_holds(conn, customer, include_released=all_)

    rows = run(fetch())
    table = Table("hold", "customer", "categories", "case", "authority", "placed", "released")
    for r in rows:
        table.add_row(
            r["hold_id"],
            r["customer_number"],
            ", ".join(r["categories"]) or "all",
            r["case_reference"],
            r["authority"],
            r["placed_at"].isoformat(),
            r["released_at"].isoformat() if r["released_at"] else "",
        )
    _console().print(table)


@holds_app.command("place")
def holds_place(
    customer: Annotated[str, typer.Argument(help="Customer number.")],
    *,
    case: Annotated[str, typer.Option(help="The authority's case reference (the legal basis).")],
    authority: Annotated[str, typer.Option(help="The authority that needs the data.")],
    category: Annotated[list[Category] | None, typer.Option(help="Held category (repeat); none: all.")] = None,
    hold_id: Annotated[str | None, typer.Option(help="Hold id; default a new one.")] = None,
    actor: Annotated[str | None, typer.Option(help="Who places it; default the OS user.")] = None,
) -> None:
    """Place a legal hold: neither sweeps nor erasures delete the held data until it is released."""
    from lampo.contracts.retention import LegalHoldPlaced
    from lampo.messaging.consumer import Rejected
    from lampo.retention.handlers import place_hold
    from lampo.retention.settings import RetentionSettings

    settings = RetentionSettings()
    try:
        placed = LegalHoldPlaced(
            hold_id=hold_id or f"hold-{uuid.uuid4()}",
            customer_number=customer,
            categories=category or [],
            case_reference=case,
            authority=authority,
            placed_at=datetime.now(UTC),
        )
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e

    async def go() -> bool:
        async with _pool(settings) as pool, pool.acquire() as conn, conn.transaction():
            return await place_hold(conn, placed, actor=_actor(actor), interface=CLI_INTERFACE)

    try:
        new = run(go())
    except Rejected as e:
        typer.secho(f"{e.reason}: {e.detail}", fg="red", err=True)
        raise typer.Exit(1) from e
    _console().print(f"hold {placed.hold_id} {'placed' if new else 'already stands'} on {customer}")


@holds_app.command("release")
def holds_release(
    hold_id: Annotated[str, typer.Argument(help="The hold to release.")],
    customer: Annotated[str, typer.Option(help="Customer number the hold is on.")],
    actor: Annotated[str | None, typer.Option(help="Who releases it; default the OS user.")] = None,
) -> None:
    """Release a hold: the next sweep or erasure request may delete the data again."""
    from lampo.contracts.retention import LegalHoldReleased
    from lampo.messaging.consumer import Rejected
    from lampo.retention.handlers import release_hold
    from lampo.retention.settings import RetentionSettings

    settings = RetentionSettings()
    released = LegalHoldReleased(hold_id=hold_id, customer_number=customer, released_at=datetime.now(UTC))

    async def go() -> bool:
        async with _pool(settings) as pool, pool.acquire() as conn, conn.transaction():
            return await release_hold(conn, released, actor=_actor(actor), interface=CLI_INTERFACE)

    try:
        new = run(go())
    except Rejected as e:
        typer.secho(f"{e.reason}: {e.detail}", fg="red", err=True)
        raise typer.Exit(1) from e
    _console().print(f"hold {hold_id} {'released' if new else 'was already released'}")


class Format(StrEnum):
    md = "md"
    json = "json"


@ropa_app.callback(invoke_without_command=True)
def ropa(
    format_: Annotated[Format, typer.Option("--format", help="Markdown or JSON.")] = Format.md,
    datamap: Annotated[Path | None, typer.Option(help="Data map file; default the service's.")] = None,
) -> None:
    """Print the record of processing (GDPR Art. 30) generated from the data map."""
    from lampo.retention.settings import RetentionSettings
    from lampo.ropa import record_of_processing, render_markdown

    loaded = _datamap(RetentionSettings(), datamap)
    if format_ is Format.json:
        typer.echo(json.dumps(record_of_processing(loaded), ensure_ascii=False, indent=2))
    else:
        typer.echo(render_markdown(loaded))
