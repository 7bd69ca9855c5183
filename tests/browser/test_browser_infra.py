"""The browser tests' own tools, on tiny pages of their own: axe-core finds what a person with a
screen reader would trip on (so `assert_accessible` can fail), passes a good page, and the
Content-Security-Policy keeps an inline script from running in the real browser."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

GOOD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A good page</title></head>
<body><main><h1>Privacy centre</h1>
<img src="/logo.svg" alt="Muuramen Lämpö">
<form method="post" action="/ask"><label for="email">E-mail address</label>
<input id="email" name="email" type="email" autocomplete="email"><button type="submit">Send</button></form>
</main></body></html>"""

BROKEN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A broken page</title></head>
<body><main><h1>Privacy centre</h1>
<img src="/logo.svg">
<form method="post" action="/ask"><input name="email" type="text"><button type="submit">Send</button></form>
</main></body></html>"""

INLINE_SCRIPT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Inline script</title></head>
<body><main><h1 id="heading">Untouched</h1>
<script>document.getElementById("heading").textContent = "Script ran"; window.ran = true;</script>
</main></body></html>"""

LOGO = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'


def tiny_site() -> FastAPI:
    app = FastAPI()

    def page(html: str) -> HTMLResponse:
        return HTMLResponse(html, headers={"content-security-policy": CSP})

    @app.get("/good")
    def good() -> HTMLResponse:
        return page(GOOD)

    @app.get("/broken")
    def broken() -> HTMLResponse:
        return page(BROKEN)

    @app.get("/inline")
    def inline() -> HTMLResponse:
        return page(INLINE_SCRIPT)

    @app.get("/logo.svg")
    def logo() -> HTMLResponse:
        return HTMLResponse(LOGO, media_type="image/svg+xml")

    return app


async def test_axe_fails_a_page_with_an_image_without_text_and_an_unlabelled_field(serve, page, assert_accessible):
    url = await serve(tiny_site())
    await page.goto(f"{url}/broken")

    with pytest.raises(AssertionError) as failure:
        await assert_accessible(page, context="the broken page")

    report = str(failure.value)
    assert "the broken page" in report
    assert "- image-alt (critical)" in report, report
    assert "- label (critical)" in report, report
    assert 'at img: <img src="/logo.svg">' in report, report


async def test_axe_passes_a_good_page_with_its_csp_on(serve, page, assert_accessible):
    url = await serve(tiny_site())
    answer = await page.goto(f"{url}/good")
    assert answer is not None and answer.headers["content-security-policy"] == CSP

    await assert_accessible(page, context="the good page")
    await page.reload()  # axe is injected again into a new document
    await assert_accessible(page, context="the good page, reloaded")


async def test_the_csp_keeps_an_inline_script_from_running(serve, browser):
    url = await serve(tiny_site())
    context = await browser.new_context()
    try:
        tab = await context.new_page()
        refused: list[str] = []
        tab.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
        await tab.goto(f"{url}/inline")

        assert await tab.text_content("#heading") == "Untouched"
        assert await tab.evaluate("window.ran === undefined")
        assert any("inline script" in text for text in refused), refused
    finally:
        await context.close()


async def test_the_page_fixture_reports_a_csp_refusal(serve, page, page_problems):
    """What the `page` fixture checks after every test, on a page that breaks its policy."""
    url = await serve(tiny_site())
    await page.goto(f"{url}/good")
    assert page_problems.found == []

    await page.goto(f"{url}/inline")
    assert len(page_problems.found) == 1 and page_problems.found[0].startswith("CSP: "), page_problems.found
    assert "inline script" in page_problems.found[0]
    page_problems.found.clear()  # seen: the fixture's own check at the end would fail the test
