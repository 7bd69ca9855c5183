"""The privacy statement, built from the data the running system itself uses, so the published
statement and the system cannot disagree (issue 18; DESIGN.md "The job", §1-§14).

Its sources, each the one the services read:

- the controller: :mod:`lampo.controller` (``LAMPO_CONTROLLER_*``), as receipts and package
  manifests name it;
- the data map ``services/retention/datamap.toml``: categories, purposes, legal bases, sources,
  recipients (EU/EEA only) and the retention rules the retention service's sweeps apply;
- which system keeps which category: ``LAMPO_PARTICIPANT_CATEGORIES``, the map the DSAR
  coordinator plans requests with (default :data:`lampo.contracts.categories.DEFAULT_PARTICIPANT_CATEGORIES`);
- who may see what: the staff roles (``services/staff/src/lampo/staff/roles.toml``), the matrix
  the staff service enforces;
- how long personal data stays in transit: the retention of the Kafka topics that carry it
  (:data:`lampo.messaging.topics.TOPICS`, as ``lampo topics provision`` sets it on the broker);
- the consent purposes and their legal descriptions: the consent service's ``purposes`` table
  (its API answers them), and the rights: the request kinds the coordinator takes.

:func:`build_statement` is pure (data in, a structured :class:`Statement` out); :func:`read_toml`
and :func:`load_statement` read the files. The texts inside the data (descriptions, reasons) are
the data map's own, in its language; the page around them is translated (lampo.portal).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, get_args

from lampo.contracts.categories import ALL_CATEGORIES
from lampo.contracts.identifiers import is_eu_eea
from lampo.contracts.kinds import DsarKind
from lampo.controller import Controller
from lampo.messaging.topics import TopicSpec

__all__ = [
    "LEGAL_BASIS_ARTICLE",
    "ConsentPurpose",
    "DataCategory",
    "Recipient",
    "Retention",
    "StaffRole",
    "Statement",
    "TransitCopy",
    "build_statement",
    "disagreements",
    "load_statement",
    "read_toml",
]

LEGAL_BASIS_ARTICLE = {
    "consent": "GDPR Art. 6(1)(a)",
    "contract": "GDPR Art. 6(1)(b)",
    "legal_obligation": "GDPR Art. 6(1)(c)",
    "legitimate_interest": "GDPR Art. 6(1)(f)",
}


@dataclass(frozen=True)
class Recipient:
    name: str
    country: str
    role: str


@dataclass(frozen=True)
class Retention:
    """One retention rule as the sweeps apply it: kept ``period`` after ``trigger``."""

    rule: str
    period: dict[str, int]
    """``{"years": n, "months": n, "days": n}``."""
    trigger: str
    reason: str
    law: str | None
    held_by: str


@dataclass(frozen=True)
class DataCategory:
    name: str
    description: str
    purposes: tuple[str, ...]
    legal_bases: tuple[str, ...]
    sources: tuple[str, ...]
    recipients: tuple[Recipient, ...]
    retention: tuple[Retention, ...]
    systems: tuple[str, ...]
    """The systems that keep data of this category (LAMPO_PARTICIPANT_CATEGORIES)."""
    roles: tuple[str, ...]
    """The staff roles that may read it (roles.toml)."""


@dataclass(frozen=True)
class ConsentPurpose:
    name: str
    description: str
    consent_text_version: str


@dataclass(frozen=True)
class StaffRole:
    name: str
    description: str
    read: tuple[str, ...]
    change: tuple[str, ...]


@dataclass(frozen=True)
class TransitCopy:
    """A Kafka topic that carries personal data in clear, and how long the broker keeps it."""

    topic: str
    hours: int
    reason: str


@dataclass(frozen=True)
class Statement:
    controller: dict[str, Any]
    data_protection_contact: str
    subject_categories: tuple[str, ...]
    purposes: tuple[str, ...]
    legal_bases: tuple[str, ...]
    categories: tuple[DataCategory, ...]
    consent_purposes: tuple[ConsentPurpose, ...]
    recipients: tuple[Recipient, ...]
    transfers_outside_eu_eea: tuple[Recipient, ...]
    roles: tuple[StaffRole, ...]
    transit: tuple[TransitCopy, ...]
    security_measures: tuple[str, ...]
    rights: tuple[str, ...]
    digest: str
    """SHA-256 of everything above: which data this statement was built from."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def category(self, name: str) -> DataCategory:
        return next(c for c in self.categories if c.name == name)


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in (value or ()))


def _hours(topic: TopicSpec) -> int:
    return topic.retention_ms // (60 * 60 * 1000)


def build_statement(
    *,
    controller: Controller,
    datamap: Mapping[str, Any],
    participant_categories: Mapping[str, Sequence[str]],
    roles: Mapping[str, Mapping[str, Any]],
    topics: Sequence[TopicSpec],
    consent_purposes: Sequence[ConsentPurpose] = (),
    rights: Sequence[str] = get_args(DsarKind),
) -> Statement:
    """The statement from its sources (see the module's text). ``datamap``: the data map as read
    from TOML (the retention service validates it at start-up); ``roles``: ``roles.toml``'s
    ``[roles]`` table. Categories come in the order of §6; a category the data map lacks is left out."""
    entries: Mapping[str, Any] = datamap.get("categories", {})
    categories = []
    for category in ALL_CATEGORIES:
        entry = entries.get(category.value)
        if entry is None:
            continue
        categories.append(
            DataCategory(
                name=category.value,
                description=str(entry.get("description", "")),
                purposes=_strings(entry.get("purposes")),
                legal_bases=_strings(entry.get("legal_bases")),
                sources=_strings(entry.get("sources")),
                recipients=tuple(
                    Recipient(str(r["name"]), str(r["country"]), str(r.get("role", "processor")))
                    for r in entry.get("recipients", ())
                ),
                retention=tuple(
                    Retention(
                        rule=str(r["rule"]),
                        period={unit: int(r.get("period", {}).get(unit, 0)) for unit in ("years", "months", "days")},
                        trigger=str(r["trigger"]),
                        reason=str(r["reason"]),
                        law=str(r["law"]) if r.get("law") else None,
                        held_by=str(r["participant"]),
                    )
                    for r in entry.get("retention", ())
                ),
                systems=tuple(sorted(p for p, held in participant_categories.items() if category.value in held)),
                roles=tuple(sorted(name for name, role in roles.items() if category.value in role.get("read", ()))),
            )
        )
    recipients = tuple(dict.fromkeys(r for c in categories for r in c.recipients))
    purposes = tuple(dict.fromkeys([*(p for c in categories for p in c.purposes)]))
    legal_bases = tuple(b for b in LEGAL_BASIS_ARTICLE if any(b in c.legal_bases for c in categories))
    statement = Statement(
        controller={
            **controller.as_dict(),
            "register_short": controller.register_short,
            "contact_title_en": controller.contact_title_en,
        },
        data_protection_contact=str(datamap.get("controller", {}).get("data_protection_contact", controller.contact)),
        subject_categories=_strings(datamap.get("subject_categories")),
        purposes=purposes,
        legal_bases=legal_bases,
        categories=tuple(categories),
        consent_purposes=tuple(sorted(consent_purposes, key=lambda p: p.name)),
        recipients=recipients,
        transfers_outside_eu_eea=tuple(r for r in recipients if not is_eu_eea(r.country)),
        roles=tuple(
            StaffRole(name, str(role.get("description", "")), _strings(role.get("read")), _strings(role.get("change")))
            for name, role in roles.items()
        ),
        transit=tuple(
            TransitCopy(t.name, _hours(t), t.retention_reason) for t in topics if t.personal_data and t.retention_ms > 0
        ),
        security_measures=_strings(datamap.get("security_measures")),
        rights=tuple(rights),
        digest="",
    )
    body = {k: v for k, v in statement.as_dict().items() if k != "digest"}
    return replace(statement, digest=hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest())


def disagreements(controller: Controller, datamap: Mapping[str, Any]) -> list[str]:
    """Where the data map's own ``[controller]`` block names the controller otherwise than
    :mod:`lampo.controller` does (empty: they agree)."""
    named = datamap.get("controller", {})
    found = []
    for field, expected in (("name", controller.name), ("business_id", controller.business_id),
                            ("address", controller.address), ("contact", controller.contact)):  # fmt: skip
        if named.get(field) != expected:
            found.append(field)
    return found


def read_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        return tomllib.load(f)


def load_statement(
    *,
    controller: Controller,
    datamap_file: Path,
    roles_file: Path,
    participant_categories: Mapping[str, Sequence[str]],
    consent_purposes: Sequence[ConsentPurpose] = (),
) -> Statement:
    """:func:`build_statement` from the files the services read, and the broker's topic plan."""
    from lampo.messaging.topics import TOPICS

    return build_statement(
        controller=controller,
        datamap=read_toml(datamap_file),
        participant_categories=participant_categories,
        roles=read_toml(roles_file).get("roles", {}),
        topics=TOPICS,
        consent_purposes=consent_purposes,
    )
