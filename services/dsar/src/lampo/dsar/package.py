"""Access and portability packages: a ZIP built from the participants' (unsealed) results.

Layout::

    manifest.json            request, categories, sources, legal bases, participants, files
    data/<category>.json     {participant: what it holds in that category}
    data/<category>[-<part>].csv   tabular data (lists of flat records), flattened with dotted keys
    recordings/<participant>-<id>.<ext>   audio, taken out of the JSON (``audio_base64``)

A participant's result is any JSON; top-level keys that are categories are filed under that
category, anything else under the participant's first configured category (``other`` if none).
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lampo.contracts.categories import Category
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


def _flat(item: Mapping[str, Any], prefix: str = "") -> dict[str, Any] | None:
    """Flatten nested dicts with dotted keys; None when a value is a list (not tabular)."""
    out: dict[str, Any] = {}
    for key, value in item.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            inner = _flat(value, f"{name}.")
            if inner is None:
                return None
            out.update(inner)
        elif isinstance(value, list):
            return None
        else:
            out[name] = value
    return out


def _tables(value: Any, name: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """Lists of flat records within ``value`` (the value itself or one level of named parts)."""
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        rows = [_flat(v) for v in value]
        if all(r is not None for r in rows):
            return [(name, [r for r in rows if r is not None])]
        return []
    if isinstance(value, Mapping):
        found: list[tuple[str, list[dict[str, Any]]]] = []
        for key, inner in value.items():
            if isinstance(inner, list):
                found += _tables(inner, f"{name}-{_safe(str(key))}")
        return found
    return []


def _csv(rows: list[dict[str, Any]]) -> bytes:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue().encode()


class _Collector:
    def __init__(self) -> None:
        self.audio: dict[str, bytes] = {}
        self.sources: set[str] = set()
        self.legal_bases: set[str] = set()

    def walk(self, value: Any, participant: str) -> Any:
        """Take audio out into files, note sources and legal bases; returns the cleaned value."""
        if isinstance(value, list):
            return [self.walk(v, participant) for v in value]
        if not isinstance(value, dict):
            return value
        out = {k: self.walk(v, participant) for k, v in value.items() if k != "audio_base64"}
        for key in ("source_system", "source", "origin"):
            if isinstance(value.get(key), str):
                self.sources.add(value[key])
        if isinstance(value.get("legal_basis"), str):
            self.legal_bases.add(value["legal_basis"])
        if isinstance(value.get("audio_base64"), str):
            try:
                audio = base64.b64decode(value["audio_base64"], validate=True)
            except (binascii.Error, ValueError):
                out["audio_file"] = None
                out["audio_error"] = "not base64"
                return out
            ident = value.get("recording_id") or value.get("id") or f"{len(self.audio) + 1}"
            ext = _AUDIO_EXT.get(str(value.get("media_type", "")), "bin")
            path = f"recordings/{_safe(participant)}-{_safe(str(ident))}.{ext}"
            self.audio[path] = self.audio.get(path, b"") + audio  # chunks of one recording, in order
            out["audio_file"] = path
        return out


def build(
    *,
    request: Mapping[str, Any],
    results: Mapping[str, Any],
    participants: Mapping[str, Mapping[str, Any]],
    participant_categories: Mapping[str, Sequence[str]],
    portability: bool,
) -> BuiltPackage:
    """``results``: participant -> its unsealed result; ``participants``: participant -> status
    facts for the manifest."""
    collector = _Collector()
    by_category: dict[str, dict[str, Any]] = {}
    for participant, result in sorted(results.items()):
        value = portable(result) if portability else result
        value = collector.walk(value, participant)
        fallback = next(iter(participant_categories.get(participant, ())), "other")
        if isinstance(value, dict) and value and all(k in _CATEGORIES for k in value):
            parts = value
        elif value in (None, {}, []):
            continue
        else:
            parts = {fallback: value}
        for category, data in parts.items():
            if data in (None, {}, []):
                continue
            by_category.setdefault(category, {})[participant] = data

    files: dict[str, bytes] = {}
    for category, per_participant in sorted(by_category.items()):
        files[f"data/{category}.json"] = json.dumps(per_participant, ensure_ascii=False, indent=2, default=str).encode()
        for participant, data in per_participant.items():
            for name, rows in _tables(data, category):
                path = f"data/{name}.csv" if len(per_participant) == 1 else f"data/{name}-{_safe(participant)}.csv"
                files[path] = _csv(rows)
    files.update(collector.audio)

    manifest = {
        "request": dict(request),
        "format": "portability" if portability else "access",
        "categories": sorted(by_category),
        "sources": sorted(collector.sources),
        "legal_bases": sorted(collector.legal_bases),
        "participants": {p: dict(facts) for p, facts in sorted(participants.items())},
        "files": sorted(files),
    }
    if portability:
        manifest["scope"] = "data the subject provided, processed on the basis of consent or contract (GDPR Art. 20)"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        entries = {"manifest.json": json.dumps(manifest, ensure_ascii=False, indent=2, default=str).encode(), **files}
        for path, content in entries.items():
            archive.writestr(zipfile.ZipInfo(path, date_time=_ZIP_TIME), content, compress_type=zipfile.ZIP_DEFLATED)
    data = buffer.getvalue()
    return BuiltPackage(data, hashlib.sha256(data).hexdigest(), ["manifest.json", *sorted(files)])
