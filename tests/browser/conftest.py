"""Browser tests: the web pages in a real headless Chromium (Debian's `chromium`, driven by
Playwright for Python through `executable_path`), against the suite of processes as `make up`
starts it (tests/suite.py), with axe-core checking every page for WCAG 2.1 AA.

`deploy/local/browser.sh install` (run by `make install`) installs chromium and axe-core; without
them the browser tests are skipped with the reason. The tests are async (Playwright's async API
in the session's event loop, as every other suite-level test):

    async def test_status_page(suite, page, mailbox, assert_accessible):
        await page.goto(f"{suite['portal'].url}/")
        await assert_accessible(page, context="privacy centre home")
        message = await mailbox.wait_for(to="someone@example.fi", subject="code")

Fixtures: `suite` (the whole suite as processes, once per session), `browser` (one Chromium per
session), `page` (a fresh browser context per test, Finnish by default: parametrize `locale`
to change it; the test fails if the page broke its Content-Security-Policy or threw an uncaught
script error), `mailbox` (the mail the suite's SMTP catcher kept), `assert_accessible` (axe-core:
no serious or critical violation of WCAG 2.0/2.1 A and AA) and `serve` (an ASGI app of the
test's own on a free port, for pages tested without the suite)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from inbox import Mailbox
from suite import Suite, free_port

from lampo.web.guard import LANG_COOKIE

HERE = Path(__file__).parent
REPO = HERE.parent.parent
BROWSER_SH = REPO / "deploy" / "local" / "browser.sh"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
FAILING_IMPACTS = ("serious", "critical")
NO_CHROMIUM = "Debian's chromium is not installed: run `deploy/local/browser.sh install` (make install does)"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks the browser tests; without Chromium, skips those that need it before any suite starts."""
    missing = None if chromium_path() else NO_CHROMIUM
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)
            if missing and {"browser", "page"} & set(getattr(item, "fixturenames", ())):
                item.add_marker(pytest.mark.skip(reason=missing))


def chromium_path() -> str | None:
    return shutil.which("chromium")


def axe_path() -> Path | None:
    """The installed axe.min.js (its version is pinned in deploy/local/browser.sh)."""
    answer = subprocess.run([str(BROWSER_SH), "axe"], capture_output=True, text=True, check=False)
    return Path(answer.stdout.strip()) if answer.returncode == 0 else None


@pytest.fixture(scope="session")
def axe_source() -> str:
    path = axe_path()
    if path is None:
        pytest.skip("axe-core is not installed: run `deploy/local/browser.sh install` (make install does)")
    return path.read_text()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    executable = chromium_path()
    if executable is None:
        pytest.skip(NO_CHROMIUM)
    playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed (make install)")
    async with playwright_api.async_playwright() as playwright:
        # --no-sandbox: the tests run as root on CI, where Chromium's sandbox refuses to start;
        # --disable-dev-shm-usage: a small /dev/shm (containers) would crash its renderers.
        running = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield running
        finally:
            await running.close()


@pytest.fixture
def locale() -> str:
    """The browser's language (Accept-Language, navigator.language, and lampo.web's language
    cookie, so the pages speak it); override with ``@pytest.mark.parametrize("locale", ["en-GB"])``."""
    return "fi-FI"


class PageProblems:
    """What a page did wrong in the browser: Content-Security-Policy refusals (an inline script or
    style, a resource from elsewhere) and uncaught script errors."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def console(self, message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.found.append(f"CSP: {message.text} ({message.location.get('url', '?')})")

    def page_error(self, error: Any) -> None:
        self.found.append(f"uncaught script error: {error}")


@pytest.fixture
def page_problems() -> PageProblems:
    """What the test's `page` did wrong so far; `page` fails the test on any left at its end."""
    return PageProblems()


@pytest.fixture
async def page(browser: Any, locale: str, page_problems: PageProblems) -> AsyncIterator[Any]:
    context = await browser.new_context(locale=locale, timezone_id="Europe/Helsinki")
    context.set_default_timeout(15_000)
    # The pages speak the language of lampo.web's cookie (Finnish without one): set it to the locale's.
    await context.add_cookies([{"name": LANG_COOKIE, "value": locale[:2], "domain": "127.0.0.1", "path": "/"}])
    problems = page_problems
    opened = await context.new_page()
    opened.on("console", problems.console)
    opened.on("pageerror", problems.page_error)
    try:
        yield opened
    finally:
        await context.close()
    assert not problems.found, "the page broke in the browser:\n" + "\n".join(problems.found)


AXE_RUN = """async (tags) => {
  const results = await axe.run(document, {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]});
  return results.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map((n) => ({target: n.target.join(" "), html: n.html.slice(0, 200)})),
  }));
}"""


def describe_violations(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"- {v['id']} ({v['impact']}): {v['help']} <{v['helpUrl']}>")
        lines.extend(f"    at {node['target']}: {node['html']}" for node in v["nodes"])
    return "\n".join(lines)


async def axe_violations(page: Any, axe_source: str) -> list[dict[str, Any]]:
    """Every WCAG 2.0/2.1 A and AA violation axe-core finds on the page as it is now. axe is
    evaluated through the DevTools protocol, which the page's Content-Security-Policy does not
    govern: the policy stays on, and the page is tested as it is served."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(axe_source)
    violations: list[dict[str, Any]] = await page.evaluate(AXE_RUN, WCAG_TAGS)
    return violations


@pytest.fixture
def assert_accessible(axe_source: str) -> Callable[..., Awaitable[None]]:
    async def check(page: Any, *, context: str = "") -> None:
        violations = await axe_violations(page, axe_source)
        failing = [v for v in violations if v["impact"] in FAILING_IMPACTS]
        where = f"{context} ({page.url})" if context else page.url
        assert not failing, f"axe-core: WCAG 2.1 AA violations on {where}:\n{describe_violations(failing)}"

    return check


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Any], Awaitable[str]]]:
    """``url = await serve(app)``: the ASGI app on a free loopback port until the test ends."""
    import uvicorn

    servers: list[tuple[Any, asyncio.Task[None]]] = []

    async def start(app: Any) -> str:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
        task = asyncio.create_task(server.serve())
        servers.append((server, task))
        deadline = time.monotonic() + 10
        while not server.started:
            if task.done():
                task.result()
            assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
            await asyncio.sleep(0.05)
        return f"http://127.0.0.1:{port}"

    try:
        yield start
    finally:
        for server, task in servers:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)


@pytest.fixture
def mailbox(suite: Suite) -> Mailbox:
    """What the suite's catcher (lampo.mail.catcher, tests/suite.py's ``suite.mail``) kept."""
    directory = getattr(getattr(suite, "mail", None), "directory", None)
    if directory is None:
        pytest.skip("this suite has no SMTP catcher (tests/suite.py: suite.mail)")
    return Mailbox(Path(directory))
