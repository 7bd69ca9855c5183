"""The register's rules, free of Kafka and SQL: how an upsert splits into sections, which §6
category each section belongs to, which update wins, where each datum comes from, what a
rectification does, and the consumption profile."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from pydantic import ValidationError

from lampo.contracts.categories import Category
from lampo.contracts.registry import Contact, ContactPersonFor, Corrections, CustomerUpserted, Organisation, Person

# Section of customer.upserted -> data category of DESIGN.md §6.
SECTION_CATEGORY: dict[str, str] = {
    "person": "basic",
    "organisation": "basic",
    "metering_points": "basic",
    "account": "basic",
    "contact": "contact",
    "contact_person_for": "contact_person",
}

# Which section holds which blind-indexed value (kind of lookup -> (section, field)).
LOOKUP_FIELDS: Final = {
    "personal_identity_code": ("person", "personal_identity_code"),
    "email": ("contact", "email"),
    "business_id": ("organisation", "business_id"),
}

# Blind indexes for the staff look-up by name (issue 18): exact match of the normalised name
# (case-folded, whitespace collapsed), a person's in both orders. Never used to match identities:
# two people may share a name.
NAME_LOOKUPS: Final = ("person_name", "person_name_last_first", "organisation_name")


def normalise_name(value: str) -> str:
    """A name as its blind index keys it: case-folded, whitespace collapsed to single spaces."""
    return " ".join(value.split()).casefold()


def name_lookups(section: str, payload: dict[str, Any] | list[Any] | None) -> dict[str, str | None]:
    """The name look-ups ``section`` carries: kind -> normalised name (None clears it); empty
    when the section carries no name."""
    data = payload if isinstance(payload, dict) else {}
    if section == "person":
        first, last = data.get("first_names"), data.get("last_name")
        if isinstance(first, str) and isinstance(last, str) and (first.strip() or last.strip()):
            return {
                "person_name": normalise_name(f"{first} {last}"),
                "person_name_last_first": normalise_name(f"{last} {first}"),
            }
        return {"person_name": None, "person_name_last_first": None}
    if section == "organisation":
        name = data.get("name")
        return {"organisation_name": normalise_name(name) if isinstance(name, str) and name.strip() else None}
    return {}


# The section a subject of each kind must have when it is created.
REQUIRED_SECTION: Final = {"person": "person", "entrepreneur": "person", "organisation": "organisation"}


@dataclass(frozen=True)
class SectionUpdate:
    section: str
    category: str
    payload: dict[str, Any] | list[Any] | None
    """None: the section was sent as null and is cleared."""


@dataclass(frozen=True)
class Provenance:
    source_system: str
    origin: str
    legal_basis: str
    event_time: datetime
    event_id: str


def sections_of(upsert: CustomerUpserted) -> list[SectionUpdate]:
    """The sections present in an upsert: present ones replace (null clears), absent ones are left."""
    updates: list[SectionUpdate] = []
    for section in upsert.sections_present():
        value = getattr(upsert, section)
        payload = value if value is None or isinstance(value, list) else value.model_dump(mode="json")
        updates.append(SectionUpdate(section, SECTION_CATEGORY[section], payload))
    return updates


def lookup_value(kind: str, section: str, payload: dict[str, Any] | list[Any] | None) -> tuple[bool, str | None]:
    """(applies, value): whether ``section`` carries the ``kind`` lookup, and its value (None clears)."""
    wanted_section, field = LOOKUP_FIELDS[kind]
    if section != wanted_section:
        return False, None
    if not isinstance(payload, dict):
        return True, None
    value = payload.get(field)
    return True, value if isinstance(value, str) and value else None


def lookup_keys(upsert: CustomerUpserted) -> dict[str, str]:
    """Values indexed (by keyed hash) for identity resolution."""
    keys: dict[str, str] = {}
    for update in sections_of(upsert):
        for kind in LOOKUP_FIELDS:
            applies, value = lookup_value(kind, update.section, update.payload)
            if applies and value:
                keys[kind] = value
    return keys


def system_of(source: str) -> str:
    """``urn:system:billing`` -> ``billing``: the source system named in a CloudEvent's source."""
    return source.rstrip("/").rsplit(":", 1)[-1].rsplit("/", 1)[-1] or source


# Provenance of the event types that carry none of their own (only customer.upserted has
# ``source`` and ``legal_basis``): a contract and its correspondence come from the subject under
# the contract; consumption readings come from the metering systems (a third party to the subject)
# and are processed to perform the supply contract; the relationship's end is recorded for the
# controller's legal obligations (accounting, retention clocks).
EVENT_PROVENANCE: Final = {
    "customer.relationship_ended": ("subject", "legal_obligation"),
    "contract.updated": ("subject", "contract"),
    "consumption.reported": ("third_party", "contract"),
    "interaction.logged": ("subject", "contract"),
}


# --- rectification ---------------------------------------------------------------------------

_SECTION_MODEL: Final[dict[str, Any]] = {
    "person": Person,
    "organisation": Organisation,
    "contact": Contact,
    "contact_person_for": ContactPersonFor,
}


class InvalidCorrection(ValueError):
    """A correction would leave a section that breaks its contract (names the section only)."""


def corrected_sections(corrections: Corrections) -> list[str]:
    """Sections a rectification changes. A section or field given as null is left as it is: a
    task serialised in full (``CloudEvent.new`` dumps every field) carries nulls for everything
    not sent, so a null cannot be told from "not sent", and a rectification must never erase by
    accident (erasure is its own task)."""
    return [s for s in corrections.sections_present() if getattr(corrections, s) is not None]


def corrected(
    section: str, stored: dict[str, Any] | list[Any] | None, corrections: Corrections
) -> dict[str, Any] | list[Any] | None:
    """The section after applying ``corrections``: fields sent replace, absent (or null) ones stay."""
    value = getattr(corrections, section)
    if value is None:
        return stored
    if isinstance(value, list):
        return value
    sent = value.model_dump(mode="json", exclude_none=True)
    merged = {**(stored if isinstance(stored, dict) else {}), **sent}
    model = _SECTION_MODEL.get(section)
    if model is not None:
        try:
            merged = model.model_validate(merged).model_dump(mode="json")
        except ValidationError as e:
            raise InvalidCorrection(f"{_field_of(section, e)}: incomplete or invalid after correction") from e
    return merged


def _field_of(section: str, error: ValidationError) -> str:
    """``corrections.<section>.<field>`` of the first error (the field's name, never its value)."""
    errors = error.errors(include_input=False)
    where = [str(p) for p in errors[0]["loc"]] if errors else []
    return ".".join(["corrections", section, *where])


def section_fits_kind(kind: str, section: str) -> bool:
    """Whether a subject of ``kind`` may hold ``section`` (customer.upserted's kind rules): a person
    has no organisation, an organisation no person."""
    return not ((kind == "person" and section == "organisation") or (kind == "organisation" and section == "person"))


# --- profiling (§5: only with consent) ---------------------------------------------------------

PROFILING: Final = "profiling"
DIRECT_MARKETING: Final = "direct_marketing"
PROCESSING: Final = "processing"
# Purposes whose objection stops profiling: an objection to profiling, or to processing at all.
OBJECTION_PURPOSES: Final = (PROFILING, PROCESSING)
# Purposes of consent.events.v1 the register keeps a copy of: those that stop profiling, and
# direct marketing (the audience it exports).
TRACKED_PURPOSES: Final = (*OBJECTION_PURPOSES, DIRECT_MARKETING)

BANDS: Final = (
    (Decimal(5), "under_5_mwh"),
    (Decimal(10), "5_10_mwh"),
    (Decimal(20), "10_20_mwh"),
    (Decimal(50), "20_50_mwh"),
)


@dataclass(frozen=True)
class Reading:
    period_start: date
    period_end: date
    energy_mwh: Decimal
    annual_forecast_mwh: Decimal | None = None


@dataclass(frozen=True)
class Profile:
    annual_mwh: Decimal
    band: str
    trend: str  # rising | falling | stable | unknown
    reports: int


def profiling_allowed(states: dict[str, str]) -> bool:
    """Profiling runs only while profiling is granted and no objection stands."""
    if states.get(PROFILING) != "granted":
        return False
    return not any(states.get(p) == "objected" for p in OBJECTION_PURPOSES)


def band_of(annual_mwh: Decimal) -> str:
    for limit, name in BANDS:
        if annual_mwh < limit:
            return name
    return "over_50_mwh"


@dataclass(frozen=True)
class ReadingTotals:
    """What a profile is computed from: the customer's readings summed over the twelve months up
    to the latest reading (``current``) and the twelve before them (``previous``), periods
    attributed to the window their end falls in. The store sums them in the database
    (``RegistryStore.reading_totals``), so a subject with 50,000 daily readings costs one
    aggregate, not 50,000 rows brought into the process, at every batch of its readings."""

    latest: date
    earliest: date
    reports: int
    current: Decimal
    previous: Decimal
    previous_reports: int
    # the annual forecast of the latest reading that carried one (of several that day, the largest)
    forecast: Decimal | None


def totals_of(readings: list[Reading]) -> ReadingTotals | None:
    if not readings:
        return None
    latest = max(r.period_end for r in readings)
    year_ago, two_years_ago = latest - timedelta(days=365), latest - timedelta(days=730)
    previous = [r for r in readings if two_years_ago < r.period_end <= year_ago]
    forecasts = [(r.period_end, r.annual_forecast_mwh) for r in readings if r.annual_forecast_mwh is not None]
    return ReadingTotals(
        latest=latest,
        earliest=min(r.period_start for r in readings),
        reports=len(readings),
        current=sum((r.energy_mwh for r in readings if r.period_end > year_ago), Decimal(0)),
        previous=sum((r.energy_mwh for r in previous), Decimal(0)),
        previous_reports=len(previous),
        forecast=max(forecasts)[1] if forecasts else None,
    )


def profile_from(t: ReadingTotals) -> Profile:
    """Annual consumption band and trend: the twelve months up to the latest reading compared
    with the twelve before them. Without a full previous year the trend is ``unknown``; the band
    then uses the latest annual forecast when one was reported, else the last twelve months."""
    full_year = t.earliest <= t.latest - timedelta(days=365) + timedelta(days=1)
    annual = t.current if full_year or t.forecast is None else t.forecast or t.current
    if not t.previous_reports or t.previous == 0:
        trend = "unknown"
    elif t.current > t.previous * Decimal("1.05"):
        trend = "rising"
    elif t.current < t.previous * Decimal("0.95"):
        trend = "falling"
    else:
        trend = "stable"
    return Profile(annual_mwh=annual, band=band_of(annual), trend=trend, reports=t.reports)


# --- restriction (Art. 18) and objection (Art. 21) ---------------------------------------------

# Why a subject is restricted (one subject may have several reasons at once).
RESTRICTED_ON_REQUEST: Final = "request"
OBJECTION_PENDING: Final = "objection_pending"
OBJECTION_UPHELD: Final = "objection_upheld"

# What an objection filed through a DSAR does at once, per scope: the status it is recorded with.
OBJECTION_STATUS: Final = {
    PROFILING: "honoured",
    DIRECT_MARKETING: "honoured",
    "automated_decisions": "recorded",
    PROCESSING: "pending",
}

NO_AUTOMATED_DECISIONS: Final = (
    "GDPR Art. 21(1) and 22: the register makes no decisions based solely on automated processing;"
    " the objection is recorded"
)
PROCESSING_RESTRICTED: Final = (
    "GDPR Art. 21(1) and 18(1)(d): processing based on legitimate interests is restricted until the"
    " objection is decided"
)
RESTRICTION_KEPT: Final = "GDPR Art. 18(1)(d): an objection to processing is still to be decided or was upheld"


def objection_decided(upheld: bool) -> tuple[str, str | None]:
    """(objection status, restriction reason left standing) after the controller's decision on an
    objection to processing: upheld, processing on legitimate interests stops for good (only
    storage goes on); rejected (compelling legitimate grounds, Art. 21(1)), the restriction goes."""
    return ("upheld", OBJECTION_UPHELD) if upheld else ("rejected", None)


# --- categories held, for access and erasure ---------------------------------------------------

HELD_CATEGORIES: Final = (
    Category.BASIC,
    Category.CONTACT_PERSON,
    Category.CONTACT,
    Category.CUSTOMER_RELATIONSHIP,
    Category.SERVICES,
    Category.CONSUMPTION,
)
"""The §6 categories this register holds (billing and other_consented live elsewhere)."""


# --- accuracy (§12) ------------------------------------------------------------------------------


def accuracy_problems(kind: str, sections: dict[str, dict[str, Any] | list[Any] | None]) -> list[str]:
    """What is missing or invalid in a customer's current sections (rule names, no values)."""
    problems: list[str] = []
    required = REQUIRED_SECTION.get(kind)
    if required and not sections.get(required):
        problems.append(f"missing_{required}")
    contact = sections.get("contact")
    if not isinstance(contact, dict):
        problems.append("missing_contact")
    elif not (contact.get("email") or contact.get("phone") or contact.get("street")):
        problems.append("contact_without_channel")
    for section, payload in sections.items():
        model = _SECTION_MODEL.get(section)
        if model is None or not isinstance(payload, dict):
            continue
        try:
            model.model_validate(payload)
        except ValidationError:
            problems.append(f"invalid_{section}")
    return problems


# The register's tables outside ``sections``: (category, item kind, fields shown), for access
# results and the staff read API.
HELD_TABLES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "relationship_ends": ("customer_relationship", "relationship_end", ("ended_at",)),
    "contracts": (
        "customer_relationship",
        "contract",
        ("contract_id", "product", "status", "valid_from", "valid_to", "metering_point"),
    ),
    "consumption": (
        "consumption",
        "consumption_report",
        ("metering_point", "period_start", "period_end", "energy_mwh", "annual_forecast_mwh"),
    ),
    "interactions": ("customer_relationship", "interaction", ("interaction_id", "channel", "at", "summary")),
    "profiles": ("services", "profile", ("annual_mwh", "band", "trend", "reports", "computed_at")),
}
