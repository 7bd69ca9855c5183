"""The data map as data: what is kept, why, for whom, and for how long (privacy statement §6-§9,
§14). One file in the repository (``services/retention/datamap.toml``), read and validated at
start-up; an invalid file stops the service with a message naming the entry.

The map is the single source of the retention rules the sweeps apply and of the record of
processing (GDPR Art. 30, :mod:`lampo.ropa`).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from lampo.contracts.categories import ALL_CATEGORIES, Category
from lampo.contracts.identifiers import is_eu_eea


class DataMapError(ValueError):
    """The data map file is invalid; the message names the file and the entry."""


Trigger = Literal["relationship_ended", "last_activity", "financial_year_end", "recording_made", "consent_withdrawn"]
"""What starts a retention clock:

* ``relationship_ended``: ``customer.relationship_ended`` (``ended_at``).
* ``last_activity``: prospects only: a customer number with no relationship ended and never
  invoiced; the clock is its latest activity of any kind (change notice, recording, ...).
* ``financial_year_end``: the end of the financial year of the customer's latest invoice.
* ``recording_made``: the customer's latest call recording.
* ``consent_withdrawn``: the latest withdrawal of consent (``consent.changed`` withdrawn/objected).
"""
TRIGGERS: tuple[Trigger, ...] = (
    "relationship_ended",
    "last_activity",
    "financial_year_end",
    "recording_made",
    "consent_withdrawn",
)
LegalBasis = Literal["contract", "consent", "legal_obligation", "legitimate_interest"]
SourceKind = Literal["subject", "authority", "third_party"]

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
RuleId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Period(_Strict):
    """A calendar period; added in Finnish time (a year from 29 February ends on 28 February)."""

    years: int = Field(default=0, ge=0)
    months: int = Field(default=0, ge=0)
    days: int = Field(default=0, ge=0)

    def __str__(self) -> str:
        parts = [(self.years, "year"), (self.months, "month"), (self.days, "day")]
        text = ", ".join(f"{n} {unit}{'' if n == 1 else 's'}" for n, unit in parts if n)
        return text or "0 days"


class Recipient(_Strict):
    name: Name
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
    role: Name = "processor"

    @model_validator(mode="after")
    def _in_eu_eea(self) -> Self:
        # Privacy statement §9: never transferred or disclosed outside the EU/EEA.
        if not is_eu_eea(self.country):
            raise ValueError(f"recipient '{self.name}' is in {self.country}, outside the EU/EEA (privacy statement §9)")
        return self


class Rule(_Strict):
    """One retention rule: data of ``category`` held by ``participant`` is purged ``period`` after
    ``trigger``, for the written ``reason`` (the law or the business need)."""

    rule: RuleId
    trigger: Trigger
    period: Period
    reason: Name
    law: Name | None = None
    participant: Name


class CategoryEntry(_Strict):
    description: Name
    purposes: list[Name] = Field(min_length=1)
    legal_bases: list[LegalBasis] = Field(min_length=1)
    sources: list[SourceKind] = Field(min_length=1)
    recipients: list[Recipient] = Field(default_factory=list)
    retention: list[Rule] = Field(min_length=1)


class Controller(_Strict):
    name: Name
    business_id: Name
    address: Name
    contact: Name
    data_protection_contact: Name
    financial_year_end_month: int = Field(default=12, ge=1, le=12)
    """The financial year ends at the end of this month (12: the calendar year)."""


class DataMap(_Strict):
    version: Literal[1]
    controller: Controller
    participants: list[Name] = Field(min_length=1)
    subject_categories: list[Name] = Field(min_length=1)
    security_measures: list[Name] = Field(min_length=1)
    categories: dict[str, CategoryEntry]

    @field_validator("categories", mode="before")
    @classmethod
    def _known_categories(cls, value: object) -> object:
        if isinstance(value, dict):
            known = {c.value for c in ALL_CATEGORIES}
            for name in value:
                if name not in known:
                    raise ValueError(
                        f"unknown category '{name}' (the categories of privacy statement §6: {', '.join(sorted(known))})"
                    )
            missing = [c.value for c in ALL_CATEGORIES if c.value not in value]
            if missing:
                raise ValueError(f"categories missing from the data map: {', '.join(missing)}")
        return value

    @model_validator(mode="after")
    def _rules_consistent(self) -> Self:
        seen: set[str] = set()
        for category, entry in self.categories.items():
            for i, rule in enumerate(entry.retention):
                where = f"categories.{category}.retention[{i}] ({rule.rule})"
                if rule.rule in seen:
                    raise ValueError(f"{where}: rule name '{rule.rule}' is used twice")
                seen.add(rule.rule)
                if rule.participant not in self.participants:
                    raise ValueError(
                        f"{where}: participant '{rule.participant}' is not listed in participants"
                        f" ({', '.join(self.participants)})"
                    )
        return self

    def rules(self) -> list[tuple[Category, Rule]]:
        """Every retention rule with its category, in the order of the file."""
        return [(Category(category), rule) for category, entry in self.categories.items() for rule in entry.retention]

    def rule(self, name: str) -> tuple[Category, Rule]:
        for category, rule in self.rules():
            if rule.rule == name:
                return category, rule
        raise KeyError(name)

    def participants_of(self, category: Category) -> list[str]:
        return sorted({r.participant for r in self.categories[category.value].retention})


def _where(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not part.startswith(("function-", "literal[", "int", "str")):  # pydantic's internal steps
            text += f".{part}" if text else part
    return text or "(top level)"


def _rule_name(raw: dict[str, object], loc: tuple[int | str, ...]) -> str:
    """`` (rule <name>)`` when the error lies inside a named retention rule."""
    if len(loc) < 4 or loc[0] != "categories" or loc[2] != "retention" or not isinstance(loc[3], int):
        return ""
    try:
        name = raw["categories"][loc[1]]["retention"][loc[3]]["rule"]  # type: ignore[index]
    except (KeyError, IndexError, TypeError):
        return ""
    return f" (rule {name})" if isinstance(name, str) else ""


def _message(error: dict[str, object]) -> str:
    message = str(error.get("msg", "invalid"))
    return message.removeprefix("Value error, ")


def parse_datamap(raw: dict[str, object], *, origin: str = "data map") -> DataMap:
    """Validate a data map already read from TOML; :class:`DataMapError` names every bad entry."""
    try:
        return DataMap.model_validate(raw)
    except ValidationError as e:
        problems = []
        for error in e.errors():
            loc = tuple(error["loc"])
            where = _where(loc) + _rule_name(raw, loc)
            what = _message(dict(error))
            if error["type"] == "missing":
                what = "required but missing"
            elif error["type"] == "extra_forbidden":
                what = "unknown key"
            problems.append(f"  {where}: {what}")
        raise DataMapError(f"{origin} is invalid:\n" + "\n".join(problems)) from None


def load_datamap(path: Path) -> DataMap:
    """Read and validate the data map file; :class:`DataMapError` with a clear message if not."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataMapError(f"data map {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise DataMapError(f"data map {path} is not valid TOML: {e}") from None
    return parse_datamap(raw, origin=f"data map {path}")
