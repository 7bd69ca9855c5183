"""The portal's rules without I/O: one-time codes kept as MACs, the request forms of every kind
and the ``dsar.submitted`` they make, the mail's texts and what they leave out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lampo.contracts.catalog import DSAR_REQUESTS, parse
from lampo.contracts.envelope import CloudEvent
from lampo.portal.domain import (
    KINDS,
    check_customer_number,
    clean_code,
    code_mac,
    code_matches,
    new_code,
    read_form,
    submitted,
)
from lampo.portal.letters import code_letter, request_letter
from lampo.portal.notify import mail_for
from lampo.web import Site

KEY = b"k" * 32


def test_a_code_is_kept_as_a_mac_bound_to_its_challenge() -> None:
    code = new_code(6)
    assert len(code) == 6 and code.isdigit()
    mac = code_mac(KEY, "challenge-1", code)
    assert code.encode() not in mac and len(mac) == 32
    assert code_matches(KEY, "challenge-1", code, mac)
    assert not code_matches(KEY, "challenge-2", code, mac)  # the same code of another challenge
    assert not code_matches(b"x" * 32, "challenge-1", code, mac)  # another key
    assert clean_code(" 123-456 ") == "123456"


def test_a_customer_number_is_checked_without_echoing_it() -> None:
    assert check_customer_number("100234") is None
    for bad in ("", "../etc", "a b", "<script>"):
        error = check_customer_number(bad)
        assert error is not None and (not bad or bad not in error)


@pytest.mark.parametrize(
    ("kind", "form", "extra"),
    [
        ("access", {}, {}),
        ("portability", {}, {}),
        ("erasure", {"confirm": "yes"}, {}),
        ("objection", {"scope": "profiling"}, {"scope": "profiling"}),
        ("restriction", {"action": "place"}, {}),
        ("restriction", {"action": "lift"}, {"lift": True}),
        ("rectification", {"email": "uusi@example.fi", "city": "Muurame"},
         {"corrections": {"contact": {"email": "uusi@example.fi", "city": "Muurame"}}}),
        ("rectification", {"last_name": " Korjattu ", "postal_code": "40950"},
         {"corrections": {"person": {"last_name": "Korjattu"}, "contact": {"country": "FI", "postal_code": "40950"}}}),
    ],
)  # fmt: skip
def test_every_kind_makes_a_dsar_submitted_the_contract_accepts(kind: str, form: dict[str, str], extra: dict) -> None:
    result = read_form(kind, form)  # type: ignore[arg-type]
    assert result.ok and result.extra == extra
    now = datetime(2026, 12, 2, 9, 0, tzinfo=UTC).isoformat()
    body = submitted("r-1", kind, "100234", method="email_code", verified_at=now, received_at=now, extra=result.extra)  # type: ignore[arg-type]
    parsed = parse(DSAR_REQUESTS, CloudEvent.new("dsar.submitted", "urn:lampo:portal", body).to_bytes())
    assert parsed.data.channel == "portal" and parsed.data.verification.method == "email_code"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kind", "form", "field"),
    [
        ("erasure", {}, "confirm"),
        ("objection", {"scope": "everything"}, "scope"),
        ("restriction", {}, "action"),
        ("rectification", {}, "first_names"),
        ("rectification", {"email": "not-an-address"}, "email"),
        ("rectification", {"postal_code": "9x"}, "postal_code"),
        ("rectification", {"phone": "040 123"}, "phone"),
    ],
)
def test_a_wrong_answer_is_named_by_its_field_and_never_quoted(kind: str, form: dict[str, str], field: str) -> None:
    result = read_form(kind, form)  # type: ignore[arg-type]
    assert not result.ok and field in result.errors and not result.extra
    for value in form.values():
        assert value not in result.errors[field]
    assert set(KINDS) == {"access", "portability", "rectification", "erasure", "objection", "restriction"}


def test_mail_carries_the_request_id_kind_dates_and_link_and_nothing_of_the_person() -> None:
    site = Site(package="lampo.portal")
    fi, en = site.translations["fi"], site.translations["en"]
    code = code_letter(fi, "fi", "123456", 10)
    assert "123456" in code.text and "10 minuuttia" in code.text
    letter = request_letter(en, "en", "extended", request_id="r-9", kind="erasure", status_url="https://p/requests/r-9",
                            data={"due_at": "2027-02-28T09:58:00+00:00", "reason": "Three archives to check."})  # fmt: skip
    assert (
        "r-9" in letter.text and "https://p/requests/r-9" in letter.text and "Three archives to check." in letter.text
    )
    assert "February 28, 2027" in letter.text and "erasure of your data" in letter.text
    received = request_letter(fi, "fi", "received", request_id="r-9", kind="erasure", status_url="u",
                              data={"due_at": "2026-12-28T09:58:00+00:00"})  # fmt: skip
    assert "28. joulukuuta 2026" in received.text and "emme voi enää kirjoittaa" in received.text


def test_which_events_are_told_to_the_subject() -> None:
    class Accepted:
        due_at = datetime(2026, 12, 28, tzinfo=UTC)

    assert mail_for("dsar.accepted", Accepted()) == ("received", {"due_at": "2026-12-28T00:00:00+00:00"})
    assert mail_for("dsar.awaiting_approval", object()) == ("received", {})
    assert mail_for("dsar.overdue", object()) is None
