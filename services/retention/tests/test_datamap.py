"""The data map: the file in the repository is valid, invalid ones are refused naming the entry,
and the record of processing (GDPR Art. 30) is generated from it."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lampo.contracts.categories import ALL_CATEGORIES
from lampo.crypto import new_master_key
from lampo.datamap import DataMap, load_datamap, parse_datamap
from lampo.retention.app import build
from lampo.retention.errors import DataMapError
from lampo.retention.settings import DEFAULT_DATAMAP, RetentionSettings
from lampo.ropa import record_of_processing, render_markdown

RAW: dict[str, Any] = tomllib.loads(DEFAULT_DATAMAP.read_text(encoding="utf-8"))


def raw() -> dict[str, Any]:
    return copy.deepcopy(RAW)


def refused(data: dict[str, Any]) -> str:
    with pytest.raises(DataMapError) as e:
        parse_datamap(data)
    return str(e.value)


def test_the_data_map_in_the_repository_is_valid_and_covers_every_category() -> None:
    datamap = load_datamap(DEFAULT_DATAMAP)
    assert set(datamap.categories) == {c.value for c in ALL_CATEGORIES}
    billing = datamap.rule("billing-vouchers")[1]
    assert billing.trigger == "financial_year_end" and billing.period.years == 6
    assert "1336/1997" in (billing.law or "")
    assert "728/2003" in (datamap.rule("basic-after-relationship")[1].law or "")
    assert datamap.rule("call-recordings")[1].participant == "recordings"
    assert datamap.rule("basic-prospect")[1].trigger == "last_activity"
    assert datamap.controller.business_id == "0402810-7"


def test_unknown_category_is_refused_naming_it() -> None:
    data = raw()
    data["categories"]["gossip"] = data["categories"]["basic"]
    message = refused(data)
    assert "categories" in message and "unknown category 'gossip'" in message


def test_missing_category_is_refused() -> None:
    data = raw()
    del data["categories"]["consumption"]
    assert "categories missing from the data map: consumption" in refused(data)


def test_negative_period_is_refused_naming_the_rule() -> None:
    data = raw()
    data["categories"]["basic"]["retention"][0]["period"] = {"years": -3}
    message = refused(data)
    assert "categories.basic.retention[0].period.years (rule basic-after-relationship)" in message
    assert "greater than or equal to 0" in message


def test_missing_reason_is_refused_naming_the_rule() -> None:
    data = raw()
    del data["categories"]["contact"]["retention"][0]["reason"]
    message = refused(data)
    assert "categories.contact.retention[0].reason (rule contact-after-relationship): required but missing" in message


def test_empty_reason_is_refused() -> None:
    data = raw()
    data["categories"]["contact"]["retention"][0]["reason"] = "  "
    assert "categories.contact.retention[0].reason" in refused(data)


def test_unknown_trigger_is_refused_naming_the_rule() -> None:
    data = raw()
    data["categories"]["services"]["retention"][0]["trigger"] = "moon_phase"
    message = refused(data)
    assert "categories.services.retention[0].trigger (rule services-after-relationship)" in message
    assert "relationship_ended" in message  # says what is allowed


def test_recipient_outside_the_eu_eea_is_refused_naming_it() -> None:
    data = raw()
    data["categories"]["billing"]["recipients"].append({"name": "Example Cloud Inc", "country": "US"})
    message = refused(data)
    assert "categories.billing.recipients[5]" in message
    assert "'Example Cloud Inc' is in US, outside the EU/EEA" in message


def test_norway_is_in_the_eea() -> None:
    data = raw()
    data["categories"]["billing"]["recipients"].append({"name": "Example Norge AS", "country": "NO"})
    assert isinstance(parse_datamap(data), DataMap)


def test_unknown_participant_and_duplicate_rule_are_refused() -> None:
    data = raw()
    data["categories"]["billing"]["retention"][0]["participant"] = "ledger"
    assert "participant 'ledger' is not listed" in refused(data)
    data = raw()
    data["categories"]["contact"]["retention"][0]["rule"] = "basic-after-relationship"
    assert "rule name 'basic-after-relationship' is used twice" in refused(data)


def test_misspelt_key_is_refused() -> None:
    data = raw()
    data["categories"]["basic"]["retention"][0]["perod"] = {"years": 1}
    message = refused(data)
    assert "categories.basic.retention[0].perod (rule basic-after-relationship): unknown key" in message


def test_every_problem_is_listed_at_once() -> None:
    data = raw()
    data["categories"]["basic"]["retention"][0]["period"] = {"months": -1}
    data["categories"]["billing"]["recipients"][0]["country"] = "CN"
    message = refused(data)
    assert "period.months" in message and "outside the EU/EEA" in message


def test_the_service_does_not_start_with_an_invalid_data_map(tmp_path: Path) -> None:
    bad = tmp_path / "datamap.toml"
    bad.write_text(DEFAULT_DATAMAP.read_text(encoding="utf-8").replace("years = 6", "years = -6"), encoding="utf-8")
    settings = RetentionSettings(datamap=bad, master_key=new_master_key())
    with pytest.raises(DataMapError) as e:
        build(settings)
    assert str(bad) in str(e.value) and "rule billing-vouchers" in str(e.value)


def test_a_file_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "datamap.toml"
    bad.write_text("version = = 1", encoding="utf-8")
    with pytest.raises(DataMapError, match="not valid TOML"):
        load_datamap(bad)
    with pytest.raises(DataMapError, match="does not exist"):
        load_datamap(tmp_path / "missing.toml")


def test_record_of_processing_as_json_has_the_art_30_contents() -> None:
    record = record_of_processing(load_datamap(DEFAULT_DATAMAP))
    assert record["controller"]["name"] == "Muuramen Lämpö Oy"
    assert record["controller"]["business_id"] == "0402810-7"
    assert record["transfers_outside_eu_eea"] == []
    assert {c["category"] for c in record["categories_of_personal_data"]} == {c.value for c in ALL_CATEGORIES}
    assert record["categories_of_data_subjects"] and record["security_measures"] and record["purposes"]
    billing = next(c for c in record["categories_of_personal_data"] if c["category"] == "billing")
    vouchers = next(r for r in billing["retention"] if r["rule"] == "billing-vouchers")
    assert vouchers["period"] == {"years": 6, "months": 0, "days": 0} and vouchers["held_by"] == "billing"
    assert all(r["country"] for r in record["recipients"])


def test_record_of_processing_as_markdown() -> None:
    text = render_markdown(load_datamap(DEFAULT_DATAMAP))
    assert text.startswith("# Record of processing activities (GDPR Art. 30(1))")
    for heading in (
        "## Controller",
        "## Purposes",
        "## Categories of data subjects",
        "## Categories of personal data",
        "## Recipients",
        "## Transfers to third countries",
        "## Retention periods",
        "## Technical and organisational security measures",
    ):
        assert heading in text
    assert "| `billing` | billing-vouchers | 6 years after the end of the financial year" in text
    assert "0402810-7" in text


def test_lampo_ropa_prints_markdown_and_json() -> None:
    from lampo.cli.main import app  # its groups load when invoked

    runner = CliRunner()
    md = runner.invoke(app, ["ropa"])
    assert md.exit_code == 0, md.output
    assert "# Record of processing activities" in md.stdout
    js = runner.invoke(app, ["ropa", "--format", "json"])
    assert js.exit_code == 0, js.output
    assert json.loads(js.stdout)["controller"]["business_id"] == "0402810-7"


def test_lampo_ropa_refuses_an_invalid_data_map(tmp_path: Path) -> None:
    from lampo.cli.main import app  # its groups load when invoked

    bad = tmp_path / "datamap.toml"
    bad.write_text(
        DEFAULT_DATAMAP.read_text(encoding="utf-8").replace('country = "SE"', 'country = "US"'), encoding="utf-8"
    )
    result = CliRunner().invoke(app, ["ropa", "--datamap", str(bad)])
    assert result.exit_code == 2
    assert "outside the EU/EEA" in result.output
