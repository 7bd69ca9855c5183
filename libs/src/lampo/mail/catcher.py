"""The local mail catcher: a real SMTP server (aiosmtpd) that keeps every message it receives as
an ``.eml`` file in a directory, for development and tests (production mail goes to a relay).

    python -m lampo.mail.catcher --port 2525 --dir .run/mail

Files are named ``<received, UTC, microseconds>-<counter>.eml`` so their sorted order is the order
of arrival; each is written to a temporary name first and renamed, so a reader never sees half a
message. Started by ``deploy/local/mail.sh`` and by tests/suite.py.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["MailboxHandler", "catching", "main", "serve"]


class MailboxHandler:
    """aiosmtpd handler: every accepted DATA is written to ``directory`` as one ``.eml`` file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._counter = itertools.count()

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:  # aiosmtpd calls it by this name
        content = envelope.original_content or b""
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{os.getpid()}-{next(self._counter):06d}.eml"
        tmp = self.directory / f".{name}.tmp"
        tmp.write_bytes(content if content.endswith(b"\n") else content + b"\r\n")
        tmp.replace(self.directory / name)
        return "250 Message accepted for delivery"


@asynccontextmanager
async def catching(directory: str | Path, *, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[int]:
    """Runs the catcher on this event loop while the block runs; yields the port it listens on
    (``port=0``: a free one)."""
    handler = MailboxHandler(Path(directory))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="lampo-mail-catcher"), host, port)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


async def serve(directory: Path, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with catching(directory, host=host, port=port) as bound:
        print(f"lampo mail catcher: SMTP on {host}:{bound}, keeping messages in {directory}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lampo.mail.catcher", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--dir", type=Path, default=Path(".run/mail"))
    args: Any = parser.parse_args(argv)
    asyncio.run(serve(args.dir, args.host, args.port))


if __name__ == "__main__":
    main()
