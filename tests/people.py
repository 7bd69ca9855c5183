"""The people of the browser tests, as they really come to the suite: staff accounts made by an
operator with the staff CLI's function (in a process with the staff service's configuration) and
logged in through the console's login page; data subjects verified in the privacy centre with
the one-time code mailed to the address the register holds."""

from __future__ import annotations

import asyncio
import re
import sys
import uuid
from typing import Any

from suite import Suite

CREATE_USER = """
import sys
from lampo.staff.cli import _do
username, secret, roles = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
_do(lambda a: a.create_user("cli:browser-test", username, secret, roles, interface="cli"))
"""


async def staff_user(suite: Suite, *roles: str) -> tuple[str, str]:
    """A new staff account holding ``roles``: (user name, password)."""
    username = f"{roles[0].split('_')[0]}.{uuid.uuid4().hex[:8]}"
    secret = f"Synteettinen-{uuid.uuid4().hex[:10]}-Kevät"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CREATE_USER, username, secret, ",".join(roles), env=suite["staff"].env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return username, secret


async def console_log_in(page: Any, suite: Suite, username: str, secret: str) -> None:
    """Through the console's login page, and its confidentiality commitment when asked."""
    await page.goto(f"{suite['staff'].url}/console/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", secret)
    await page.click("form[action='/console/login'] button[type=submit]")
    await page.wait_for_load_state()
    if "/console/confidentiality" in page.url:
        await page.check("input[name=agree]")
        await page.click("form[action='/console/confidentiality'] button[type=submit]")
        await page.wait_for_load_state()


async def verify_by_email_code(page: Any, suite: Suite, mailbox: Any, customer_number: str, address: str) -> None:
    """The privacy centre's e-mail verification, with the code read from the caught mail."""
    portal = suite["portal"].url
    await page.goto(f"{portal}/verify/email")
    await page.fill("#customer_number", customer_number)
    await page.click('main button[type="submit"]')
    await page.wait_for_url(f"{portal}/verify/code")
    mail = await mailbox.wait_for(to=address, subject="vahvistuskoodi", timeout=60)
    code = re.search(r"\b(\d{6})\b", mailbox.text(mail))
    assert code, "no code in the mail"
    await page.fill("#code", code.group(1))
    await page.click('main button[type="submit"]')
    await page.wait_for_load_state()
    assert "/verify" not in page.url, "the code did not verify"
