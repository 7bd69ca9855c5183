"""Small helpers the service CLIs share."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine. What it raises is worded by ``lampo``'s main in one line
    (lampo.cli.errors): an unreachable server, a missing database, a refusal."""
    return asyncio.run(coro)
