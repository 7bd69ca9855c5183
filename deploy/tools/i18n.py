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

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_file
from babel.messages.pofile import read_po, write_po
from jinja2 import Environment, nodes

REPO = Path(__file__).resolve().parents[2]
LANGUAGES = ("fi",)
KEYWORDS = {**DEFAULT_KEYWORDS, "lazy_gettext": None, "lazy_ngettext": (1, 2)}
JINJA = "jinja2.ext:babel_extract"
JINJA_OPTIONS = {"trimmed": "true"}  # lampo.web renders with the same policy (ext.i18n.trimmed)
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


def extract(root: Path) -> Package:
    package = Package(root, package_name(root))
    for path, method, domain in sources(package):
        options = JINJA_OPTIONS if method == JINJA else None
        for line, message, comments, context in extract_from_file(method, path, KEYWORDS, ("i18n:",), options):
            catalog = package.strings.setdefault(domain, Catalog(domain=domain))
            where = path.relative_to(root).as_posix()  # in the package: the catalogue's file references
            catalog.add(message, None, [(where, line)], auto_comments=comments, context=context)
    return package


def read_catalogue(path: Path, language: str) -> Catalog | None:
    if not path.exists():
        return None
    with path.open("rb") as handle:
        return read_po(handle, locale=language, domain=path.stem)


def render(package: Package, language: str, domain: str, catalog: Catalog) -> str:
    out = io.BytesIO()
    write_po(out, catalog, omit_header=True, sort_output=True, include_lineno=False, ignore_obsolete=True, width=100)
    body = out.getvalue().decode("utf-8").lstrip("\n")
    return HEADER.format(language=language, package=package.name, domain=domain) + body


def write(package: Package) -> list[Path]:
    written = []
    for language in LANGUAGES:
        for domain, template in sorted(package.strings.items()):
            path = package.catalogue(language, domain)
            catalog = read_catalogue(path, language) or Catalog(locale=language, domain=domain)
            catalog.update(template)
            text = render(package, language, domain, catalog)
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
                written.append(path)
    return written


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
        for domain, template in sorted(package.strings.items()):
            path = package.catalogue(language, domain)
            catalog = read_catalogue(path, language)
            for message in template:
                if not message.id:
                    continue
                shown = message.id if isinstance(message.id, str) else message.id[0]
                found = catalog.get(message.id, message.context) if catalog else None
                if found is None:
                    problems.append(f"{first_location(package, message)}: {shown!r} is missing from {rel(path)}")
                elif found.fuzzy:
                    problems.append(f"{first_location(package, message)}: {shown!r} is fuzzy in {rel(path)}")
                elif untranslated(found):
                    problems.append(f"{first_location(package, message)}: {shown!r} has no {language} translation in {rel(path)}")
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


def visible(text: str) -> str | None:
    """The text with its letters, or None when it is only space, punctuation, digits, symbols."""
    plain = ENTITY.sub(" ", text).replace(EXPRESSION, " ")
    return " ".join(plain.split()) if LETTER.search(plain) else None


def bare_text(path: Path, name: str) -> list[str]:
    environment = Environment(extensions=["jinja2.ext.i18n"], autoescape=True)  # parsed, never rendered
    page = template_text(environment, path.read_text(encoding="utf-8"), name)
    problems = []

    def report(offset: int, what: str, text: str) -> None:
        problems.append(f"{rel(path)}:{page.line_at(offset)}: {what} {text[:60]!r} outside _() or {{% trans %}}")

    position = 0
    for part in HTML_PARTS.finditer(page.text):
        if (shown := visible(page.text[position : part.start()])) is not None:
            report(position, "text", shown)
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
                report(part.start() + start, f"{attribute}=", shown)
    if (shown := visible(page.text[position:])) is not None:
        report(position, "text", shown)
    return problems


def check_templates(package: Package) -> list[str]:
    problems = []
    for template in sorted(package.templates.rglob("*.html")):
        problems += bare_text(template, template.relative_to(package.templates).as_posix())
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="extract every string into its catalogue")
    parser.add_argument("packages", nargs="*", type=Path, help="package directories (default: every web package)")
    args = parser.parse_args(argv)
    roots = args.packages or web_packages()
    problems: list[str] = []
    for root in roots:
        package = extract(root)
        if args.write:
            for path in write(package):
                print(f"i18n: wrote {rel(path)}")
        problems += check_catalogues(package) + check_templates(package)
    for problem in problems:
        print(problem)
    if problems:
        print(f"i18n: {len(problems)} problem(s); `deploy/tools/i18n.py --write` adds missing strings, "
              "then translate them (msgstr)", file=sys.stderr)  # fmt: skip
        return 0 if args.write else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
