#!/usr/bin/env python3
"""docs/img/: full-page screenshots of the web pages, in Finnish, taken in headless Chromium
(Debian's `chromium`, driven by Playwright as the browser tests do) from a running suite.

    make up && .venv/bin/python deploy/tools/screenshots.py            # the suite `make up` runs
    .venv/bin/python deploy/tools/screenshots.py --own-suite           # a suite of its own (tests/suite.py)

What it does, through the pages and the public topics only: seeds one synthetic customer
(lampo.synthetic.seed, as the CRM, billing, telephony and the portal would send it), verifies as
that customer in the privacy centre with the one-time code the local mail catcher kept, asks for
access and waits for the answer; then logs in to the staff console as a user with the roles
administrator, data_protection_officer and managing_director, and photographs the queue, that
request, that customer and the administration page.

The staff user: ``--staff-user``/``--staff-password`` (or LAMPO_STAFF_USER, LAMPO_STAFF_PASSWORD);
else the first administrator is created as an operator would (``lampo admin create-first-admin``)
and given the other two roles over the staff API; its password is kept in
.run/screenshots-staff.json (0600) for the next run. A page that does not exist yet (404) or a
step that fails is skipped with a message; the others are still taken.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import ViewportSize, async_playwright

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from inbox import Mailbox  # noqa: E402 - the browser tests' mail reader

from lampo.synthetic import Customer, new_customer, seed  # noqa: E402
from lampo.testing import customer_upserted  # noqa: E402

STATE = Path(os.environ.get("LAMPO_STATE_DIR", REPO / ".run"))
STAFF_FILE = STATE / "screenshots-staff.json"
STAFF_ROLES = ["administrator", "data_protection_officer", "managing_director"]
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}


def say(message: str) -> None:
    print(f"[screenshots] {message}", flush=True)


def local_ports() -> dict[str, int]:
    """Service -> HTTP port, as `make up` runs them (deploy/local/services.txt)."""
    ports = {}
    for line in (REPO / "deploy" / "local" / "services.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and not line.startswith("#"):
            ports[parts[0]] = int(parts[1])
    return ports


def local_staff_env() -> dict[str, str]:
    """The staff CLI's configuration for the suite `make up` runs (deploy/local/services.sh)."""
    env = {**os.environ, "LAMPO_MASTER_KEY": (STATE / "master.key").read_text().strip()}
    key = STATE / "keys" / "staff.key"
    if key.exists():
        env |= {"LAMPO_SIGNING_KEY": key.read_text().strip(), "LAMPO_SIGNER": "staff"}
    env.setdefault("LAMPO_KEYS_DATABASE", "lampo_staff_keys")
    return env


@dataclass
class Target:
    urls: dict[str, str]
    staff_env: dict[str, str]
    mail: Path
    persist_staff: bool
    portal_token: str | None
    taken: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@asynccontextmanager
async def target(own_suite: bool) -> AsyncIterator[Target]:
    if not own_suite:
        urls = {name: f"http://127.0.0.1:{port}" for name, port in local_ports().items()}
        mail = Path(os.environ.get("LAMPO_MAIL_DIR", STATE / "mail"))
        token = STATE / "api" / "portal.token"
        portal_token = token.read_text().strip() if token.exists() else None
        yield Target(urls, local_staff_env(), mail, persist_staff=True, portal_token=portal_token)
        return
    from suite import installed, launch

    work = Path(tempfile.mkdtemp(prefix="lampo-screenshots-"))
    suite = await launch(installed(), work, ready_timeout=240)
    try:
        mail = getattr(getattr(suite, "mail", None), "directory", None) or work / "mail"
        yield Target(
            suite.urls, suite["staff"].env, Path(mail), persist_staff=False, portal_token=suite.tokens["portal"]
        )
    finally:
        await suite.close()
        shutil.rmtree(work, ignore_errors=True)


class Skip(Exception):
    """A page that cannot be photographed (yet): said, and the next one taken."""


class Camera:
    def __init__(self, out: Path, target: Target) -> None:
        self.out = out
        self.target = target

    async def shot(self, page: Any, name: str, what: str) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        self.target.taken.append(str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path))
        say(f"{what}: {path}")

    async def visit(self, page: Any, url: str) -> None:
        answer = await page.goto(url)
        if answer is None or answer.status == 404:
            raise Skip(f"{url} does not exist (404)")
        if answer.status >= 400:
            raise Skip(f"{url} answered {answer.status}")

    async def first_of(self, page: Any, base: str, paths: list[str]) -> None:
        for path in paths:
            answer = await page.goto(base + path)
            if answer is not None and answer.status < 400:
                return
        raise Skip(f"none of {', '.join(paths)} exists at {base}")

    async def step(self, what: str, action: Callable[[], Awaitable[None]]) -> bool:
        try:
            await action()
            return True
        except Skip as reason:
            self.target.skipped.append(f"{what}: {reason}")
            say(f"skipped {what}: {reason}")
        except (PlaywrightError, AssertionError, httpx.HTTPError) as error:  # not built as expected (yet)
            self.target.skipped.append(f"{what}: {type(error).__name__}: {error}")
            say(f"skipped {what}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
        return False


async def submit(page: Any) -> None:
    """Submits the page's main form (its first submit button) and waits for the next page."""
    async with page.expect_navigation():
        await page.locator("main form button[type=submit], main form input[type=submit]").first.click()


async def fill_first(page: Any, value: str) -> None:
    await page.locator("main form input:not([type=hidden]):not([type=checkbox]):not([type=radio])").first.fill(value)


async def known_to_registry(target: Target, customer: Customer) -> None:
    """Waits until the registry has the customer's e-mail address (the portal sends the code
    there), asking as the portal does."""
    if target.portal_token is None or "registry" not in target.urls:
        return
    headers = {"authorization": f"Bearer {target.portal_token}"}
    async with httpx.AsyncClient(base_url=target.urls["registry"], headers=headers, timeout=10) as http:
        for _ in range(90):
            try:
                if (await http.get(f"/v1/subjects/{customer.number}/email")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(1)
    say("the registry does not know the customer yet: the privacy centre may send no code")


def email_of(customer: Customer) -> str:
    upserted = json.loads(customer_upserted(customer.number, customer.n).to_bytes())["data"]
    return str(upserted["contact"]["email"])


async def privacy_centre(camera: Camera, context: Any, customer: Customer, mailbox: Mailbox) -> str | None:
    """The privacy centre's pages; returns the access request's id when one was made."""
    base = camera.target.urls.get("portal")
    if base is None:
        camera.target.skipped.append("privacy centre: the suite has no portal service")
        say("skipped the privacy centre: the suite has no portal service")
        return None
    page = await context.new_page()
    request_id: list[str] = []

    async def home() -> None:
        await camera.visit(page, f"{base}/")
        await camera.shot(page, "portal-home", "privacy centre, front page")

    async def statement() -> None:
        await camera.first_of(page, base, ["/privacy", "/statement", "/privacy-statement", "/tietosuojaseloste"])
        await camera.shot(page, "portal-statement", "privacy statement")

    async def verify() -> None:
        await camera.visit(page, f"{base}/verify")
        await camera.shot(page, "portal-verify", "verification: the ways to verify")
        await camera.visit(page, f"{base}/verify/email")
        await fill_first(page, customer.number)
        await submit(page)
        mail = await mailbox.wait_for(to=email_of(customer), timeout=120)
        code = re.search(r"\b(\d{6})\b", Mailbox.text(mail))
        if code is None:
            raise Skip("the mail has no six-digit code")
        await fill_first(page, code.group(1))
        await camera.shot(page, "portal-verify-code", "verification: the one-time code")
        await submit(page)

    async def access() -> None:
        await camera.visit(page, f"{base}/requests/new")
        await camera.shot(page, "portal-new-request", "a new request: the kinds")
        await camera.visit(page, f"{base}/requests/new/access")
        await submit(page)
        found = re.search(r"/requests/([0-9a-f-]{36})", page.url)
        if found is None:
            raise Skip(f"no request page after sending the request (at {page.url})")
        request_id.append(found.group(1))
        for _ in range(60):  # the answer: a package to download
            if await page.locator('a[href$="/package"]').count():
                break
            await asyncio.sleep(2)
            await page.reload()
        await camera.shot(page, "portal-request-status", "a request's status page")

    async def consent() -> None:
        await camera.first_of(page, base, ["/consent", "/consents", "/preferences"])
        await camera.shot(page, "portal-consent", "consent preferences")

    await camera.step("privacy centre front page", home)
    await camera.step("privacy statement", statement)
    if await camera.step("verification", verify):
        await camera.step("access request and its status page", access)
        await camera.step("consent preferences", consent)
    await page.close()
    return request_id[0] if request_id else None


async def staff_user(target: Target, given: tuple[str, str] | None) -> tuple[str, str]:
    """A staff account with STAFF_ROLES: the one given, the one an earlier run made, or a new
    first administrator (refused when the suite already has one: then pass --staff-user)."""
    if given:
        username, password = given
    elif target.persist_staff and STAFF_FILE.exists():
        kept = json.loads(STAFF_FILE.read_text())
        username, password = kept["username"], kept["password"]
    else:
        username, password = "kuvaaja", f"Valokuva-{secrets.token_hex(8)}-Talvi"
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "lampo"), "admin", "create-first-admin", username,
            env=target.staff_env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await process.communicate(f"{password}\n{password}\n".encode())
        if process.returncode != 0:
            raise Skip(f"cannot create the first administrator ({out.decode().strip()}); pass --staff-user")
        if target.persist_staff:
            STAFF_FILE.parent.mkdir(parents=True, exist_ok=True)
            STAFF_FILE.touch(mode=0o600)
            STAFF_FILE.write_text(json.dumps({"username": username, "password": password}))
        say(f"created the staff user {username} (password in {STAFF_FILE if target.persist_staff else 'memory'})")
    async with httpx.AsyncClient(base_url=target.urls["staff"], timeout=30) as api:
        login = await api.post("/v1/login", json={"username": username, "password": password})
        if login.status_code != 200:
            raise Skip(f"staff login as {username} refused ({login.status_code})")
        headers = {"authorization": f"Bearer {login.json()['token']}"}
        for role in STAFF_ROLES[1:]:  # best effort: a given user may not be an administrator
            await api.post(f"/v1/users/{username}/grants", json={"role": role}, headers=headers)
        version = target.staff_env.get("LAMPO_CONFIDENTIALITY_TEXT_VERSION", "2026-1")
        await api.post("/v1/me/confidentiality", json={"text_version": version}, headers=headers)
    return username, password


async def console(
    camera: Camera, context: Any, customer: Customer, request_id: str | None, given: tuple[str, str] | None
) -> None:
    base = camera.target.urls["staff"]
    page = await context.new_page()
    account: list[tuple[str, str]] = []

    async def login() -> None:
        await camera.visit(page, f"{base}/console/login")
        await camera.shot(page, "console-login", "staff console, login")
        account.append(await staff_user(camera.target, given))
        username, password = account[0]
        await page.locator("main form input[name=username]").fill(username)
        await page.locator("main form input[type=password]").fill(password)
        await submit(page)
        if "confidential" in page.url:  # the commitment, when the console asks for it
            for box in await page.locator("main form input[type=checkbox]").all():
                await box.check()
            await submit(page)

    async def queue() -> None:
        await camera.visit(page, f"{base}/console/requests")
        await camera.shot(page, "console-requests", "staff console, request queue")

    async def one_request() -> None:
        if request_id is None:
            raise Skip("no request was made in the privacy centre")
        await camera.visit(page, f"{base}/console/requests/{request_id}")
        await camera.shot(page, "console-request", "staff console, a request")

    async def one_customer() -> None:
        await camera.visit(page, f"{base}/console/customers")
        await fill_first(page, customer.number)
        await submit(page)
        link = page.locator(f'main a[href*="{customer.number}"]')
        if await link.count():
            async with page.expect_navigation():
                await link.first.click()
        await camera.shot(page, "console-customer", "staff console, a customer")

    async def admin() -> None:
        await camera.visit(page, f"{base}/console/admin")
        await camera.shot(page, "console-admin", "staff console, administration")

    if await camera.step("console login", login):
        await camera.step("request queue", queue)
        await camera.step("a request in the console", one_request)
        await camera.step("a customer in the console", one_customer)
        await camera.step("administration", admin)
    await page.close()


async def main(out: Path, own_suite: bool, given: tuple[str, str] | None, lang: str) -> int:
    chromium = shutil.which("chromium")
    if chromium is None:
        say("chromium is not installed: deploy/local/browser.sh install")
        return 1
    async with target(own_suite) as where:
        mailbox = Mailbox(where.mail)
        mailbox.skip_existing()
        customer = new_customer()
        seeded = {name: where.urls[name] for name in ("registry", "billing", "recordings", "consent")}
        say(f"seeding a synthetic customer {customer.number}")
        for attempt in range(3):  # a busy machine answers /metrics late; the events are idempotent
            try:
                await seed(seeded, customer)
                break
            except httpx.HTTPError as error:
                say(f"seeding: {type(error).__name__}; trying again")
                if attempt == 2:
                    raise
        await known_to_registry(where, customer)
        camera = Camera(out, where)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
            )
            try:
                context = await browser.new_context(
                    locale="fi-FI" if lang == "fi" else "en-GB", timezone_id="Europe/Helsinki", viewport=VIEWPORT
                )
                context.set_default_timeout(20_000)
                if lang != "fi":
                    await context.add_cookies(
                        [{"name": "lampo_lang", "value": lang, "url": u} for u in where.urls.values()]
                    )
                request_id = await privacy_centre(camera, context, customer, mailbox)
                await console(camera, context, customer, request_id, given)
            finally:
                await browser.close()
        say(f"{len(where.taken)} taken, {len(where.skipped)} skipped")
        for skipped in where.skipped:
            say(f"  skipped {skipped}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    parser.add_argument("--own-suite", action="store_true", help="launch a suite of its own (tests/suite.py)")
    parser.add_argument("--staff-user", default=os.environ.get("LAMPO_STAFF_USER"))
    parser.add_argument("--staff-password", default=os.environ.get("LAMPO_STAFF_PASSWORD"))
    parser.add_argument("--lang", choices=["fi", "en"], default="fi")
    args = parser.parse_args()
    staff = (args.staff_user, args.staff_password) if args.staff_user and args.staff_password else None
    sys.exit(asyncio.run(main(args.out, args.own_suite, staff, args.lang)))
