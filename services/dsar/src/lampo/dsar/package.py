"""Access and portability packages: a ZIP built from the participants' (unsealed) results.

Layout::

    manifest.json            request, controller, categories, sources, legal bases, participants, files
    data/<category>.json     {participant: what it holds in that category}
    data/<category>[-<part>].csv   tabular data (lists of flat records), flattened with dotted keys
    recordings/<participant>-<id>.<ext>   audio, taken out of the JSON (``audio_base64``)

CSV cells that a spreadsheet would read as a formula (text starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return: OWASP's CSV injection rule) are prefixed with a single quote,
column names too; the JSON files keep every value exactly as given.

A participant's result is any JSON; top-level keys that are categories are filed under that
category, anything else under the participant's first configured category (``other`` if none).

Built by :class:`PackageBuilder` from pieces as they are read (a streamed result part by part,
see ``lampo.participant``): items go to a temporary file per category, participant and list as
they come, audio to another, so memory holds one part at a time, never the whole subject; the
ZIP is then written to a temporary file from them, one category at a time. Every one of these
files is a ``lampo.crypto.scratch_file``: encrypted on disk under a key only the open file holds.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
import operator
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from lampo.contracts.categories import Category
from lampo.controller import controller
from lampo.crypto import scratch_file
from lampo.dsar.domain import portable

_CATEGORIES = {c.value for c in Category}
_AUDIO_EXT = {"audio/mpeg": "mp3", "audio/wav": "wav", "audio/x-wav": "wav", "audio/ogg": "ogg", "audio/flac": "flac"}
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
# A fixed timestamp for entries, so the same content gives the same bytes (and sha256).
_ZIP_TIME = (2000, 1, 1, 0, 0, 0)


@dataclass
class BuiltPackage:
    data: bytes
    sha256: str
    files: list[str] = field(default_factory=list)


def _safe(name: str) -> str:
    return _SAFE.sub("_", name)[:80] or "item"


# Keys the walk looks for (sources, legal bases, audio).
_NOTED = frozenset({"source_system", "source", "origin", "legal_basis", "audio_base64"})
_NOTED_STR = ("source_system", "source", "origin", "legal_basis")


@dataclass(frozen=True, eq=False)
class _Shape:
    """Records of one key order whose values are scalars, or at ``nested`` positions records
    of scalars (of their own key order) with none of the keys the walk looks for: such records
    need no recursive walk, and each is a CSV row without a look-up per value. A heavy
    subject's 50,000 readings are all of one shape.

    Compared and hashed by identity: a builder makes one per key order (``_shapes``), and a
    table looks its column plan up per row, where hashing the tuples cost half its time."""

    nested: tuple[tuple[int, tuple[str, ...]], ...]
    noted: tuple[str, ...]  # its keys among source_system, source, origin, legal_basis
    names: tuple[str, ...]  # the CSV column of each value once flattened


def _shape_of(item: dict[str, Any]) -> _Shape | None:
    if "audio_base64" in item:
        return None
    nested: list[tuple[int, tuple[str, ...]]] = []
    names: list[str] = []
    for position, (key, value) in enumerate(item.items()):
        if type(value) is dict:
            if not _NOTED.isdisjoint(value) or not _CONTAINERS_SET.isdisjoint(map(type, value.values())):
                return None
            nested.append((position, tuple(value)))
            names += [f"{key}.{inner}" for inner in value]
        elif type(value) is list:
            return None
        else:
            names.append(str(key))
    return _Shape(tuple(nested), tuple(k for k in _NOTED_STR if k in item), tuple(names))


def _flattened(item: dict[str, Any], shape: _Shape) -> list[Any] | None:
    """The record's values in its shape's column order, or None if it is not of that shape."""
    values = list(item.values())
    kinds = list(map(type, values))
    if list in kinds or kinds.count(dict) != len(shape.nested):
        return None
    for position, keys in reversed(shape.nested):
        inner = values[position]
        if type(inner) is not dict or tuple(inner) != keys:
            return None
        flat = list(inner.values())
        if not _CONTAINERS_SET.isdisjoint(map(type, flat)):
            return None
        values[position : position + 1] = flat
    return values


def _columns(items: list[Any], shape: _Shape) -> list[list[Any]] | None:
    """Every record of a piece flattened at once, column by column, when all are of the first
    one's shape (the same keys, scalars, nested records of the same keys): C-level maps instead
    of a Python step per value or per row. The columns in the shape's order, or None when the
    records are not all of it (then each is taken on its own)."""
    keys = tuple(items[0])
    if set(map(type, items)) != {dict} or set(map(len, items)) != {len(keys)}:
        return None
    nested = dict(shape.nested)
    columns: list[list[Any]] = []
    try:
        for position, key in enumerate(keys):
            column = list(map(operator.itemgetter(key), items))
            inner_keys = nested.get(position)
            if inner_keys is None:
                columns.append(column)
                continue
            if set(map(type, column)) != {dict} or set(map(len, column)) != {len(inner_keys)}:
                return None
            columns += [list(map(operator.itemgetter(inner), column)) for inner in inner_keys]
    except KeyError:  # a record without one of the keys: another shape
        return None
    if any(not _CONTAINERS_SET.isdisjoint(map(type, column)) for column in columns):
        return None
    return columns


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A cell that may start like a formula, in CSV text: at a line's start or after a comma, bare or
# just inside its opening quote (csv quotes any field holding a CR). It may also match inside a
# quoted field, or a negative number: then the rows are looked at value by value.
_FORMULA_CELL = re.compile(r'(?:^|,)"?[=+\-@\t\r]', re.MULTILINE)


def neutralised(value: Any) -> Any:
    """OWASP's rule against CSV (formula) injection: text starting with ``=``, ``+``, ``-``,
    ``@``, a tab or a CR gets a leading single quote; anything else is left as it is."""
    return "'" + value if type(value) is str and value.startswith(_FORMULA_START) else value


def _csv_text(rows: Sequence[Sequence[Any]]) -> str:
    text = _plain_csv(rows)
    if text is None:
        buffer = io.StringIO()
        csv.writer(buffer).writerows(rows)
        text = buffer.getvalue()
    return text


def _plain_csv(rows: Sequence[Sequence[Any]]) -> str | None:
    """The rows as ``csv.writer`` writes them, when no field needs quoting (every value text,
    none holding a comma, a quote or a line break): joined, six times quicker than the csv
    module for 50,000 readings. None when a row needs the csv module."""
    if not rows:
        return ""
    try:
        text = "\r\n".join([",".join(row) for row in rows]) + "\r\n"
    except TypeError:  # a value that is not text
        return None
    lines = len(rows)
    if (
        '"' in text
        or text.count(",") != sum(len(row) for row in rows) - lines
        or text.count("\n") != lines
        or text.count("\r") != lines
        or any(len(row) == 1 and not row[0] for row in rows)  # csv writes a lone empty field as ""
    ):
        return None
    return text


def _texts(column: list[Any]) -> list[Any]:
    """A column's values as ``csv.writer`` writes them: text as it is, None as an empty field,
    a float as its ``repr``, anything else as its ``str``."""
    kinds = set(map(type, column))
    if kinds <= {str}:
        return column
    if kinds <= {str, type(None)}:
        return ["" if v is None else v for v in column]
    return [v if type(v) is str else "" if v is None else repr(v) if isinstance(v, float) else str(v) for v in column]


def _plain_columns_csv(columns: Sequence[list[str]]) -> str | None:
    """Rows given column by column (text, as :func:`_texts` gives them), as ``csv.writer``
    writes them when no field needs quoting (as :func:`_plain_csv`): joined row by row in C, no
    Python step per value. None when a row needs the csv module."""
    rows = len(columns[0]) if columns else 0
    if not rows:
        return ""
    if len(columns) == 1 and "" in columns[0]:
        return None  # csv writes a lone empty field as ""
    text = "\r\n".join(map(",".join, zip(*columns, strict=True))) + "\r\n"
    if (
        '"' in text
        or text.count(",") != (len(columns) - 1) * rows
        or text.count("\n") != rows
        or text.count("\r") != rows
    ):
        return None
    return text


_FORMULA_ORDS = tuple(sorted(map(ord, _FORMULA_START)))


def _may_start_formula(column: list[str]) -> bool:
    """Whether a value of a column of text may start like a formula: the first characters of
    its values lie between those of its least and its greatest non-empty value (two C-level
    passes instead of a look at each value)."""
    low = min(column, default="") or min(filter(None, column), default="")
    if not low:
        return False
    first, last = ord(low[0]), ord(max(column)[0])
    return any(first <= o <= last for o in _FORMULA_ORDS)


class _Table:
    """A list's CSV, written as its rows come: rows go to a temporary file with the columns
    known so far (columns are only ever added, at the end); the header and the padding of
    earlier, shorter rows are written when the table is copied into the ZIP. Dropped as soon
    as one row is not a flat record (the list is then not tabular)."""

    def __init__(self) -> None:
        self.columns: dict[str, int] = {}
        self._where: dict[str, dict[Any, int]] = {}  # prefix -> key -> column
        # the rows' widths, in order, as runs: [width, rows of that width]
        self.widths: list[list[int]] = []
        self.rows: IO[str] | None = scratch_file(text=True)

    def _widths(self, width: int, count: int = 1) -> None:
        if self.widths and self.widths[-1][0] == width:
            self.widths[-1][1] += count
        elif count:
            self.widths.append([width, count])

    def add_columns(self, shape: _Shape, columns: list[list[Any]]) -> None:
        """Rows of records of one shape, given column by column in the shape's order."""
        if self.rows is None or not columns or not columns[0]:
            return
        count = len(columns[0])
        at_columns = [self.columns.setdefault(name, len(self.columns)) for name in shape.names]
        if at_columns != list(range(len(self.columns))):  # not these very columns in this order
            placed: list[list[Any]] = [[""] * count for _ in self.columns]
            for at, column in zip(at_columns, columns, strict=True):
                placed[at] = column
            columns = placed
        self._widths(len(columns), count)
        texts = list(map(_texts, columns))
        text = _plain_columns_csv(texts)
        if text is not None and not any(map(_may_start_formula, texts)):
            self.rows.write(text)
            return
        self._write(list(zip(*columns, strict=True)))  # quoting, or a cell to look at: value by value

    def add_shaped(self, shaped: Iterable[tuple[_Shape, Sequence[Any]]]) -> None:
        """Rows of records already flattened in their shape's order."""
        if self.rows is None:
            return
        rows = []
        plans: dict[_Shape, list[int] | None] = {}
        for shape, values in shaped:
            if shape not in plans:
                at_columns = [self.columns.setdefault(name, len(self.columns)) for name in shape.names]
                plans[shape] = None if at_columns == list(range(len(at_columns))) else at_columns
            where = plans[shape]
            if where is None and len(values) == len(self.columns):
                row = values  # columns in this very order: the usual case
            else:
                row = [""] * len(self.columns)
                for at, value in zip(where or range(len(values)), values, strict=True):
                    row[at] = value
            rows.append(row)
            self._widths(len(row))
        self._write(rows)

    def add(self, items: Iterable[Any]) -> None:
        if self.rows is None:
            return
        rows = []
        for item in items:
            row: list[Any] = [""] * len(self.columns)
            if type(item) is not dict or not self._fill(item, "", row):
                self.close()  # not a flat record: the list is not a table
                return
            rows.append(row)
            self._widths(len(row))
        self._write(rows)

    def _write(self, rows: Sequence[Sequence[Any]]) -> None:
        # a piece's rows formatted at once and written in one go (a write per row costs more
        # than formatting it); csv writes None as an empty field. A cell that looks like a
        # formula is neutralised: the text is searched once, values only when it may hold one.
        assert self.rows is not None
        text = _csv_text(rows)
        if _FORMULA_CELL.search(text):
            text = _csv_text([[neutralised(v) for v in row] for row in rows])
        self.rows.write(text)

    def _fill(self, item: dict[str, Any], prefix: str, row: list[Any]) -> bool:
        """Put a record's values in their columns (nested records' with dotted names); False if
        it holds a list. Column look-ups per prefix and key: no name built per value."""
        where = self._where.get(prefix)
        if where is None:
            where = self._where[prefix] = {}
        for key, value in item.items():
            kind = type(value)
            if kind is dict:
                if not self._fill(value, f"{prefix}{key}.", row):
                    return False
            elif kind is list:
                return False
            else:
                at = where.get(key)
                if at is None:
                    at = where[key] = self.columns.setdefault(f"{prefix}{key}", len(self.columns))
                if at >= len(row):
                    row.extend([""] * (at + 1 - len(row)))
                row[at] = "" if value is None else value
        return True

    @property
    def usable(self) -> bool:
        return self.rows is not None and bool(self.widths)

    def copy_to(self, out: IO[bytes]) -> None:
        assert self.rows is not None
        text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
        csv.writer(text).writerow([neutralised(c) for c in self.columns])
        self.rows.seek(0)
        width = len(self.columns)
        if all(w == width for w, _ in self.widths):  # the usual case: copied as it is
            while chunk := self.rows.read(1024 * 1024):
                text.write(chunk)
        else:  # rows written before a column appeared get its empty field
            writer = csv.writer(text)
            for row in csv.reader(self.rows):
                writer.writerow(row + [""] * (width - len(row)))
        text.flush()
        text.detach()

    def close(self) -> None:
        if self.rows is not None:
            self.rows.close()
            self.rows = None


_CONTAINERS = (dict, list)
_CONTAINERS_SET = frozenset(_CONTAINERS)


class _List:
    """A list in a participant's result (``path``): its items as JSON text in a temporary file."""

    def __init__(self) -> None:
        self.file: IO[bytes] = scratch_file()  # closed by the builder
        self.count = 0
        self.table = _Table()

    def add(
        self,
        items: list[Any],
        shaped: list[tuple[_Shape, Sequence[Any]]] | None = None,
        columns: tuple[_Shape, list[list[Any]]] | None = None,
    ) -> None:
        """Items, and their CSV rows: ``shaped`` (each flattened with its shape), ``columns``
        (all of one shape, column by column), or neither (each walked into its columns)."""
        if not items:
            return
        # orjson: a heavy subject's tens of MB of JSON in a fraction of json's time
        text = orjson.dumps(items, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_PASSTHROUGH_DATETIME)
        self.file.write(b"," if self.count else b"")
        self.file.write(memoryview(text)[1:-2])  # the items without the list's brackets
        self.count += len(items)
        if columns is not None:
            self.table.add_columns(*columns)
        elif shaped is not None:
            self.table.add_shaped(shaped)
        else:
            self.table.add(items)

    def copy_to(self, out: IO[bytes]) -> None:
        out.write(b"[")
        self.file.seek(0)
        while chunk := self.file.read(1024 * 1024):
            out.write(chunk)
        out.write(b"\n]" if self.count else b"]")

    def close(self) -> None:
        self.file.close()
        self.table.close()


_UNKNOWN: Any = object()


class PackageBuilder:
    """Builds a package from participants' results given piece by piece (:meth:`add_items`,
    :meth:`add_attachment`, :meth:`add_result` for a whole one), then :meth:`finish`."""

    def __init__(
        self,
        *,
        participant_categories: Mapping[str, Sequence[str]],
        portability: bool,
        controller_facts: Mapping[str, Any] | None = None,
    ) -> None:
        self.participant_categories = participant_categories
        self.portability = portability
        # who the package comes from, as the privacy statement names the controller
        self.controller = dict(controller_facts) if controller_facts is not None else controller().as_dict()
        # (category, participant) -> key (None: the value is the list itself) -> _List or a value
        self.nodes: dict[tuple[str, str], dict[str | None, Any]] = {}
        self.audio: IO[bytes] = scratch_file()  # closed by close()
        self.audio_at: dict[str, list[tuple[int, int]]] = {}
        self.sources: set[str] = set()
        self.legal_bases: set[str] = set()
        self._shapes: dict[tuple[Any, ...], _Shape | None] = {}
        # per participant: audio file of its last attachment (its parts may come between another's)
        self._attachment: dict[str, str | None] = {}

    # -- taking results in ---------------------------------------------------------------------

    def _fallback(self, participant: str) -> str:
        return next(iter(self.participant_categories.get(participant, ())), "other")

    def _list(self, participant: str, path: Sequence[str]) -> _List:
        """The list at ``path``: (category,) or (category, key); a first element that is not a
        category files it under the participant's first category."""
        if path and path[0] in _CATEGORIES:
            category, key = path[0], (path[1] if len(path) > 1 else None)
        else:
            category, key = self._fallback(participant), (path[0] if path else None)
        node = self.nodes.setdefault((category, participant), {})
        found = node.get(key)
        if not isinstance(found, _List):
            found = node[key] = _List()
        return found

    def add_items(self, participant: str, path: Sequence[str], items: list[Any]) -> None:
        """Items of the list at ``path`` ((category,) or (category, key)) of a participant's result."""
        self._attachment[participant] = None
        if self.portability:
            items = portable(items)
        target = self._list(participant, path)
        if items and type(items[0]) is dict and isinstance(first := _shape_of(items[0]), _Shape):
            columns = _columns(items, first)
            if columns is not None:  # a page of one shape (a heavy subject's readings): all at once
                for key in first.noted:
                    found = set(map(operator.itemgetter(key), items))
                    (self.legal_bases if key == "legal_basis" else self.sources).update(
                        v for v in found if type(v) is str
                    )
                target.add(items, columns=(first, columns))
                return
        shaped: list[tuple[_Shape, Sequence[Any]]] | None = []
        for i, item in enumerate(items):
            values = None
            if type(item) is dict:
                keys = tuple(item)
                shape = self._shapes.get(keys, _UNKNOWN)
                if shape is _UNKNOWN:
                    shape = self._shapes[keys] = _shape_of(item)
                if isinstance(shape, _Shape):
                    values = _flattened(item, shape)
            if values is None:  # not a plain record: walked the long way, its CSV too
                items[i] = self._walk(item, participant)
                shaped = None
                continue
            for key in shape.noted:
                found = item[key]
                if type(found) is str:
                    (self.legal_bases if key == "legal_basis" else self.sources).add(found)
            if shaped is not None:
                shaped.append((shape, values))
        target.add(items, shaped)

    def add_attachment(self, participant: str, path: Sequence[str], item: dict[str, Any], data: bytes) -> None:
        """An item with its content (audio) beside it; :meth:`add_more` appends to the content."""
        self._attachment[participant] = None
        if self.portability and not portable([item]):
            return
        cleaned = self._walk(item, participant)
        audio = self._audio_path(item, participant)
        cleaned["audio_file"] = audio
        self._write_audio(audio, data)
        self._attachment[participant] = audio
        self._list(participant, path).add([cleaned])

    def add_more(self, participant: str, data: bytes) -> None:
        """More content of the participant's last attachment."""
        audio = self._attachment.get(participant)
        if audio is not None:  # None: the attachment was left out (portability)
            self._write_audio(audio, data)

    def add_result(self, participant: str, result: Any) -> None:
        """A whole (not streamed) result."""
        value = portable(result) if self.portability else result
        if value in (None, {}, []):
            return
        if isinstance(value, dict) and all(k in _CATEGORIES for k in value):
            parts = value
        else:
            parts = {self._fallback(participant): value}
        saved, self.portability = self.portability, False  # already applied to the whole
        try:
            for category, data in parts.items():
                if data in (None, {}, []):
                    continue
                if isinstance(data, list):
                    self.add_items(participant, (category,), data)
                elif isinstance(data, dict):
                    for key, inner in data.items():
                        if isinstance(inner, list):
                            self._list(participant, (category, key))
                            self.add_items(participant, (category, key), inner)
                        else:
                            node = self.nodes.setdefault((category, participant), {})
                            node[key] = self._walk(inner, participant)
                else:
                    self.nodes.setdefault((category, participant), {})[None] = self._walk(data, participant)
        finally:
            self.portability = saved

    def _walk(self, value: Any, participant: str) -> Any:
        """Take audio out into files, note sources and legal bases (in place; returns the value)."""
        if type(value) is list:
            for i, v in enumerate(value):
                if type(v) in _CONTAINERS:
                    value[i] = self._walk(v, participant)
            return value
        if type(value) is not dict:
            return value
        for key in ("source_system", "source", "origin"):
            found = value.get(key)
            if isinstance(found, str):
                self.sources.add(found)
        basis = value.get("legal_basis")
        if isinstance(basis, str):
            self.legal_bases.add(basis)
        for key, inner in value.items():
            if type(inner) in _CONTAINERS and key != "audio_base64":
                value[key] = self._walk(inner, participant)
        if "audio_base64" in value:
            encoded = value.pop("audio_base64")
            try:
                if not isinstance(encoded, str):
                    raise ValueError("not a string")
                audio = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                value["audio_file"] = None
                value["audio_error"] = "not base64"
                return value
            path = self._audio_path(value, participant)
            self._write_audio(path, audio)
            value["audio_file"] = path
        return value

    def _audio_path(self, item: Mapping[str, Any], participant: str) -> str:
        ident = item.get("recording_id") or item.get("id") or f"{len(self.audio_at) + 1}"
        ext = _AUDIO_EXT.get(str(item.get("media_type", "")), "bin")
        return f"recordings/{_safe(participant)}-{_safe(str(ident))}.{ext}"

    def _write_audio(self, path: str, data: bytes) -> None:
        # chunks of one recording, in order, make one file
        self.audio_at.setdefault(path, []).append((self.audio.seek(0, io.SEEK_END), len(data)))
        self.audio.write(data)

    # -- the ZIP -------------------------------------------------------------------------------

    def finish(
        self, out: IO[bytes], *, request: Mapping[str, Any], participants: Mapping[str, Mapping[str, Any]]
    ) -> list[str]:
        """Write the ZIP to ``out`` (a binary file); returns the files in it, manifest first."""
        by_category: dict[str, dict[str, dict[str | None, Any]]] = {}
        for (category, participant), node in sorted(self.nodes.items()):
            if not _empty(node):
                by_category.setdefault(category, {})[participant] = node
        tables: dict[str, _Table] = {}
        for category, per_participant in sorted(by_category.items()):
            for participant, node in per_participant.items():
                for key, value in node.items():
                    if isinstance(value, _List) and value.table.usable:
                        name = category if key is None else f"{category}-{_safe(str(key))}"
                        path = (
                            f"data/{name}.csv" if len(per_participant) == 1 else f"data/{name}-{_safe(participant)}.csv"
                        )
                        tables[path] = value.table
        files = sorted([*(f"data/{c}.json" for c in by_category), *tables, *self.audio_at])
        manifest = {
            "request": dict(request),
            "controller": self.controller,
            "format": "portability" if self.portability else "access",
            "categories": sorted(by_category),
            "sources": sorted(self.sources),
            "legal_bases": sorted(self.legal_bases),
            "participants": {p: dict(facts) for p, facts in sorted(participants.items())},
            "files": files,
        }
        if self.portability:
            manifest["scope"] = (
                "data the subject provided, processed on the basis of consent or contract (GDPR Art. 20)"
            )
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=_LEVEL) as archive:

            def entry(path: str, *, stored: bool = False) -> IO[bytes]:
                info = zipfile.ZipInfo(path, date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
                # Python 3.11 reads a ZipInfo's level only from this private attribute
                info._compresslevel = _LEVEL  # type: ignore[attr-defined]
                return archive.open(info, "w", force_zip64=True)

            with entry("manifest.json") as f:
                f.write(json.dumps(manifest, ensure_ascii=False, indent=2, default=str).encode())
            for category, per_participant in sorted(by_category.items()):
                with entry(f"data/{category}.json") as f:
                    _write_category(f, per_participant)
            for path, table in sorted(tables.items()):
                with entry(path) as f:
                    table.copy_to(f)
            for path in sorted(self.audio_at):
                # audio is already compressed (or random): stored, not deflated
                with entry(path, stored=True) as f:
                    for offset, size in self.audio_at[path]:
                        self.audio.seek(offset)
                        f.write(self.audio.read(size))
        return ["manifest.json", *files]

    def close(self) -> None:
        for node in self.nodes.values():
            for value in node.values():
                if isinstance(value, _List):
                    value.close()
        self.audio.close()

    def __enter__(self) -> PackageBuilder:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


# Deflate level of the package's entries: 1 is several times quicker than the default (6) on
# the tens of MB of JSON and CSV of a heavy subject, for a package ~10-20 % larger.
_LEVEL = 1


def _empty(node: Mapping[str | None, Any]) -> bool:
    """A participant's data in a category that the package leaves out (None, {} or [])."""
    if not node:
        return True
    if list(node) == [None]:
        value = node[None]
        return value.count == 0 if isinstance(value, _List) else value in (None, {}, [])
    return False


def _write_category(out: IO[bytes], per_participant: Mapping[str, Mapping[str | None, Any]]) -> None:
    """``{participant: data}``, each participant's lists copied from their temporary files."""
    out.write(b"{")
    for i, (participant, node) in enumerate(per_participant.items()):
        out.write(b"," if i else b"")
        out.write(f"\n{json.dumps(participant, ensure_ascii=False)}: ".encode())
        if list(node) == [None]:
            _write_value(out, node[None])
            continue
        out.write(b"{")
        for j, (key, value) in enumerate(node.items()):
            out.write(b"," if j else b"")
            out.write(f"\n{json.dumps(key, ensure_ascii=False)}: ".encode())
            _write_value(out, value)
        out.write(b"\n}")
    out.write(b"\n}\n")


def _write_value(out: IO[bytes], value: Any) -> None:
    if isinstance(value, _List):
        value.copy_to(out)
    else:
        out.write(json.dumps(value, ensure_ascii=False, indent=2, default=str).encode())


def build(
    *,
    request: Mapping[str, Any],
    results: Mapping[str, Any],
    participants: Mapping[str, Mapping[str, Any]],
    participant_categories: Mapping[str, Sequence[str]],
    portability: bool,
) -> BuiltPackage:
    """The package of whole results in memory: ``results``: participant -> its unsealed
    result; ``participants``: participant -> status facts for the manifest."""
    with PackageBuilder(participant_categories=participant_categories, portability=portability) as builder:
        for participant, result in sorted(results.items()):
            builder.add_result(participant, result)
        buffer = io.BytesIO()
        files = builder.finish(buffer, request=request, participants=participants)
    data = buffer.getvalue()
    return BuiltPackage(data, hashlib.sha256(data).hexdigest(), files)


def chunks(file: IO[bytes], size: int = 1024 * 1024) -> Iterator[bytes]:
    file.seek(0)
    while chunk := file.read(size):
        yield chunk
