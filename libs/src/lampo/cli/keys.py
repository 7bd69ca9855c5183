"""``lampo keys rotate``: re-wrap every subject key of a service under the current master key."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from lampo.cli.runner import run

if TYPE_CHECKING:
    from lampo.settings import ServiceSettings

app = typer.Typer(help="Master keys and the subject keys they wrap.", no_args_is_help=True)


async def rotate(settings: ServiceSettings) -> tuple[int, int]:
    """(keys re-wrapped now, keys still under another master key: 0 when done)."""
    import asyncpg

    tls = settings.pg_ssl()
    # where the keys live: their own database (LAMPO_KEYS_DATABASE) or the service's
    url = settings.keys_database_url or settings.database_url
    conn = await asyncpg.connect(url, **({"ssl": tls} if tls else {}))
    try:
        keys = settings.key_ring()
        done = await keys.rotate(conn)
        left: int = await conn.fetchval(
            "SELECT count(*) FROM subject_keys WHERE kek_id IS DISTINCT FROM $1", keys.kek_id
        )
        return done, left
    finally:
        await conn.close()


@app.command("rotate")
def rotate_cmd(
    service: Annotated[str, typer.Argument(help="the service whose database lampo_<service> holds the keys")],
    database: Annotated[str | None, typer.Option(help="the database, when not lampo_<service>")] = None,
) -> None:
    """Re-wrap every subject key under LAMPO_MASTER_KEY (the new one), reading the old ones with
    LAMPO_MASTER_KEYS_OLD (JSON list). Safe to interrupt and repeat; once it reports 0 left, the
    old master keys open nothing: drop them from the configuration and destroy them."""
    from lampo.cli.local import local_keys_database
    from lampo.settings import ServiceSettings

    local = local_keys_database(service)  # where `make up` keeps them, when run on its state
    settings = ServiceSettings(database=database or f"lampo_{service}")
    if local:
        settings = settings.model_copy(update={"keys_database": local})
    done, left = run(rotate(settings))
    typer.echo(f"lampo_{service}: {done} subject keys re-wrapped; {left} left under an old master key")
    if left:
        raise typer.Exit(1)
