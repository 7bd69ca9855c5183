"""Proactive accuracy checks (privacy statement §12): which customers have invalid or missing
required data, which identity codes appear on several customer numbers, whose contact data has
not been confirmed for a number of years. Counts and customer numbers only: never a value.
Restricted subjects are left out (their data is stored, not used)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from lampo.crypto import KeyRing
from lampo.registry.domain import accuracy_problems
from lampo.registry.store import RegistryStore


@dataclass
class AccuracyReport:
    unconfirmed_years: int
    problems: dict[str, list[str]] = field(default_factory=dict)
    """customer number -> rule names (``missing_contact``, ``invalid_person``...)."""
    duplicate_identity_codes: list[list[str]] = field(default_factory=list)
    """Groups of customer numbers sharing one identity code (found by its blind index)."""
    unconfirmed_contacts: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "invalid_or_missing": {"count": len(self.problems), "customers": self.problems},
            "duplicate_identity_codes": {
                "count": len(self.duplicate_identity_codes),
                "groups": self.duplicate_identity_codes,
            },
            "unconfirmed_contacts": {
                "years": self.unconfirmed_years,
                "count": len(self.unconfirmed_contacts),
                "customers": self.unconfirmed_contacts,
            },
        }


async def accuracy_report(
    conn: asyncpg.Connection, keys: KeyRing, now: datetime, unconfirmed_years: int
) -> AccuracyReport:
    store = RegistryStore(conn, keys)
    report = AccuracyReport(unconfirmed_years)
    customers: dict[str, tuple[str, str, dict[str, Any]]] = {}
    rows = await store.current_sections()
    ciphers = await store.ciphers({r["subject_id"] for r in rows}, create=False)
    for n, r in enumerate(rows):
        if n % 200 == 0:
            await asyncio.sleep(0)  # in the service (GET /v1/accuracy): let its consumers breathe
        kind_sections = customers.setdefault(r["customer_number"], (r["subject_id"], r["kind"], {}))
        if r["section"] is None:
            continue
        cipher = ciphers.get(r["subject_id"])
        text = cipher.decrypt(r["section"], bytes(r["payload"])) if cipher else None
        kind_sections[2][r["section"]] = json.loads(text) if text else None
    for customer, (_, kind, sections) in customers.items():
        problems = accuracy_problems(kind, sections)
        if problems:
            report.problems[customer] = problems
    report.duplicate_identity_codes = await store.duplicate_identity_codes()
    # A year is 365.25 days here: "not confirmed for N years" is a review trigger, not a legal period.
    report.unconfirmed_contacts = await store.unconfirmed_contacts(now - timedelta(days=365.25 * unconfirmed_years))
    return report
