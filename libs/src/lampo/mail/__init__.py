"""Outgoing e-mail to data subjects (one-time codes, a request received, extended, completed).

``Mailer(settings).send(to, subject, text, lang=...)`` hands one plain-text message to the SMTP
server at ``LAMPO_SMTP_HOST``:``LAMPO_SMTP_PORT`` (stdlib ``smtplib`` in a worker thread), From
the controller's privacy address (``lampo.controller``). Locally that server is the catcher
(``python -m lampo.mail.catcher``, ``deploy/local/mail.sh``), which keeps every message as an
``.eml`` file; ``read_mailbox(dir)`` reads them back for tests.

Nothing here logs an address, a subject line or a body: they are personal data.
"""

from __future__ import annotations

import asyncio
import email.policy
import smtplib
import ssl
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formataddr, formatdate, make_msgid
from pathlib import Path
from typing import Protocol

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from lampo.controller import Controller, controller

__all__ = ["MailFailed", "Mailer", "SmtpSettings", "message", "read_mailbox"]


class SmtpSettings(BaseSettings):
    """Where mail goes: ``LAMPO_SMTP_*`` (a service's settings may carry the same fields)."""

    model_config = SettingsConfigDict(env_prefix="LAMPO_", extra="ignore", hide_input_in_errors=True)

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    # STARTTLS before authenticating (a production relay); the local catcher speaks plain SMTP.
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_s: float = 10.0


class _HasSmtp(Protocol):
    @property
    def smtp_host(self) -> str: ...
    @property
    def smtp_port(self) -> int: ...


class MailFailed(RuntimeError):
    """The SMTP server did not take the message (refused, unreachable); the text names the
    exception type only, never the address."""


def message(to: str, subject: str, text: str, *, lang: str, sender: Controller | None = None) -> EmailMessage:
    """The message as sent: plain UTF-8 text, From the controller's privacy address, in ``lang``."""
    who = sender or controller()
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = formataddr((who.name, who.email))
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=who.email.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text, charset="utf-8")
    msg["Content-Language"] = lang  # after set_content, which drops the Content-* headers
    return msg


class Mailer:
    """Sends plain-text mail over SMTP. ``settings``: anything with ``smtp_host`` and ``smtp_port``
    (and optionally the other ``SmtpSettings`` fields), e.g. a service's settings or ``SmtpSettings()``."""

    def __init__(self, settings: _HasSmtp | None = None, *, sender: Controller | None = None) -> None:
        settings = settings if settings is not None else SmtpSettings()
        self.host = settings.smtp_host
        self.port = int(settings.smtp_port)
        self.starttls = bool(getattr(settings, "smtp_starttls", False))
        self.username: str | None = getattr(settings, "smtp_username", None)
        password: SecretStr | None = getattr(settings, "smtp_password", None)
        self._password = password.get_secret_value() if password is not None else None
        self.timeout = float(getattr(settings, "smtp_timeout_s", 10.0))
        self.sender = sender or controller()

    async def send(self, to: str, subject: str, text: str, *, lang: str) -> EmailMessage:
        """Delivers one message to the SMTP server; returns it as sent. Raises ``MailFailed``."""
        msg = message(to, subject, text, lang=lang, sender=self.sender)
        await asyncio.to_thread(self._deliver, msg)
        return msg

    def _deliver(self, msg: EmailMessage) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username and self._password is not None:
                    smtp.login(self.username, self._password)
                smtp.send_message(msg)
        except (smtplib.SMTPException, OSError) as e:
            raise MailFailed(f"SMTP delivery to {self.host}:{self.port} failed ({type(e).__name__})") from None


def read_mailbox(directory: str | Path) -> list[EmailMessage]:
    """Every message the catcher kept in ``directory``, oldest first (missing directory: none)."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    parser = BytesParser(_class=EmailMessage, policy=email.policy.default)
    messages = []
    for path in sorted(folder.glob("*.eml")):
        with path.open("rb") as f:
            parsed = parser.parse(f)
        assert isinstance(parsed, EmailMessage)
        messages.append(parsed)
    return messages
