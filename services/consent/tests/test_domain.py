"""The consent rules without broker or database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lampo.consent.domain import (
    ConsentEvent,
    Current,
    Purpose,
    UnknownPurposeError,
    decide,
    may_use,
    purposes_of,
    receipt,
)

T = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
PURPOSES = {
    "profiling": Purpose(
        "profiling",
        "Art. 6(1)(a)",
        "p-1",
        frozenset({"profiling", "processing"}),
        "GDPR Art. 21(1): objection honoured",
    ),
    "direct_marketing": Purpose(
        "direct_marketing",
        "Art. 6(1)(a)",
        "dm-1",
        frozenset({"direct_marketing", "processing"}),
        "GDPR Art. 21(3): objection honoured",
    ),
    "automated_decisions": Purpose(
        "automated_decisions",
        "Art. 22",
        "ad-1",
        frozenset({"automated_decisions", "processing"}),
        "GDPR Art. 21(1) and 22: objection honoured",
    ),
}


def event(kind: str, minutes: int = 0, purpose: str | None = "profiling", scope: str | None = None) -> ConsentEvent:
    return ConsentEvent(
        f"e{kind}{minutes}", kind, "100234", T + timedelta(minutes=minutes), "urn:test", purpose, scope, "portal"
    )  # type: ignore[arg-type]


def test_a_withdrawal_without_prior_consent_becomes_withdrawn_and_says_so() -> None:
    d = decide(event("consent.withdrawn"), "profiling", None)
    assert (d.outcome, d.state_after, d.note) == ("changed", "withdrawn", "no prior consent")


def test_an_older_event_is_stale_and_changes_nothing() -> None:
    current = Current("withdrawn", T + timedelta(minutes=5), "w")
    d = decide(event("consent.given", 1), "profiling", current)
    assert d.outcome == "stale" and d.state_after == "withdrawn" and d.current == current
    assert "older than the current state" in (d.note or "")


def test_at_equal_times_the_more_restrictive_state_wins_whatever_the_order() -> None:
    assert decide(event("consent.given"), "profiling", Current("withdrawn", T, "w")).outcome == "stale"
    assert decide(event("consent.withdrawn"), "profiling", Current("granted", T, "g")).state_after == "withdrawn"


def test_a_withdrawal_does_not_lift_an_objection_but_a_later_consent_does() -> None:
    objected = Current("objected", T, "o", "direct_marketing")
    d = decide(event("consent.withdrawn", 1, "direct_marketing"), "direct_marketing", objected)
    assert (d.outcome, d.state_after) == ("unchanged", "objected")
    assert decide(event("consent.given", 2, "direct_marketing"), "direct_marketing", objected).state_after == "granted"


def test_the_same_state_again_is_unchanged() -> None:
    d = decide(event("consent.given", 1), "profiling", Current("granted", T, "g"))
    assert d.outcome == "unchanged" and d.current.effective_at == T + timedelta(minutes=1)


def test_an_objection_covers_the_purposes_its_scope_names() -> None:
    assert purposes_of(event("objection.filed", purpose=None, scope="direct_marketing"), PURPOSES) == [
        "direct_marketing"
    ]
    assert purposes_of(event("objection.filed", purpose=None, scope="processing"), PURPOSES) == sorted(PURPOSES)
    with pytest.raises(UnknownPurposeError):
        purposes_of(event("consent.given", purpose="telepathy"), PURPOSES)


def test_only_a_current_granted_consent_allows_use() -> None:
    p = PURPOSES["direct_marketing"]
    assert may_use(p, p.name, Current("granted", T, "g")).allowed
    assert not may_use(p, p.name, None).allowed
    assert not may_use(p, p.name, Current("withdrawn", T, "w")).allowed
    objected = may_use(p, p.name, Current("objected", T, "o", "direct_marketing"))
    assert not objected.allowed and "Art. 21(3)" in objected.reason
    assert "unknown purpose" in may_use(None, "telepathy", None).reason


def test_a_restriction_refuses_every_purpose_whatever_the_consent() -> None:
    p = PURPOSES["profiling"]
    restricted = may_use(p, p.name, Current("granted", T, "g"), restricted_since=T)
    assert not restricted.allowed and "Art. 18" in restricted.reason
    assert may_use(p, p.name, Current("granted", T, "g"), restricted_since=None).allowed
    assert "unknown purpose" in may_use(None, "telepathy", None, restricted_since=T).reason


def test_a_receipt_is_shaped_after_the_kantara_consent_receipt() -> None:
    e = event("consent.given")
    r = receipt(e, PURPOSES["profiling"], decide(e, "profiling", None))
    assert r["version"] == "KI-CR-v1.1.0" and r["jurisdiction"] == "FI"
    assert r["piiControllers"][0]["piiController"] == "Muuramen Lämpö Oy"
    assert r["piiControllers"][0]["businessId"] == "0402810-7"
    assert r["piiControllers"][0]["address"]["postOfficeBoxNumber"] == "PL 274"
    assert r["piiControllers"][0]["email"] == "jani.lehtonen@isannointitiimi.fi"
    assert r["consentTimestamp"] == int(T.timestamp()) and r["collectionMethod"] == "portal"
    [service] = r["services"]
    assert service["purposes"][0]["consentTextVersion"] == "p-1" and service["purposes"][0]["state"] == "granted"
    assert r["consentReceiptID"]
