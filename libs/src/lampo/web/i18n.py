"""Languages and catalogues of the web pages: Finnish first, English second.

Every label is an English msgid looked up in Babel catalogues (``.po`` files, compiled in memory
when a site starts: no ``.mo`` is committed). A site merges lampo.web's own catalogue with every
``*.po`` of its package's ``locale/<lang>/LC_MESSAGES/``; ``deploy/tools/i18n.py`` keeps them
complete (``make lint`` fails on a missing or untranslated string).
"""

from __future__ import annotations

import io
from datetime import date, datetime
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Final
from zoneinfo import ZoneInfo

from babel.dates import format_date as _babel_date
from babel.dates import format_datetime as _babel_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LANGUAGES: Final = ("fi", "en")
"""The languages every page speaks, the default first."""
DEFAULT: Final = LANGUAGES[0]
HELSINKI: Final = ZoneInfo("Europe/Helsinki")


def N_(message: str) -> str:
    """Marks ``message`` as a msgid for the catalogues (extracted like ``_``), translated later."""
    return message


def _catalogue_files(package: str, lang: str) -> list[Traversable]:
    folder = files(package).joinpath("locale", lang, "LC_MESSAGES")
    if not folder.is_dir():
        return []
    return sorted((f for f in folder.iterdir() if f.name.endswith(".po")), key=lambda f: f.name)


def load(packages: list[str], lang: str) -> Translations:
    """The merged translations of ``packages`` (later ones win on the same msgid) for ``lang``.
    Fuzzy entries are left out, as gettext would."""
    merged = Translations()
    for package in packages:
        for po in _catalogue_files(package, lang):
            with po.open("rb") as fp:
                catalogue = read_po(fp, locale=lang)
            buffer = io.BytesIO()
            write_mo(buffer, catalogue, use_fuzzy=False)
            buffer.seek(0)
            merged.merge(Translations(fp=buffer))
    return merged


def pick(value: str | None) -> str:
    """A supported language code, or the default."""
    return value if value in LANGUAGES else DEFAULT


def format_datetime(value: datetime | str | None, lang: str, form: str = "medium") -> str:
    """A moment in Finnish time, in ``lang``'s way of writing it ("" for none)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return _babel_datetime(value, form, tzinfo=HELSINKI, locale=lang)


def format_date(value: date | datetime | str | None, lang: str, form: str = "long") -> str:
    """A day in ``lang``'s way of writing it ("" for none); a moment is first put in Finnish time."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00")) if "T" in value else date.fromisoformat(value)
    if isinstance(value, datetime):
        value = value.astimezone(HELSINKI).date() if value.tzinfo else value.date()
    return _babel_date(value, form, locale=lang)
