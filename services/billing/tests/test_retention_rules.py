"""Statutory retention as data: the rules file validates and the periods come out as the law says
(no broker, no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from lampo.billing.domain import ItemFacts, Keep, RetentionRules, group_retained, settled
from lampo.billing.errors import RetentionRulesInvalid

RULES = RetentionRules.load()
VOUCHERS = "Accounting Act 1336/1997 2:10 (accounting vouchers)"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_vouchers_are_kept_six_years_after_the_end_of_their_financial_year() -> None:
    invoice = ItemFacts("invoice", at("2026-03-01T08:00:00"))
    assert RULES.decide(invoice, date(2026, 11, 28)) == Keep(date(2032, 12, 31), VOUCHERS)
    assert RULES.decide(invoice, date(2032, 12, 31)) == Keep(date(2032, 12, 31), VOUCHERS)
    assert RULES.decide(invoice, date(2033, 1, 1)) is None


def test_the_financial_year_is_finnish_time() -> None:
    # 23:30 UTC on 31 December 2026 is already 2027 in Muurame.
    payment = ItemFacts("payment", at("2026-12-31T23:30:00"))
    assert RULES.decide(payment, date(2027, 1, 2)) == Keep(date(2033, 12, 31), VOUCHERS)


def test_credit_checks_are_not_kept() -> None:
    assert RULES.decide(ItemFacts("credit_check", at("2026-01-01T00:00:00")), date(2026, 1, 2)) is None


def test_an_open_collection_case_is_kept_three_years_from_its_last_renewal_and_not_once_paid() -> None:
    opened = at("2026-06-01T00:00:00")
    case = ItemFacts("collection", opened, renewed_at=at("2027-02-01T00:00:00"))
    keep = RULES.decide(case, date(2027, 3, 1))
    assert keep is not None and keep.until == date(2030, 12, 31) and "728/2003" in keep.legal_basis
    assert RULES.decide(ItemFacts("collection", opened, renewed_at=opened, settled=True), date(2026, 7, 1)) is None
    assert settled(Decimal("99.00"), [Decimal("50.00"), Decimal("49.00")])
    assert not settled(Decimal("99.00"), [Decimal("50.00")])


def test_kept_items_are_grouped_by_basis_and_last_day() -> None:
    kept = [Keep(date(2032, 12, 31), VOUCHERS)] * 3 + [Keep(date(2029, 12, 31), "claim")]
    assert [(r.items, r.until) for r in group_retained(kept)] == [(1, date(2029, 12, 31)), (3, date(2032, 12, 31))]


@pytest.mark.parametrize(
    "text",
    [
        "[[rule]]\nkind='invoice'\nretain=true\nperiod_years=6\ntrigger='financial_period_end'\nlegal_basis='x'\n",  # kinds missing
        "[[rule]]\nkind='invoice'\nretain=true\nperiod_years=0\ntrigger='none'\nlegal_basis='x'\n",  # kept with no period
        "[[rule]]\nkind='invoice'\nretain=true\nperiod_years=6\ntrigger='financial_period_end'\nlegal_basis='x'\nbogus=1\n",
        "not toml [",
    ],
)
def test_an_invalid_rules_file_is_refused(text: str) -> None:
    with pytest.raises(RetentionRulesInvalid):
        RetentionRules.parse(text)
