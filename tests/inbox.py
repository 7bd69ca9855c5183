"""Reading the mail the suite's SMTP catcher kept (lampo.mail.catcher writes one ``.eml`` file per
message, named in the order they came), as a test waits for it: the browser tests' ``mailbox``."""

from __future__ import annotations

import asyncio
import email
import time
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path


class Mailbox:
    """The mail the suite's SMTP catcher kept: one RFC 5322 file (``*.eml``) per message in
    ``directory``. ``wait_for`` hands each message out once, so a test reads a flow's mails in turn."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._taken: set[Path] = set()

    def skip_existing(self) -> None:
        """Hand out only mail that comes from now on (a mail directory kept across runs)."""
        self._taken.update(self.files())

    def files(self) -> list[Path]:
        if not self.directory.exists():
            return []
        return sorted(self.directory.glob("*.eml"))  # the catcher names them in the order they came

    @staticmethod
    def read(path: Path) -> EmailMessage:
        message = email.message_from_bytes(path.read_bytes(), policy=default_policy)
        assert isinstance(message, EmailMessage)
        return message

    def messages(self, *, to: str | None = None) -> list[EmailMessage]:
        found = [self.read(p) for p in self.files()]
        return [m for m in found if to is None or to.lower() in str(m["to"]).lower()]

    @staticmethod
    def text(message: EmailMessage) -> str:
        """The message's plain-text body."""
        body = message.get_body(preferencelist=("plain", "html"))
        assert body is not None, f"message {message['subject']!r} has no text body"
        return str(body.get_content())

    async def wait_for(self, *, to: str, subject: str | None = None, timeout: float = 30) -> EmailMessage:
        """The first message to ``to`` (its subject containing ``subject``, if given) not handed
        out before; fails after ``timeout`` seconds naming what did arrive."""
        deadline = time.monotonic() + timeout
        while True:
            for path in self.files():
                if path in self._taken:
                    continue
                message = self.read(path)
                if to.lower() not in str(message["to"]).lower():
                    continue
                if subject is not None and subject.lower() not in str(message["subject"]).lower():
                    continue
                self._taken.add(path)
                return message
            if time.monotonic() > deadline:
                seen = [f"{m['to']}: {m['subject']}" for m in (self.read(p) for p in self.files())]
                raise AssertionError(f"no mail to {to} (subject {subject!r}) within {timeout}s; the catcher has {seen}")
            await asyncio.sleep(0.2)
