#!/usr/bin/env python3
"""The web pages' message catalogues: every label comes from one, in Finnish.

    deploy/tools/i18n.py            # check (make lint): exit 1, listing file:line, on a string missing
                                    # from its catalogue, an empty or fuzzy Finnish translation, and
                                    # visible text in a template outside _() or {% trans %}
    deploy/tools/i18n.py --write    # extract every string into its catalogue, keeping translations

A web package is a directory with `templates/` under libs/src/lampo/ or services/*/src/lampo/
(lampo.web, lampo.portal, lampo.staff); give package directories as arguments to check only those.
Strings are extracted with Babel: `_`, `gettext`, `ngettext`, `pgettext`, `lazy_gettext` (and
Babel's other default keywords) in the package's Python modules, `_()` and `{% trans %}` (trimmed)
in its templates. msgids are the English text; English needs no catalogue.

One catalogue per module, `<package>/locale/fi/LC_MESSAGES/<module>.po`, so helpers working on
different modules of one package never edit the same file (lampo.web merges every .po it finds):
- a Python module's strings go to `<module name>.po` (`__init__.py`: the name of its directory);
- a template's strings go to the catalogue of the module that names it (the string literal
  "console/customer.html" in customers.py puts console/customer.html's strings into
  customers.po), or, when no module names it (a base or an included part), to `<its file name
  without .html and leading _>.po`.

`--write` keeps existing translations, marks changed ones fuzzy (Babel's matching), drops strings
no longer used, and writes a fixed header, file references without line numbers, sorted by msgid,
so a catalogue changes only when its strings do. `.mo` files are never written: lampo.web compiles
the .po files in memory.
"""

from __future__ import annotations

import argparse
import ast
import bisect
import io
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_file
from babel.messages.pofile import read_po, write_po
from jinja2 import Environment, nodes

REPO = Path(__file__).resolve().parents[2]
LANGUAGES = ("fi",)
# In Python, lampo.web.gettext(request, message, **values) takes the message second; _() and N_()
# first. Templates use Babel's keywords ({% trans %} is a gettext call with the message first).
PYTHON_KEYWORDS: dict[str, Any] = {
    **DEFAULT_KEYWORDS,
    "gettext": {1: None, **{n: (2,) for n in range(2, 10)}},
    "lazy_gettext": None,
    "lazy_ngettext": (1, 2),
}
JINJA = "jinja2.ext:babel_extract"
HEADER = """\
# {language} messages of {package}, module {domain}: written by deploy/tools/i18n.py --write,
# translated by hand (msgstr); the tool keeps translations.
msgid ""
msgstr ""
"Language: {language}\\n"
"MIME-Version: 1.0\\n"
"Content-Type: text/plain; charset=UTF-8\\n"
"Content-Transfer-Encoding: 8bit\\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\\n"

"""
# Attributes a person sees or hears (screen readers); an input button's value too.
VISIBLE_ATTRIBUTES = {"alt", "title", "placeholder", "aria-label", "aria-description", "label"}
ATTRIBUTE = re.compile(r"""([\w:-]+)\s*=\s*("[^"]*"|'[^']*')""")
INPUT = re.compile(r"<input\b", re.I)
BUTTON_TYPES = {"submit", "button", "reset"}
HTML_PARTS = re.compile(r"<!--.*?-->|<script\b.*?</script\s*>|<style\b.*?</style\s*>|<[^>]*>", re.S | re.I)
NOT_SHOWN = re.compile(r"<(script|style)\b", re.I)
ENTITY = re.compile(r"&(#\d+|#x[0-9a-f]+|\w+);", re.I)
LETTER = re.compile(r"[^\W\d_]")
ADDRESS = re.compile(r"(/|#|\?|https?://|mailto:)\S*$")
EXPRESSION = "\ue000"  # stands for a {{ ... }} output while the template's text is read


@dataclass
class Package:
    root: Path
    name: str
    strings: dict[str, Catalog] = field(default_factory=dict)
    """Per catalogue (module), every string the sources use, with their locations."""

    @property
    def templates(self) -> Path:
        return self.root / "templates"

    def catalogue(self, language: str, domain: str) -> Path:
        return self.root / "locale" / language / "LC_MESSAGES" / f"{domain}.po"


def rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def web_packages() -> list[Path]:
    found = [*REPO.glob("libs/src/lampo/*/templates"), *REPO.glob("services/*/src/lampo/*/templates")]
    return sorted(t.parent for t in found if t.is_dir())


def package_name(root: Path) -> str:
    parts = root.resolve().parts
    return ".".join(parts[parts.index("lampo") :]) if "lampo" in parts else root.name


def module_domain(path: Path) -> str:
    return path.parent.name if path.name == "__init__.py" else path.stem


def template_owners(root: Path) -> dict[str, str]:
    """Template name (relative to templates/) -> the catalogue of the first module naming it."""
    owners: dict[str, str] = {}
    for module in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"), str(module))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(".html"):
                owners.setdefault(node.value, module_domain(module))
    return owners


def template_domain(name: str, owners: dict[str, str]) -> str:
    return owners.get(name) or Path(name).stem.lstrip("_")


def sources(package: Package) -> Iterator[tuple[Path, str, str]]:
    """(file, extraction method, catalogue) of every source of the package's strings."""
    for module in sorted(package.root.rglob("*.py")):
        yield module, "python", module_domain(module)
    owners = template_owners(package.root)
    for template in sorted(package.templates.rglob("*.html")):
        yield template, JINJA, template_domain(template.relative_to(package.templates).as_posix(), owners)


def rendering_environment() -> Environment:
    """The Jinja environment lampo.web renders with: its whitespace control and {% trans %}
    trimming make the msgids, so the tool extracts and parses with the same."""
    from lampo.web import Site

    return Site(package="lampo.web").environments["en"]


def jinja_options(environment: Environment) -> dict[str, str]:
    flags = {
        "trim_blocks": environment.trim_blocks,
        "lstrip_blocks": environment.lstrip_blocks,
        "trimmed": bool(environment.policies.get("ext.i18n.trimmed", False)),
        "newstyle_gettext": True,
        "autoescape": True,
    }
    return {name: str(value).lower() for name, value in flags.items()}


def extract(root: Path, environment: Environment) -> Package:
    package = Package(root, package_name(root))
    for path, method, domain in sources(package):
        options = jinja_options(environment) if method == JINJA else None
        keywords = DEFAULT_KEYWORDS if method == JINJA else PYTHON_KEYWORDS
        for line, message, comments, context in extract_from_file(method, path, keywords, ("i18n:",), options):
            catalog = package.strings.setdefault(domain, Catalog(domain=domain))
            where = path.relative_to(root).as_posix()  # in the package: the catalogue's file references
            catalog.add(message, None, [(where, line)], auto_comments=comments, context=context)
    return package


def read_catalogue(path: Path, language: str) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=language, domain=path.stem)


def catalogues(package: Package, language: str) -> dict[str, Catalog]:
    folder = package.catalogue(language, "_").parent
    return {po.stem: read_catalogue(po, language) for po in sorted(folder.glob("*.po"))}


def web_root() -> Path:
    import lampo.web

    return Path(lampo.web.__file__).resolve().parent


def shared(package: Package, language: str) -> set[tuple[str, str | None]]:
    """The strings lampo.web's own catalogues translate: every site merges them, so a package
    using one ("Back to the front page") need not repeat it."""
    if package.root.resolve() == web_root():
        return set()
    web = Package(web_root(), "lampo.web")
    return {
        (repr(m.id), m.context)
        for catalog in catalogues(web, language).values()
        for m in catalog
        if m.id and not m.fuzzy and not untranslated(m)
    }


def placed(package: Package, existing: dict[str, Catalog], language: str) -> dict[str, Catalog]:
    """The package's strings by the catalogue they belong in: the one that already holds a string
    (moved by hand, or lampo.web's web.po for its own), else the one its source's module names;
    none for a string lampo.web translates."""
    homes: dict[str, Catalog] = {}
    translated_by_web = shared(package, language)
    for domain, strings in sorted(package.strings.items()):
        for message in strings:
            if not message.id or (repr(message.id), message.context) in translated_by_web:
                continue
            home = next((d for d, c in existing.items() if c.get(message.id, message.context) is not None), domain)
            homes.setdefault(home, Catalog(domain=home)).add(
                message.id, None, message.locations, auto_comments=message.auto_comments, context=message.context
            )
    return homes


def meaning(catalog: Catalog) -> list[tuple[Any, ...]]:
    """What a catalogue says, apart from its layout and file references."""
    return sorted((repr(m.id), m.context or "", repr(m.string), m.fuzzy) for m in catalog if m.id)


def render(package: Package, language: str, domain: str, catalog: Catalog) -> str:
    out = io.BytesIO()
    write_po(out, catalog, omit_header=True, sort_output=True, include_lineno=False, ignore_obsolete=True, width=100)
    body = out.getvalue().decode("utf-8").lstrip("\n")
    return HEADER.format(language=language, package=package.name, domain=domain) + body


def write(package: Package) -> list[str]:
    """Updates the catalogues whose strings changed; one left with no string is removed."""
    changes = []
    for language in LANGUAGES:
        existing = catalogues(package, language)
        homes = placed(package, existing, language)
        for domain in sorted(existing.keys() | homes.keys()):
            path = package.catalogue(language, domain)
            catalog = existing.get(domain) or Catalog(locale=language, domain=domain)
            before = meaning(catalog) if domain in existing else None
            catalog.update(homes.get(domain) or Catalog(domain=domain))
            if not meaning(catalog):
                if path.exists():
                    path.unlink()
                    changes.append(f"removed {rel(path)}")
            elif meaning(catalog) != before:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(render(package, language, domain, catalog), encoding="utf-8")
                changes.append(f"wrote {rel(path)}")
    return changes


def first_location(package: Package, message: Message) -> str:
    if not message.locations:
        return rel(package.root)
    where, line = message.locations[0]
    return f"{rel(package.root / where)}:{line}"


def untranslated(message: Message) -> bool:
    strings = message.string if isinstance(message.string, tuple | list) else (message.string,)
    return not all(strings)


def check_catalogues(package: Package) -> list[str]:
    problems = []
    for language in LANGUAGES:
        existing = catalogues(package, language)
        for domain, strings in sorted(placed(package, existing, language).items()):
            path = rel(package.catalogue(language, domain))
            for message in strings:
                if not message.id:  # the header
                    continue
                found = existing[domain].get(message.id, message.context) if domain in existing else None
                shown = message.id if isinstance(message.id, str) else message.id[0]
                where = first_location(package, message)
                if found is None:
                    problems.append(f"{where}: {shown!r} is missing from {path}")
                elif found.fuzzy:
                    problems.append(f"{where}: {shown!r} is fuzzy in {path}")
                elif untranslated(found):
                    problems.append(f"{where}: {shown!r} has no {language} translation in {path}")
    return problems


@dataclass
class TemplateText:
    """A template's literal text (its TemplateData), each {{ ... }} output as EXPRESSION, and the
    line each piece starts on, to name where bare text stands."""

    text: str
    starts: list[int]
    lines: list[int]

    def line_at(self, offset: int) -> int:
        i = bisect.bisect_right(self.starts, offset) - 1
        return self.lines[i] + self.text.count("\n", self.starts[i], offset)


def template_text(environment: Environment, source: str, name: str) -> TemplateText:
    parts: list[str] = []
    starts: list[int] = []
    lines: list[int] = []
    size = 0
    for output in environment.parse(source, name).find_all(nodes.Output):
        for node in output.nodes:
            piece = node.data if isinstance(node, nodes.TemplateData) else EXPRESSION
            starts.append(size)
            lines.append(node.lineno)
            parts.append(piece)
            size += len(piece)
    return TemplateText("".join(parts), starts or [0], lines or [1])


def visible(text: str) -> tuple[int, str] | None:
    """Where the text's first word with a letter starts, and the text; None when it is only space,
    punctuation, digits, symbols, entities, expressions and addresses (a block that fills in an
    href of its base: ``{% block home %}/console/{% endblock %}``)."""
    text = text.replace(EXPRESSION, " ")  # an expression ends a word (same length: offsets hold)
    for word in re.finditer(r"\S+", text):
        if not ADDRESS.match(word.group()) and LETTER.search(ENTITY.sub(" ", word.group())):
            return word.start(), " ".join(ENTITY.sub(" ", text).split())
    return None


def bare_text(environment: Environment, path: Path, name: str) -> list[str]:
    page = template_text(environment, path.read_text(encoding="utf-8"), name)
    problems = []

    def report(offset: int, what: str, text: str) -> None:
        problems.append(f"{rel(path)}:{page.line_at(offset)}: {what} {text[:60]!r} outside _() or {{% trans %}}")

    position = 0
    for part in HTML_PARTS.finditer(page.text):
        if (shown := visible(page.text[position : part.start()])) is not None:
            report(position + shown[0], "text", shown[1])
        position = part.end()
        tag = part.group()
        if tag.startswith("<!--") or NOT_SHOWN.match(tag):
            continue
        attributes = [(a.start(), a.group(1).lower(), a.group(2)[1:-1]) for a in ATTRIBUTE.finditer(tag)]
        names = VISIBLE_ATTRIBUTES
        if INPUT.match(tag) and any(n == "type" and v.lower() in BUTTON_TYPES for _, n, v in attributes):
            names = names | {"value"}
        for start, attribute, value in attributes:
            if attribute in names and (shown := visible(value)) is not None:
                report(part.start() + start, f"{attribute}=", shown[1])
    if (shown := visible(page.text[position:])) is not None:
        report(position + shown[0], "text", shown[1])
    return problems


def check_templates(package: Package, environment: Environment) -> list[str]:
    problems = []
    for template in sorted(package.templates.rglob("*.html")):
        problems += bare_text(environment, template, template.relative_to(package.templates).as_posix())
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="extract every string into its catalogue")
    parser.add_argument("packages", nargs="*", type=Path, help="package directories (default: every web package)")
    args = parser.parse_args(argv)
    roots = args.packages or web_packages()
    problems: list[str] = []
    environment = rendering_environment()
    for root in roots:
        package = extract(root, environment)
        if args.write:
            for change in write(package):
                print(f"i18n: {change}")
        problems += check_catalogues(package) + check_templates(package, environment)
    for problem in problems:
        print(problem)
    if problems:
        print(f"i18n: {len(problems)} problem(s); `deploy/tools/i18n.py --write` adds missing strings, "
              "then translate them (msgstr)", file=sys.stderr)  # fmt: skip
        return 0 if args.write else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
