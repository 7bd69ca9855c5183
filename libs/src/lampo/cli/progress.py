"""A progress bar for every command that can take more than a second.

    with progress("checking the register") as step:
        ...
        step(done, total)          # a known amount: the bar fills (total None: it pulses)
        step.describe("decrypting")  # a new phase of the work

Drawn on stderr and only on a terminal (rich draws nothing when stderr is a pipe or a file, so
scripts and the tests read clean output), and erased when done: the command's own output stays.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


class Step:
    """Moves one bar: ``step(done, total)``; ``step.describe(text)``."""

    def __init__(self, bar: Progress, task: TaskID) -> None:
        self._bar, self._task = bar, task

    def __call__(self, done: float, total: float | None = None) -> None:
        self._bar.update(self._task, completed=done, total=total)

    def describe(self, text: str) -> None:
        self._bar.update(self._task, description=text)


@contextmanager
def progress(description: str, total: float | None = None, *, transfer: bool = False) -> Iterator[Step]:
    """A bar for the work inside the block; ``transfer``: the amounts are bytes."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    amount = DownloadColumn() if transfer else MofNCompleteColumn()
    console = Console(stderr=True)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        amount,
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # a pipe or a file gets the command's output only
    ) as bar:
        yield Step(bar, bar.add_task(description, total=total))
