"""deploy/tools/i18n.py, which ``make lint`` runs over every web package: on a throwaway package,
``--write`` puts each string into its module's catalogue and keeps translations, and the check
fails, naming file and line, on a string missing from its catalogue, an empty or fuzzy Finnish
translation and visible text in a template outside ``_()`` or ``{% trans %}``."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient

from lampo.web import Site, gettext

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "deploy" / "tools" / "i18n.py"


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("i18n_tool", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["i18n_tool"] = module
    spec.loader.exec_module(module)
    return module


i18n = _tool()

BASE = """<!doctype html>
<html lang="{{ lang }}">
<head><title>{% block title %}{{ _("Privacy centre") }}{% endblock %}</title></head>
<body>
<a class="skip" href="#main">{{ _("Skip to content") }}</a>
<main id="main">{% block content %}{% endblock %}</main>
</body>
</html>
"""

HOME = """{% extends "base.html" %}
{% block content %}
<h1>{{ _("Welcome") }}</h1>
<p>{% trans trimmed name=name %}Hello, {{ name }}.
  Your requests are below.{% endtrans %}</p>
<img src="/static/logo.svg" alt="{{ _('Our logo') }}">
<p>{{ count }} / 12 &ndash; 100 € &nbsp; (?) <!-- a comment the reader never sees --></p>
<form method="post"><input type="hidden" name="kind" value="access">
<input type="submit" value="{{ _('Send') }}"></form>
{% endblock %}
"""

PAGES = '''"""The shop's pages."""


def home(site, request):
    flash(request, gettext(request, "Saved"))
    return site.render(request, "pages/home.html", name="x", count=1)
'''


@dataclass
class Run:
    returncode: int
    stdout: str


def run(*args: str | Path) -> Run:
    """The tool's main() as `make lint` runs it (in this process: importing lampo.web once)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = i18n.main([str(a) for a in args])
    return Run(code, out.getvalue())


def translate(po: Path, **exceptions: str) -> None:
    """Every empty msgstr of the catalogue filled with a stand-in Finnish text."""
    text = re.sub(r'(msgid "(.+)"\nmsgstr )""', r'\1"fi: \2"', po.read_text(encoding="utf-8"))
    for msgid, msgstr in exceptions.items():
        text = text.replace(msgid, msgstr)
    po.write_text(text, encoding="utf-8")


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A throwaway web package, importable (lampo.web's Site loads it by name)."""
    root = tmp_path / f"lampo_i18ntest_{abs(hash(tmp_path)) % 10**8}"
    (root / "templates" / "pages").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "pages.py").write_text(PAGES)
    (root / "templates" / "base.html").write_text(BASE)
    (root / "templates" / "pages" / "home.html").write_text(HOME)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield root
    sys.modules.pop(root.name, None)


def catalogue(package: Path, domain: str) -> Path:
    return package / "locale" / "fi" / "LC_MESSAGES" / f"{domain}.po"


def translated(package: Path) -> Path:
    written = run("--write", package)
    assert written.returncode == 0, written.stdout + written.stderr
    for domain in ("pages", "base"):
        translate(catalogue(package, domain))
    return package


def test_write_puts_each_string_into_its_modules_catalogue_and_a_translated_package_passes(package: Path) -> None:
    written = run("--write", package)
    assert written.returncode == 0, written.stderr
    assert sorted(p.name for p in (package / "locale" / "fi" / "LC_MESSAGES").iterdir()) == ["base.po", "pages.po"]
    pages = catalogue(package, "pages").read_text(encoding="utf-8")
    # pages.py renders pages/home.html: its strings and the module's own share pages.po
    for msgid in ("Welcome", "Saved", "Send", "Our logo", "Hello, %(name)s. Your requests are below."):
        assert f'msgid "{msgid}"\nmsgstr ""' in pages, msgid
    base = catalogue(package, "base").read_text(encoding="utf-8")
    assert 'msgid "Privacy centre"' in base
    assert "Skip to content" not in base  # lampo.web's own catalogue translates it for every site
    assert not list(package.rglob("*.mo"))

    # Untranslated so far: the check names every string and where it is used.
    untranslated = run(package)
    assert untranslated.returncode == 1
    assert "templates/pages/home.html:3: 'Welcome' has no fi translation in" in untranslated.stdout

    for domain in ("pages", "base"):
        translate(catalogue(package, domain))
    clean = run(package)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout == ""


def test_write_keeps_translations_and_changes_nothing_when_nothing_changed(package: Path) -> None:
    translated(package)
    before = catalogue(package, "pages").read_text(encoding="utf-8")
    again = run("--write", package)
    assert again.stdout == "" and catalogue(package, "pages").read_text(encoding="utf-8") == before

    home = package / "templates" / "pages" / "home.html"
    home.write_text(home.read_text().replace("{% endblock %}\n", '<p>{{ _("Goodbye") }}</p>\n{% endblock %}\n'))
    assert run("--write", package).returncode == 0
    after = catalogue(package, "pages").read_text(encoding="utf-8")
    assert 'msgid "Welcome"\nmsgstr "fi: Welcome"' in after
    assert 'msgid "Goodbye"\nmsgstr ""' in after


def test_a_string_missing_from_its_catalogue_fails(package: Path) -> None:
    translated(package)
    home = package / "templates" / "pages" / "home.html"
    home.write_text(home.read_text().replace("{% endblock %}\n", '<p>{{ _("Goodbye") }}</p>\n{% endblock %}\n'))
    (package / "pages.py").write_text(PAGES + '\n\nLABEL = lazy_gettext("Consent")\n')

    failed = run(package)
    assert failed.returncode == 1
    assert re.search(
        r"templates/pages/home\.html:10: 'Goodbye' is missing from .*/locale/fi/LC_MESSAGES/pages\.po", failed.stdout
    ), failed.stdout
    assert re.search(r"pages\.py:9: 'Consent' is missing from", failed.stdout), failed.stdout
    assert "Welcome" not in failed.stdout


def test_an_empty_or_fuzzy_finnish_translation_fails(package: Path) -> None:
    translated(package)
    po = catalogue(package, "pages")
    text = po.read_text(encoding="utf-8")
    text = text.replace('msgstr "fi: Saved"', 'msgstr ""')
    text = text.replace('msgid "Welcome"', '#, fuzzy\nmsgid "Welcome"')
    po.write_text(text, encoding="utf-8")

    failed = run(package)
    assert failed.returncode == 1
    assert re.search(r"pages\.py:5: 'Saved' has no fi translation in .*pages\.po", failed.stdout), failed.stdout
    assert re.search(r"home\.html:3: 'Welcome' is fuzzy in .*pages\.po", failed.stdout), failed.stdout
    assert len(failed.stdout.splitlines()) == 2, failed.stdout


@pytest.mark.parametrize(
    ("markup", "line", "reported"),
    [
        ("<p>Request received</p>", 11, "text 'Request received'"),
        ("<p>{{ when }} klo</p>", 11, "text 'klo'"),
        ("<p>{{ count }}\n\n  on its way</p>", 13, "text 'on its way'"),
        ('<img src="/static/x.png" alt="Company logo">', 11, "alt= 'Company logo'"),
        ('<input name="q" placeholder="Search">', 11, "placeholder= 'Search'"),
        ('<button aria-label="Close">×</button>', 11, "aria-label= 'Close'"),
        ('<input type="submit" value="Send">', 11, "value= 'Send'"),
        ('<input value="Next" type="button">', 11, "value= 'Next'"),
        ("<p>Ä&auml;</p>", 11, "text 'Ä'"),
    ],
)
def test_visible_text_outside_a_translation_fails(package: Path, markup: str, line: int, reported: str) -> None:
    translated(package)
    home = package / "templates" / "pages" / "home.html"
    home.write_text(home.read_text().replace("{% endblock %}\n", f"\n{markup}\n{{% endblock %}}\n"))

    failed = run(package)
    assert failed.returncode == 1
    assert f"templates/pages/home.html:{line}: {reported} outside _() or {{% trans %}}" in failed.stdout, failed.stdout
    assert len(failed.stdout.splitlines()) == 1, failed.stdout


@pytest.mark.parametrize(
    "markup",
    [
        "<p>{{ count }} / 12 &ndash; 100 € &nbsp; (?) 2026-12-02</p>",
        "<!-- Only a developer reads this -->",
        '<input type="hidden" name="kind" value="access"><input name="q" value="{{ q }}">',
        '<a href="/lang/fi" lang="fi">{{ "Suomeksi" }}</a>',
        "{% if home %}/console/{% endif %}",  # an address a block fills in for an href
        "<p title=\"{{ _('Help') }}\">{% trans %}Text{% endtrans %}</p>",
    ],
)
def test_text_without_words_or_within_translations_passes(package: Path, markup: str) -> None:
    translated(package)
    home = package / "templates" / "pages" / "home.html"
    home.write_text(home.read_text().replace("{% endblock %}\n", f"\n{markup}\n{{% endblock %}}\n"))
    assert run("--write", package).returncode == 0
    translate(catalogue(package, "pages"))

    checked = run(package)
    assert checked.returncode == 0, checked.stdout


def test_what_the_tool_extracts_is_what_lampo_web_translates(package: Path) -> None:
    """The msgids the tool writes (a trimmed multi-line {% trans %}, lampo.web's gettext in Python)
    are the ones lampo.web looks up when it renders the page in Finnish; a string lampo.web's own
    catalogue translates comes from there."""
    translated(package)
    site = Site(package=package.name)
    app = FastAPI()
    site.install(app, session_key=bytes(range(32)), secure=True)

    @app.get("/")
    async def home(request: Request) -> HTMLResponse:
        return site.render(request, "pages/home.html", name="Aino", count=gettext(request, "Saved"))

    page = TestClient(app, base_url="https://suite.test").get("/").text
    for shown in ("fi: Welcome", "fi: Hello, Aino. Your requests are below.", 'alt="fi: Our logo"',
                  'value="fi: Send"', "Siirry sisältöön", "<p>fi: Saved / 12"):  # fmt: skip
        assert shown in page, shown


def test_a_string_stays_in_the_catalogue_that_holds_it(package: Path) -> None:
    translated(package)
    pages, base = catalogue(package, "pages"), catalogue(package, "base")
    # moved by hand from pages.po to base.po, translation and all
    entry = 'msgid "Welcome"\nmsgstr "fi: Welcome"\n'
    pages.write_text(pages.read_text(encoding="utf-8").replace("#: templates/pages/home.html\n" + entry, ""))
    base.write_text(base.read_text(encoding="utf-8") + "\n" + entry)
    assert run(package).returncode == 0

    assert run("--write", package).returncode == 0
    assert entry not in pages.read_text(encoding="utf-8") and entry in base.read_text(encoding="utf-8")

    (package / "templates" / "base.html").write_text("<!doctype html>\n{% block content %}{% endblock %}\n")
    written = run("--write", package)
    assert "i18n: removed" not in written.stdout  # base.po still holds "Welcome"
    assert [line for line in base.read_text(encoding="utf-8").splitlines() if line.startswith("msgid ")] == [
        'msgid ""', 'msgid "Welcome"'
    ]  # fmt: skip


def test_the_repositorys_web_packages_pass() -> None:
    """What `make lint` runs, as it runs it: every web package in the repository."""
    checked = subprocess.run([sys.executable, str(TOOL)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
