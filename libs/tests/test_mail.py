"""Mail from the Mailer arrives through the real local SMTP catcher (aiosmtpd), in-process and as
the process ``deploy/local/mail.sh`` runs."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import pytest

from lampo.controller import controller
from lampo.mail import Mailer, MailFailed, SmtpSettings, read_mailbox
from lampo.mail.catcher import catching


def settings(port: int) -> SmtpSettings:
    return SmtpSettings(smtp_host="127.0.0.1", smtp_port=port)


async def test_a_message_sent_by_the_mailer_arrives_in_the_catchers_mailbox(tmp_path: Path) -> None:
    box = tmp_path / "mail"
    async with catching(box) as port:
        mailer = Mailer(settings(port))
        await mailer.send(
            "asiakas@example.fi", "Vahvistuskoodi", "Koodisi on 123456.\nÄlä kerro sitä kenellekään.", lang="fi"
        )
        await mailer.send("customer@example.com", "Your request was received", "Request received.", lang="en")

    first, second = read_mailbox(box)
    assert first["To"] == "asiakas@example.fi"
    assert first["Subject"] == "Vahvistuskoodi"
    assert controller().email in first["From"]
    assert controller().name in first["From"]
    assert first["Content-Language"] == "fi"
    body = first.get_body(preferencelist=("plain",))
    assert body is not None
    assert body.get_content() == "Koodisi on 123456.\nÄlä kerro sitä kenellekään.\n"
    assert second["To"] == "customer@example.com"
    assert second["Content-Language"] == "en"
    assert [p.suffix for p in box.iterdir()] == [".eml", ".eml"]  # no temporary file left


async def test_the_catcher_process_keeps_mail_as_eml_files(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    box = tmp_path / "mail"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lampo.mail.catcher", "--port", str(port), "--dir", str(box),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 20)
        assert f":{port}" in line.decode()
        await Mailer(settings(port)).send("asiakas@example.fi", "Pyyntösi on vastaanotettu", "Kiitos.", lang="fi")
        [mail] = read_mailbox(box)
        assert mail["Subject"] == "Pyyntösi on vastaanotettu"
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 20) == 0


async def test_an_smtp_server_that_does_not_answer_is_a_mail_failure_naming_no_address(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])  # nothing listens here now
    with pytest.raises(MailFailed) as failure:
        await Mailer(settings(port)).send("asiakas@example.fi", "x", "y", lang="fi")
    assert "asiakas" not in str(failure.value)


def test_an_empty_or_missing_mailbox_reads_as_no_mail(tmp_path: Path) -> None:
    assert read_mailbox(tmp_path / "nowhere") == []
    assert read_mailbox(tmp_path) == []
