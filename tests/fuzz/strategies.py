"""Hypothesis strategies for every public event type (CONTRACTS.md, ``lampo.contracts.catalog``):
valid events built from the contract examples with varied identifiers, times and extensions,
and mutations of them: dropped and extra fields, wrong types, random strings in identifiers, huge
values, bad JSON, a broken envelope, unknown types, random bytes. Synthetic data only.

The valid ``data`` of each type is the one kept with the contract tests
(``libs/tests/contracts/conftest.py``), loaded from there so the examples live in one place."""

from __future__ import annotations

import copy
import importlib.util
import json
import string
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from lampo.contracts.catalog import EVENT_TYPES
from lampo.testing import synthetic_identity_code

_EXAMPLES_FILE = Path(__file__).parents[2] / "libs" / "tests" / "contracts" / "conftest.py"
_spec = importlib.util.spec_from_file_location("lampo_contract_examples", _EXAMPLES_FILE)
assert _spec and _spec.loader
_examples = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_examples)
EXAMPLES: dict[str, dict[str, Any]] = _examples.EXAMPLES

ROUTES: list[tuple[str, str]] = [(topic, t) for topic, types in EVENT_TYPES.items() for t in types]
"""(topic, event type) of every public event type."""

# A fixed, derandomized profile: the same examples on every run and every machine (CI
# reproducibility), few enough to keep the fuzz tests to seconds. LAMPO_FUZZ_EXAMPLES raises it
# for a longer local hunt.
settings.register_profile(
    "lampo-fuzz",
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# Identifier-shaped keys of the contracts: a valid event may carry any printable-ASCII value there.
IDENTIFIER_KEYS = frozenset(
    {
        "customer_number",
        "contract_id",
        "interaction_id",
        "invoice_number",
        "recording_id",
        "hold_id",
        "request_id",
        "task_id",
        "subject_id",
    }
)

identifiers = st.text(alphabet=string.ascii_letters + string.digits + "-_.:/", min_size=1, max_size=40)
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)).map(
    lambda d: d.isoformat().replace("+00:00", "Z")
)

# Strings a fuzzer should try: empty, whitespace, control characters, lone surrogates (valid JSON
# escapes, invalid UTF-8 once encoded), right-to-left marks, SQL and format tricks, very long ones.
nasty_strings = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "\ud800",
            "\udfff x",
            "\u202e",
            "%s%n",
            "'; DROP TABLE subjects; --",
            "../../etc/passwd",
            "null",
            "NaN",
            "1e999999",
            "-0",
            "0x1F",
            "999999999999999999999999999999.999",
            "2026-02-30T25:61:00Z",
            "010594Y9032",
            "131052-308T",
            "+358 40 123 4567",
            "a" * 5000,
            "€" * 3000,
        ]
    ),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    nasty_strings,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (dict keys and list indexes) into a JSON value."""
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            found.append((*prefix, k))
            found += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found.append((*prefix, i))
            found += _paths(v, (*prefix, i))
    return found


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


@st.composite
def valid_envelopes(draw: st.DrawFn, event_type: str) -> dict[str, Any]:
    """A CloudEvent (as a JSON object) of ``event_type`` that meets its contract."""
    data = copy.deepcopy(EXAMPLES[event_type])
    for path in _paths(data):
        if path[-1] in IDENTIFIER_KEYS and isinstance(_parent(data, path)[path[-1]], str) and draw(st.booleans()):
            _parent(data, path)[path[-1]] = draw(identifiers)
    person = data.get("person")
    if isinstance(person, dict) and person.get("personal_identity_code"):
        n = draw(st.integers(min_value=0, max_value=36_000))
        person["personal_identity_code"] = synthetic_identity_code(n)
        person["birth_date"] = None
    if draw(st.booleans()):  # readers must tolerate new optional fields
        data[draw(st.sampled_from(["x_new_field", "note_v2", "extra"]))] = draw(json_values)
    envelope: dict[str, Any] = {
        "specversion": "1.0",
        "id": draw(st.uuids().map(str) | identifiers),
        "source": draw(st.sampled_from(["urn:system:crm", "urn:system:portal", "urn:system:fuzz", "/fuzz"])),
        "type": event_type,
        "time": draw(instants),
        "data": data,
    }
    if draw(st.booleans()):
        envelope["datacontenttype"] = draw(st.sampled_from(["application/json", "application/json; charset=utf-8"]))
    if draw(st.booleans()):
        envelope["subject"] = draw(identifiers)  # a CloudEvents extension attribute
    return envelope


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=True).encode()


def valid_events(topic: str, event_type: str) -> st.SearchStrategy[bytes]:
    return valid_envelopes(event_type).map(_dumps)


# -- mutations -------------------------------------------------------------------------------


@st.composite
def mutated_envelopes(draw: st.DrawFn, event_type: str) -> Any:
    """A valid envelope with one to three mutations: a field dropped, added, retyped or given a
    random or huge value, the type unknown, the data or the envelope replaced."""
    doc: Any = draw(valid_envelopes(event_type))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(doc)
        kind = draw(
            st.sampled_from(["drop", "extra", "retype", "identifier", "unknown_type", "data", "envelope", "root"])
        )
        if kind == "root":
            doc = draw(json_values)
            continue
        if not isinstance(doc, dict):
            continue
        if kind == "unknown_type":
            doc["type"] = draw(nasty_strings | st.just(f"{event_type}.v2"))
        elif kind == "data":
            doc["data"] = draw(json_values)
        elif kind == "envelope":
            key = draw(st.sampled_from(["specversion", "id", "source", "type", "time", "datacontenttype", "data"]))
            if draw(st.booleans()):
                doc.pop(key, None)
            else:
                doc[key] = draw(json_values)
        elif not paths:
            continue
        else:
            path = draw(st.sampled_from(paths))
            parent = _parent(doc, path)
            if kind == "drop":
                if isinstance(parent, dict):
                    parent.pop(path[-1], None)
                else:
                    parent.pop(path[-1])
            elif kind == "extra" and isinstance(parent, dict):
                parent[draw(st.text(max_size=12))] = draw(json_values)
            elif kind == "retype":
                parent[path[-1]] = draw(json_values)
            elif kind == "identifier":
                parent[path[-1]] = draw(nasty_strings | identifiers)
    return doc


@st.composite
def raw_mutations(draw: st.DrawFn, event_type: str) -> bytes:
    """Byte-level damage: truncated or spliced JSON, invalid UTF-8, NaN, numbers past Python's
    4,300-digit limit, nesting past the recursion limit, random bytes, an empty value."""
    valid = json.dumps(draw(valid_envelopes(event_type))).encode()
    kind = draw(
        st.sampled_from(["truncate", "splice", "utf8", "nan", "huge_number", "deep", "bytes", "empty", "non_object"])
    )
    if kind == "truncate":
        return valid[: draw(st.integers(min_value=0, max_value=len(valid) - 1))]
    if kind == "splice":
        at = draw(st.integers(min_value=0, max_value=len(valid)))
        return valid[:at] + draw(st.binary(min_size=1, max_size=8)) + valid[at:]
    if kind == "utf8":
        return valid.replace(b'"type"', b'"t\xffype"', 1)
    if kind == "nan":
        return valid.replace(b'"specversion"', b'"nan": NaN, "inf": -Infinity, "specversion"', 1)
    if kind == "huge_number":
        digits = draw(st.sampled_from([400, 4300, 5000, 20_000]))
        return valid[:-1] + b', "n": ' + b"9" * digits + b"}"
    if kind == "deep":
        depth = draw(st.sampled_from([50, 1000, 100_000]))
        return valid[:-1] + b', "deep": ' + b"[" * depth + b"]" * depth + b"}"
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "empty":
        return b""
    return _dumps(draw(st.lists(json_scalars, max_size=3) | json_scalars))


def any_record_values(event_type: str) -> st.SearchStrategy[bytes]:
    """What a broken or hostile sender might put in a record value meant as ``event_type``."""
    return st.one_of(
        valid_events("", event_type),
        mutated_envelopes(event_type).map(_dumps),
        raw_mutations(event_type),
    )


def invalid_record_values(topic: str, event_type: str) -> st.SearchStrategy[bytes]:
    """Values that certainly break the contract of ``topic`` (for the dead-letter property)."""
    from lampo.contracts.catalog import parse
    from lampo.contracts.errors import ContractViolation

    def breaks(raw: bytes) -> bool:
        try:
            parse(topic, raw)
        except ContractViolation:
            return True
        return False

    return st.one_of(mutated_envelopes(event_type).map(_dumps), raw_mutations(event_type)).filter(breaks)


# Kafka headers a broken sender might add: invalid UTF-8, a null value, a garbage traceparent,
# a duplicate or misleading content type, our own error.* headers forged.
bad_headers = st.lists(
    st.one_of(
        st.tuples(st.just("traceparent"), st.sampled_from([b"", b"00-zz-zz-01", b"\xff\xfe", b"00-" + b"f" * 500])),
        st.tuples(st.just("content-type"), st.sampled_from([b"text/plain", b"\x00", b""])),
        st.tuples(st.sampled_from(["x-fuzz", "error.reason", "tracestate"]), st.binary(max_size=16)),
        st.tuples(st.just("x-null"), st.none()),
    ),
    max_size=3,
)

__all__ = [
    "EXAMPLES",
    "ROUTES",
    "any_record_values",
    "bad_headers",
    "hostile_key",
    "invalid_record_values",
    "mutated_envelopes",
    "raw_mutations",
    "valid_envelopes",
    "valid_events",
]


Record = tuple[bytes, list[tuple[str, bytes | None]]]
"""A record value and its headers (without the content type, which every record gets)."""

# Headers that must never stop a consumer, sent with every corpus on top of the drawn ones.
HOSTILE_HEADERS: list[list[tuple[str, bytes | None]]] = [
    [("traceparent", b"\xff\xfe")],
    [("x-null", None)],
    [("traceparent", None)],
    [("x-binary", b"\x80\x81\x82")],
]


# Kafka keys a broken sender might use: none, empty, not UTF-8, control bytes, very long. A key
# is only the producer's routing hint; no key may fail or stop a consumer.
HOSTILE_KEYS: list[bytes | None] = [None, b"", b"\xff\xfe", b"\x00\x01\x02", b"\x80" * 1000]


def hostile_key(i: int) -> bytes | None:
    """The i-th record's key: every third one hostile, the others plain."""
    if i % 3:
        return f"fuzz-{i}".encode()
    return HOSTILE_KEYS[(i // 3) % len(HOSTILE_KEYS)]


def draw_corpus(strategy: st.SearchStrategy[list[Record]], examples: int) -> list[Record]:
    """Records from ``examples`` derandomized hypothesis runs of ``strategy``, joined: a corpus
    for a broker round trip, too slow to make once per hypothesis example."""
    from hypothesis import Phase, given

    found: list[Record] = []

    @settings(settings.get_profile("lampo-fuzz"), max_examples=examples, phases=[Phase.generate])
    @given(strategy)
    def collect(records: list[Record]) -> None:
        found.extend(records)

    collect()
    return found
