"""The privacy statement is built from the data the system runs on: the shipped data map, roles,
participant map, topic plan and controller give a complete statement, and a change to any of
them shows in the statement (and in its digest)."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

from lampo.contracts.categories import ALL_CATEGORIES, DEFAULT_PARTICIPANT_CATEGORIES
from lampo.controller import Controller, controller
from lampo.messaging.topics import TOPICS
from lampo.statement import ConsentPurpose, build_statement, disagreements, load_statement, read_toml

REPO = Path(__file__).resolve().parents[2]
DATAMAP = REPO / "services" / "retention" / "datamap.toml"
ROLES = REPO / "services" / "staff" / "src" / "lampo" / "staff" / "roles.toml"
PROFILING = ConsentPurpose("profiling", "Analysis of customer data for profiling", "profiling-2026-01")


def statement(**changes):  # type: ignore[no-untyped-def]
    inputs = {
        "controller": controller(),
        "datamap": read_toml(DATAMAP),
        "participant_categories": DEFAULT_PARTICIPANT_CATEGORIES,
        "roles": read_toml(ROLES)["roles"],
        "topics": TOPICS,
        "consent_purposes": [PROFILING],
    } | changes
    return build_statement(**inputs)


def test_the_shipped_data_gives_a_complete_statement() -> None:
    s = load_statement(
        controller=controller(), datamap_file=DATAMAP, roles_file=ROLES,
        participant_categories=DEFAULT_PARTICIPANT_CATEGORIES, consent_purposes=[PROFILING],
    )  # fmt: skip
    assert s == statement()
    assert [c.name for c in s.categories] == [c.value for c in ALL_CATEGORIES]  # every §6 category, in order
    raw = read_toml(DATAMAP)
    for category in s.categories:
        entry = raw["categories"][category.name]
        assert [r.rule for r in category.retention] == [r["rule"] for r in entry["retention"]]
        assert category.legal_bases and category.purposes and category.sources
    assert s.controller["business_id"] == "0402810-7" and s.controller["contact_person"]["email"] == controller().email
    assert disagreements(controller(), raw) == []  # the data map names the controller as lampo.controller does
    assert s.transfers_outside_eu_eea == ()
    assert s.category("billing").systems == ("billing",)
    assert s.category("contact").systems == ("billing", "consent", "recordings", "registry")
    assert "customer_service" in s.category("contact").roles and "customer_service" not in s.category("billing").roles
    assert {t.topic: t.hours for t in s.transit}["registry.inbound.v1"] == 24
    assert set(s.legal_bases) == {"consent", "contract", "legal_obligation", "legitimate_interest"}
    assert "erasure" in s.rights and "portability" in s.rights
    assert [p.name for p in s.consent_purposes] == ["profiling"]


def test_a_change_to_the_data_map_changes_the_statement() -> None:
    before = statement()
    datamap = copy.deepcopy(read_toml(DATAMAP))
    rule = datamap["categories"]["basic"]["retention"][0]
    rule["period"] = {"years": 5}
    rule["reason"] = "Kept five years for a new reason"
    datamap["categories"]["contact"]["recipients"].append({"name": "Example Call Centre Oy", "country": "SE"})
    datamap["subject_categories"].append("Visitors of the heat plant")
    after = statement(datamap=datamap)

    [first, *_] = after.category("basic").retention
    assert (first.period, first.reason) == ({"years": 5, "months": 0, "days": 0}, "Kept five years for a new reason")
    assert before.category("basic").retention[0].period["years"] == 3
    assert ("Example Call Centre Oy", "SE") in [(r.name, r.country) for r in after.category("contact").recipients]
    assert "Example Call Centre Oy" in [r.name for r in after.recipients]
    assert after.subject_categories[-1] == "Visitors of the heat plant"
    assert after.digest != before.digest


def test_a_recipient_outside_the_eu_eea_is_shown_not_hidden() -> None:
    datamap = copy.deepcopy(read_toml(DATAMAP))
    datamap["categories"]["billing"]["recipients"].append({"name": "Example Analytics Inc.", "country": "US"})
    assert [r.name for r in statement(datamap=datamap).transfers_outside_eu_eea] == ["Example Analytics Inc."]


def test_the_other_sources_each_show_in_the_statement() -> None:
    before = statement()
    held = {**DEFAULT_PARTICIPANT_CATEGORIES, "billing": ["billing", "basic", "contact", "consumption"]}
    assert statement(participant_categories=held).category("consumption").systems == ("billing", "registry")

    roles = copy.deepcopy(read_toml(ROLES)["roles"])
    roles["customer_service"]["read"].append("billing")
    assert "customer_service" in statement(roles=roles).category("billing").roles

    topics = [replace(t, retention_hours=48) if t.name == "registry.inbound.v1" else t for t in TOPICS]
    assert {t.topic: t.hours for t in statement(topics=topics).transit}["registry.inbound.v1"] == 48

    moved = Controller(email="tietosuoja@example.fi", postal_address="PL 99")
    changed = statement(controller=moved)
    assert changed.controller["contact_person"]["email"] == "tietosuoja@example.fi"
    assert changed.controller["address"].startswith("PL 99")
    assert disagreements(moved, read_toml(DATAMAP)) == ["address", "contact"]

    withdrawn = statement(consent_purposes=[PROFILING, ConsentPurpose("direct_marketing", "Marketing", "dm-1")])
    assert [p.name for p in withdrawn.consent_purposes] == ["direct_marketing", "profiling"]
    assert len({before.digest, changed.digest, withdrawn.digest}) == 3
