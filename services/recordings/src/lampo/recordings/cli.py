"""``lampo recordings``: operator commands of the recordings store."""

from __future__ import annotations

from typing import Any

import typer

from lampo.cli.runner import run

app = typer.Typer(help="Call recordings and archived e-mails.", no_args_is_help=True)


@app.command()
def incomplete() -> None:
    """Recordings still waiting for chunks, oldest first: id, customer number, chunks held,
    age of the first chunk (metadata only; the held audio stays encrypted and is never dropped)."""
    import asyncpg
    from rich.console import Console
    from rich.table import Table

    from lampo.clock import SystemClock
    from lampo.recordings.settings import RecordingsSettings
    from lampo.recordings.store import incomplete_recordings

    async def fetch() -> list[dict[str, Any]]:
        settings = RecordingsSettings()
        conn = await asyncpg.connect(settings.database_url)
        try:
            return await incomplete_recordings(conn)
        finally:
            await conn.close()

    rows = run(fetch())
    if not rows:
        typer.echo("no incomplete recordings")
        return
    now = SystemClock().now()
    table = Table("recording", "customer", "chunks", "age", "last chunk")
    for r in rows:
        age = now - r["first_received_at"]
        table.add_row(
            r["recording_id"],
            r["customer_number"],
            f"{r['received']}/{r['chunk_count']}",
            f"{age.days}d {age.seconds // 3600}h {age.seconds % 3600 // 60}m",
            r["last_received_at"].isoformat(timespec="seconds"),
        )
    Console(width=200).print(table)
