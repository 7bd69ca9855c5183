"""Small helpers the service CLIs share."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import asyncpg
import typer

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine for a CLI command, turning connection failures into a clear message."""
    try:
        return asyncio.run(coro)
    except (OSError, ConnectionError) as e:
        typer.secho(f"cannot reach a required service: {type(e).__name__}: {e}", fg="red", err=True)
        raise typer.Exit(2) from e
    except asyncpg.InvalidCatalogNameError as e:  # names the database, nothing personal
        typer.secho(f"lampo: {e} (has the service run once? `make up` starts it)", fg="red", err=True)
        raise typer.Exit(2) from e
