"""deploy/tools/i18n.py, which ``make lint`` runs over every web package: on a throwaway package,
``--write`` puts each string into its module's catalogue and keeps translations, and the check
fails, naming file and line, on a string missing from its catalogue, an empty or fuzzy Finnish
translation and visible text in a template outside ``_()`` or ``{% trans %}``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "deploy" / "tools" / "i18n.py"

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
<p>{% trans name=name %}Hello, {{ name }}.
  Your requests are below.{% endtrans %}</p>
<img src="/static/logo.svg" alt="{{ _('Muuramen Lämpö') }}">
<p>{{ count }} / 12 &ndash; 100 € &nbsp; (?) <!-- a comment the reader never sees --></p>
<form method="post"><input type="hidden" name="kind" value="access">
<input type="submit" value="{{ _('Send') }}"></form>
{% endblock %}
"""

PAGES = '''"""The shop's pages."""


def home(site, request):
    site.flash(request, _("Saved"))
    return site.render(request, "pages/home.html", name="x", count=1)
'''


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True, check=False)


def translate(po: Path, **exceptions: str) -> None:
    """Every empty msgstr of the catalogue filled with a stand-in Finnish text."""
    text = re.sub(r'(msgid "(.+)"\nmsgstr )""', r'\1"fi: \2"', po.read_text(encoding="utf-8"))
    for msgid, msgstr in exceptions.items():
        text = text.replace(msgid, msgstr)
    po.write_text(text, encoding="utf-8")


@pytest.fixture
def package(tmp_path: Path) -> Path:
    root = tmp_path / "lampo" / "shop"
    (root / "templates" / "pages").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "pages.py").write_text(PAGES)
    (root / "templates" / "base.html").write_text(BASE)
    (root / "templates" / "pages" / "home.html").write_text(HOME)
    return root


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
    for msgid in ("Welcome", "Saved", "Send", "Muuramen Lämpö", "Hello, %(name)s. Your requests are below."):
        assert f'msgid "{msgid}"\nmsgstr ""' in pages, msgid
    assert 'msgid "Skip to content"' in catalogue(package, "base").read_text(encoding="utf-8")
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
    assert re.search(r"templates/pages/home\.html:10: 'Goodbye' is missing from .*/locale/fi/LC_MESSAGES/pages\.po", failed.stdout), failed.stdout
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
    ("markup", "reported"),
    [
        ("<p>Request received</p>", "text 'Request received'"),
        ("<p>{{ when }} klo</p>", "text 'klo'"),
        ('<img src="/static/x.png" alt="Company logo">', "alt= 'Company logo'"),
        ('<input name="q" placeholder="Search">', "placeholder= 'Search'"),
        ('<button aria-label="Close">×</button>', "aria-label= 'Close'"),
        ('<input type="submit" value="Send">', "value= 'Send'"),
        ('<input value="Next" type="button">', "value= 'Next'"),
        ("<p>Ä&auml;</p>", "text 'Ä'"),
    ],
)
def test_visible_text_outside_a_translation_fails(package: Path, markup: str, reported: str) -> None:
    translated(package)
    home = package / "templates" / "pages" / "home.html"
    home.write_text(home.read_text().replace("{% endblock %}\n", f"\n{markup}\n{{% endblock %}}\n"))

    failed = run(package)
    assert failed.returncode == 1
    assert f"templates/pages/home.html:11: {reported} outside _() or {{% trans %}}" in failed.stdout, failed.stdout
    assert len(failed.stdout.splitlines()) == 1, failed.stdout


def test_the_repositorys_web_packages_pass() -> None:
    """What `make lint` runs: every web package in the repository, if any yet."""
    checked = run()
    assert checked.returncode == 0, checked.stdout + checked.stderr
