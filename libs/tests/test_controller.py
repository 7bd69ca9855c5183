"""lampo.controller: the controller as the privacy statement names it, overridable by configuration."""

import tomllib
from pathlib import Path

import pytest

from lampo.controller import Controller, controller

DATAMAP = Path(__file__).resolve().parents[2] / "services" / "retention" / "datamap.toml"


def test_the_defaults_are_the_privacy_statements() -> None:
    c = controller()
    assert (c.name, c.business_id, c.address) == ("Muuramen Lämpö Oy", "0402810-7", "PL 274, 40101 Jyväskylä")
    assert c.register_name == "Muuramen Lämpö Oy:n asiakasrekisteri"
    assert c.as_dict()["contact_person"] == {
        "name": "Jani Lehtonen",
        "title": "toimitusjohtaja",
        "phone": "020 7120443",
        "email": "jani.lehtonen@isannointitiimi.fi",
    }
    receipt = c.receipt()
    assert receipt["piiController"] == "Muuramen Lämpö Oy" and receipt["businessId"] == "0402810-7"
    assert receipt["address"]["postalCode"] == "40101" and receipt["address"]["addressLocality"] == "Jyväskylä"


def test_a_deployment_overrides_a_field_by_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMPO_CONTROLLER_EMAIL", "tietosuoja@example.fi")
    assert controller().email == "tietosuoja@example.fi"
    assert controller().name == "Muuramen Lämpö Oy"
    assert Controller(phone="014 000").receipt()["phone"] == "014 000"


def test_the_record_of_processing_names_the_same_controller() -> None:
    block = tomllib.loads(DATAMAP.read_text(encoding="utf-8"))["controller"]
    c = controller()
    assert (block["name"], block["business_id"], block["address"]) == (c.name, c.business_id, c.address)
    for fact in (c.contact_person, c.contact_title, c.phone, c.email):
        assert fact in block["contact"] and fact in block["data_protection_contact"]
