"""The package builder on its own (no broker, no database): results given piece by piece are
filed to temporary files as they come, so memory holds a piece, not the subject; the ZIP has
the same layout as a package built from whole results."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import tracemalloc
import zipfile
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lampo.dsar.package import (
    _FORMULA_START,
    PackageBuilder,
    _may_start_formula,
    _plain_columns_csv,
    _plain_csv,
    _texts,
    build,
)


def reading(i: int) -> dict[str, Any]:
    return {
        "customer_number": "100234",
        "kind": "consumption_report",
        "data": {"metering_point": f"MUL-{i % 50:02d}", "period_start": "2020-01-01", "energy_mwh": f"{i / 1000:.3f}"},
        "source_system": "metering",
        "origin": "third_party",
        "legal_basis": "contract",
    }


def zip_of(blob: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def built(feed: Any, *, portability: bool = False) -> dict[str, bytes]:
    out = io.BytesIO()
    with PackageBuilder(participant_categories={"rec": ["customer_relationship"]}, portability=portability) as b:
        feed(b)
        b.finish(out, request={"request_id": "r-1"}, participants={"reg": {"status": "done"}})
    return zip_of(out.getvalue())


def test_pieces_make_the_same_package_as_the_whole_result_whatever_order_participants_come_in() -> None:
    clip = os.urandom(50_000)
    rows = [reading(i) for i in range(5000)]
    contacts = [{"section": "contact", "data": {"email": "a@example.fi"}, "source_system": "crm", "origin": "subject"}]
    recording = {"recording_id": "r1", "media_type": "audio/wav"}
    whole = build(
        request={"request_id": "r-1"},
        results={
            "reg": {"consumption": rows, "contact": contacts},
            "rec": {
                "customer_relationship": {
                    "recordings": [{**recording, "audio_base64": base64.b64encode(clip).decode()}]
                }
            },
        },
        participants={"reg": {"status": "done"}},
        participant_categories={"rec": ["customer_relationship"]},
        portability=False,
    )

    def feed(b: PackageBuilder) -> None:
        # recordings first, its audio in two pieces; the registry's rows interleaved in pages
        b.add_attachment("rec", ("customer_relationship", "recordings"), dict(recording), clip[:20_000])
        b.add_items("reg", ("consumption",), [reading(i) for i in range(0, 2000)])
        b.add_more("rec", clip[20_000:])
        b.add_items("reg", ("contact",), [dict(c) for c in contacts])
        b.add_items("reg", ("consumption",), [reading(i) for i in range(2000, 5000)])

    streamed = built(feed)
    expected = zip_of(whole.data)
    assert sorted(streamed) == sorted(expected)
    for name in expected:
        if name.endswith(".json"):
            assert json.loads(streamed[name]) == json.loads(expected[name]), name
        else:
            assert streamed[name] == expected[name], name
    assert streamed["recordings/rec-r1.wav"] == clip
    table = list(csv.DictReader(io.StringIO(streamed["data/consumption.csv"].decode())))
    assert len(table) == 5000 and table[7]["data.energy_mwh"] == "0.007"


def test_a_list_is_a_table_only_while_every_row_is_a_flat_record_and_late_columns_pad_early_rows() -> None:
    def feed(b: PackageBuilder) -> None:
        b.add_items("reg", ("basic",), [{"a": 1}, {"a": 2, "n": {"x": None}}])
        b.add_items("reg", ("basic",), [{"b": 'q,"w\nz'}])
        b.add_items("reg", ("contact",), [{"a": 1}])
        b.add_items("reg", ("contact",), [{"a": [1, 2]}])  # a list: not tabular

    files = built(feed)
    assert list(csv.reader(io.StringIO(files["data/basic.csv"].decode()))) == [
        ["a", "n.x", "b"],
        ["1", "", ""],
        ["2", "", ""],
        ["", "", 'q,"w\nz'],
    ]
    assert "data/contact.csv" not in files and len(json.loads(files["data/contact.json"])["reg"]) == 2


def test_building_holds_a_piece_in_memory_not_the_subject() -> None:
    tracemalloc.start()
    try:
        out = io.BytesIO()
        with PackageBuilder(participant_categories={}, portability=False) as b:
            for low in range(0, 50_000, 2000):
                b.add_items("reg", ("consumption",), [reading(i) for i in range(low, low + 2000)])
            _, peak_filing = tracemalloc.get_traced_memory()
            b.finish(out, request={}, participants={})
    finally:
        tracemalloc.stop()
    # ~17 MB of JSON and ~6 MB of CSV went through; the whole result as objects would be >100 MB
    assert peak_filing < 15 * 1024 * 1024, f"peak {peak_filing / 1e6:.1f} MB while filing"
    files = zip_of(out.getvalue())
    assert len(json.loads(files["data/consumption.json"])["reg"]) == 50_000


def reference_csv(rows: list[dict[str, Any]]) -> list[list[str]]:
    """The CSV as a plain DictWriter writes it from flattened records (dotted keys)."""

    def flat(item: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in item.items():
            if isinstance(value, dict):
                out.update(flat(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    flats = [flat(r) for r in rows]
    columns = list(dict.fromkeys(k for r in flats for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in flats)
    return list(csv.reader(io.StringIO(buffer.getvalue())))


def test_records_of_many_shapes_make_the_csv_and_sources_a_plain_walk_would() -> None:
    records: list[dict[str, Any]] = [
        {"a": 1, "data": {"x": "1", "y": None}, "origin": "subject"},
        {"a": 2, "data": {"x": "2", "y": "b"}, "origin": "subject"},
        {"data": {"x": "3", "y": "c"}, "a": 3},  # another key order
        {"a": 4, "data": {"y": "d", "x": "4"}, "origin": "authority"},  # nested keys in another order
        {"a": 5, "data": {"x": "5", "source_system": "vtj"}},  # a source inside a nested record
        {"a": 6, "data": None, "legal_basis": "contract", "extra": True},
        {"a": 7, "data": {"x": "7", "deep": {"z": 1.5}}},  # two levels of nesting
    ]

    # a piece of one shape (taken all at once), then mixed ones (record by record)
    records = [
        {"a": i, "data": {"x": str(i), "y": None if i % 2 else "e"}, "origin": "third_party", "legal_basis": "consent"}
        for i in range(10, 20)
    ] + records

    def feed(b: PackageBuilder) -> None:
        b.add_items("reg", ("basic",), json.loads(json.dumps(records[:10])))
        b.add_items("reg", ("basic",), json.loads(json.dumps(records[10:13])))
        b.add_items("reg", ("basic",), json.loads(json.dumps(records[13:])))

    files = built(feed)
    assert list(csv.reader(io.StringIO(files["data/basic.csv"].decode()))) == reference_csv(records)
    manifest = json.loads(files["manifest.json"])
    assert manifest["sources"] == ["authority", "subject", "third_party", "vtj"]
    assert manifest["legal_bases"] == ["consent", "contract"]
    assert json.loads(files["data/basic.json"])["reg"] == records


@settings(max_examples=500, deadline=None)
@given(st.lists(st.lists(st.text(alphabet='ab,"\r\n é', max_size=4), min_size=1, max_size=4), max_size=5))
def test_the_quick_csv_path_writes_what_the_csv_module_writes_or_leaves_it_to_it(rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    quick = _plain_csv(rows)
    assert quick is None or quick == buffer.getvalue()
    if all(not set(v) & set(',"\r\n') for row in rows for v in row) and not any(row == [""] for row in rows):
        assert quick is not None  # plain text rows take the quick path


_SCALARS = st.one_of(
    st.text(alphabet='ab,"\r\n =+-@\té', max_size=4),
    st.none(),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
)


@settings(max_examples=500, deadline=None)
@given(
    st.integers(1, 4).flatmap(lambda width: st.lists(st.lists(_SCALARS, min_size=width, max_size=width), max_size=5))
)
def test_the_column_csv_path_writes_what_the_csv_module_writes_or_leaves_it_to_it(rows: list[list[Any]]) -> None:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    columns = [list(column) for column in zip(*rows, strict=True)]
    quick = _plain_columns_csv([_texts(c) for c in columns]) if columns else ""
    assert quick is None or quick == buffer.getvalue()
    for column in columns:  # never misses a value that starts like a formula
        texts = _texts(column)
        if any(v.startswith(_FORMULA_START) for v in texts):
            assert _may_start_formula(texts)


def test_a_page_of_one_shape_with_empty_numbers_and_risky_cells_makes_the_csv_the_walk_would() -> None:
    rows = [
        {"n": i, "x": None if i % 3 else 1.5, "flag": i % 2 == 0, "data": {"t": "=1" if i == 7 else f"v{i}", "u": None}}
        for i in range(20)
    ]
    files = built(lambda b: b.add_items("reg", ("basic",), json.loads(json.dumps(rows))))
    table = list(csv.reader(io.StringIO(files["data/basic.csv"].decode())))
    assert table[0] == ["n", "x", "flag", "data.t", "data.u"]
    assert table[1] == ["0", "1.5", "True", "v0", ""] and table[2] == ["1", "", "False", "v1", ""]
    assert table[8][3] == "'=1"  # neutralised; the JSON keeps it
    assert json.loads(files["data/basic.json"])["reg"] == rows


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised_and_the_json_stays_exact() -> None:
    risky = ["=1+1", "+358 40 1234567", "-2+3", "@SUM(A1)", "\tcmd", "\r=1", '=HYPERLINK("http://x","y")']
    rows = [{"value": v, "n": -5, "plain": "Muurame"} for v in risky]
    mixed = [{"=key": "=a", "text": "=b,c"}, {"=key": "ok", "text": "fine"}]  # quoted cells, a risky header
    files = built(lambda b: (b.add_items("rec", ("contact",), rows), b.add_items("rec", ("services",), mixed)))

    table = list(csv.DictReader(io.StringIO(files["data/contact.csv"].decode())))
    assert [r["value"] for r in table] == ["'" + v for v in risky]
    assert {r["n"] for r in table} == {"-5"} and {r["plain"] for r in table} == {"Muurame"}  # numbers as they are
    [header, first, _] = list(csv.reader(io.StringIO(files["data/services.csv"].decode())))
    assert header == ["'=key", "text"] and first == ["'=a", "'=b,c"]
    # JSON: every value exactly as given
    assert [r["value"] for r in json.loads(files["data/contact.json"])["rec"]] == risky
    assert json.loads(files["data/services.json"])["rec"] == mixed


def test_the_manifest_names_the_controller_as_the_privacy_statement_does() -> None:
    manifest = json.loads(built(lambda b: b.add_items("rec", ("contact",), [{"city": "Muurame"}]))["manifest.json"])
    assert manifest["controller"]["name"] == "Muuramen Lämpö Oy"
    assert manifest["controller"]["business_id"] == "0402810-7"
    assert manifest["controller"]["address"] == "PL 274, 40101 Jyväskylä"
    assert manifest["controller"]["register"] == "Muuramen Lämpö Oy:n asiakasrekisteri"
