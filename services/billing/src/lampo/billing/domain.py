"""Billing's rules, free of Kafka and SQL: the kinds of item it stores and how long a statute
keeps each of them after an erasure request.

The periods themselves are data (``retention.toml``), validated here; this module only knows
how a trigger turns an item's dates into the last day it is kept.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lampo.billing.errors import RetentionRulesInvalid
from lampo.clock import FINNISH_TIME
from lampo.contracts.categories import Category
from lampo.contracts.privacy import Retained

Kind = Literal["invoice", "payment", "collection", "credit_check"]
KINDS: tuple[Kind, ...] = ("invoice", "payment", "collection", "credit_check")
PLURAL: dict[str, str] = {
    "invoice": "invoices",
    "payment": "payments",
    "collection": "collections",
    "credit_check": "credit_checks",
}
EVENT_KIND: dict[str, Kind] = {
    "invoice.issued": "invoice",
    "payment.received": "payment",
    "collection.opened": "collection",
    "credit.checked": "credit_check",
}

# Where each kind comes from and on what basis billing processes it (GDPR Art. 13-14), as every
# item of an access result says: the coordinator's portability filter keeps only what the
# subject provided and what is processed by consent or contract, so none of these is portable.
PROVENANCE: dict[str, tuple[str, str]] = {
    "invoice": ("controller", "legal_obligation"),  # an accounting voucher (Accounting Act 2:5)
    "payment": ("third_party", "legal_obligation"),  # the bank's record, a voucher too
    "collection": ("controller", "contract"),  # enforcing the contract's claim
    "credit_check": ("third_party", "legitimate_interest"),  # the credit bureau's verdict
}
# Kinds processed on legitimate interest: an objection to processing (Art. 21(1)) restricts them
# until it is decided (Art. 18(1)(d)). Invoices, payments and collection rest on a statute or the
# contract, which an objection does not reach.
LEGITIMATE_INTEREST_KINDS: frozenset[str] = frozenset(
    k for k, (_, basis) in PROVENANCE.items() if basis == "legitimate_interest"
)
VOUCHER_NOT_ALTERED = "Accounting Act (Kirjanpitolaki 1336/1997) 2:5-2:10: an issued invoice is an accounting voucher"
OBJECTION_RESTRICTS = (
    "GDPR Art. 21(1) and 18(1)(d): credit checks rest on legitimate interest; restricted until the objection is decided"
)
STATUTORY_RESTRICTION = "kept only by a statute after an erasure (GDPR Art. 17(3)); the restriction stays"

LEGAL_ZONE = FINNISH_TIME  # an invoice issued at 23:30 UTC on 31 December belongs to the next year
RULES_FILE = Path(__file__).with_name("retention.toml")


def legal_date(instant: datetime) -> date:
    return instant.astimezone(LEGAL_ZONE).date()


class RetentionRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = Field(min_length=1)
    retain: bool
    period_years: int = Field(ge=0, le=100)
    trigger: Literal["financial_period_end", "claim_last_renewed", "none"]
    legal_basis: str = Field(min_length=1)
    held: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.retain and (self.trigger == "none" or self.period_years < 1):
            raise ValueError(f"rule {self.kind}: a kept kind needs a trigger and a period of at least one year")
        if not self.retain and self.trigger != "none":
            raise ValueError(f"rule {self.kind}: a kind that is not kept has trigger 'none'")
        return self


class _RulesFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: list[RetentionRule]


@dataclass(frozen=True)
class ItemFacts:
    """What retention needs to know about one stored item (no personal data)."""

    kind: str
    occurred_at: datetime
    renewed_at: datetime | None = None
    """For a collection case: the latest event that renewed the claim."""
    settled: bool = False
    """For a collection case: the invoice is paid in full, so the claim is no longer alive."""


@dataclass(frozen=True)
class Keep:
    until: date
    legal_basis: str


class RetentionRules:
    def __init__(self, rules: list[RetentionRule]) -> None:
        by_kind = {r.kind: r for r in rules}
        if len(by_kind) != len(rules):
            raise RetentionRulesInvalid("two retention rules for the same kind")
        missing = [k for k in KINDS if k not in by_kind or not by_kind[k].held]
        if missing:
            raise RetentionRulesInvalid(f"no retention rule for stored kinds: {', '.join(missing)}")
        self.rules = by_kind

    @classmethod
    def parse(cls, text: str) -> RetentionRules:
        try:
            raw = tomllib.loads(text)
            return cls(list(_RulesFile.model_validate(raw).rule))
        except (tomllib.TOMLDecodeError, ValidationError) as e:
            raise RetentionRulesInvalid(f"retention rules: {e}") from e

    @classmethod
    def load(cls, path: Path = RULES_FILE) -> RetentionRules:
        return cls.parse(path.read_text(encoding="utf-8"))

    def decide(self, item: ItemFacts, today: date) -> Keep | None:
        """The statute that keeps ``item`` on ``today`` and its last day, or None: delete it."""
        rule = self.rules[item.kind]
        if not rule.retain:
            return None
        if rule.trigger == "claim_last_renewed":
            if item.settled:
                return None
            anchor = max(item.occurred_at, item.renewed_at or item.occurred_at)
        else:
            anchor = item.occurred_at
        # Financial period = calendar year: "N years from the end of the year in which the period
        # ended" is 31 December of year + N. A claim is kept to the end of its expiry year, so
        # that each kept group ends on one date.
        until = date(legal_date(anchor).year + rule.period_years, 12, 31)
        return Keep(until, rule.legal_basis) if today <= until else None


def group_retained(kept: list[Keep]) -> list[Retained]:
    """One ``retained`` entry per (legal basis, last day), as the ack reports them."""
    counts = Counter((k.legal_basis, k.until) for k in kept)
    return [
        Retained(category=Category.BILLING, items=n, legal_basis=basis, until=until)
        for (basis, until), n in sorted(counts.items(), key=lambda e: (e[0][1], e[0][0]))
    ]


RETENTION_HOLDS = "retention.holds.v1"
HOLD_STATE_TYPE = "legal_hold.state"


class Hold(BaseModel):
    """One standing legal hold as ``retention.holds.v1`` states it; no categories: every one."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    hold_id: str = Field(min_length=1)
    categories: list[str] = Field(default_factory=list)

    def holds(self, category: str) -> bool:
        return not self.categories or category in self.categories


class HoldState(BaseModel):
    """``legal_hold.state`` (internal, key customer_number): every hold standing for it now."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    customer_number: str = Field(min_length=1)
    holds: list[Hold] = Field(default_factory=list)

    def holds_billing(self) -> bool:
        return any(h.holds(Category.BILLING.value) for h in self.holds)


def settled(invoice_total: Decimal, payments: list[Decimal]) -> bool:
    return sum(payments, Decimal(0)) >= invoice_total
