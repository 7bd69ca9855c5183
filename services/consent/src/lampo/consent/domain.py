"""The consent rules: how a consent, a withdrawal or an objection moves the current state of a
customer's purpose, and whether a purpose may use a customer now. No Kafka, no SQL.

Decisions (documented here because the contracts leave them open):

* Order is the event's own time (``at``), not arrival order. An event older than the current
  state is recorded in the ledger as proof but changes nothing (outcome ``stale``). At equal
  times the more restrictive state wins (objected > withdrawn > granted), so the answer does
  not depend on delivery order.
* A withdrawal without a prior consent is accepted: the state becomes ``withdrawn`` (publishing
  it tells every system that might have assumed consent to stop) and the ledger entry notes
  ``no prior consent``.
* A withdrawal does not lift an objection: the state stays ``objected`` (noted in the ledger).
* An objection sets ``objected`` on every purpose whose ``objection_scopes`` cover its scope
  (``processing`` covers all). For direct marketing it is absolute (GDPR Art. 21(3)): no
  balancing against the controller's interests; only the customer's own later consent
  (``consent.given`` with a later ``at``) grants the purpose again.
* An unknown customer number is accepted: this service keeps no customer register (no service
  reads another's tables), and a consent may be collected before the customer record exists
  (a prospect on a web form). The ledger proves it either way.
* An unknown purpose is refused (dead-lettered ``unknown_purpose``): purposes are data, and a
  consent to a purpose nobody declared cannot be demonstrated or honoured.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from lampo.controller import controller

State = Literal["granted", "withdrawn", "objected"]
Kind = Literal["consent.given", "consent.withdrawn", "objection.filed"]
Outcome = Literal["changed", "unchanged", "stale"]

_RANK: dict[str, int] = {"granted": 0, "withdrawn": 1, "objected": 2}
_STATE_OF: dict[str, State] = {
    "consent.given": "granted",
    "consent.withdrawn": "withdrawn",
    "objection.filed": "objected",
}

CONTROLLER = controller().receipt()  # the controller as the privacy statement names it (lampo.controller)
RECEIPT_VERSION = "KI-CR-v1.1.0"
CATEGORY = "customer_relationship"
"""The data category (DESIGN.md §6) of consents, withdrawals and objections: marketing and
authorisations belong to the customer relationship."""


@dataclass(frozen=True)
class Purpose:
    name: str
    legal_description: str
    consent_text_version: str
    objection_scopes: frozenset[str]
    objection_basis: str


@dataclass(frozen=True)
class Current:
    state: State
    effective_at: datetime
    event_id: str
    scope: str | None = None
    suppressed: bool = False
    """True when this state comes from a suppression entry kept after an erasure."""


@dataclass(frozen=True)
class ConsentEvent:
    """One inbound event, whatever its kind."""

    event_id: str
    kind: Kind
    customer_number: str
    at: datetime
    source: str
    purpose: str | None = None
    scope: str | None = None
    channel: str | None = None


@dataclass(frozen=True)
class Decision:
    purpose: str
    outcome: Outcome
    state_after: State
    note: str | None
    current: Current
    """The current state after the event (unchanged when stale)."""


class UnknownPurposeError(ValueError):
    def __init__(self, purpose: str) -> None:
        super().__init__(purpose)
        self.purpose = purpose


def purposes_of(event: ConsentEvent, purposes: Mapping[str, Purpose]) -> list[str]:
    """The purposes an event concerns: its own, or those an objection's scope covers."""
    if event.kind == "objection.filed":
        return sorted(p.name for p in purposes.values() if event.scope in p.objection_scopes)
    assert event.purpose is not None
    if event.purpose not in purposes:
        raise UnknownPurposeError(event.purpose)
    return [event.purpose]


def decide(event: ConsentEvent, purpose: str, current: Current | None) -> Decision:
    """Apply one event to the current state of one purpose."""
    wanted = _STATE_OF[event.kind]
    scope = event.scope if event.kind == "objection.filed" else None
    new = Current(wanted, event.at, event.event_id, scope)
    if current is None:
        note = "no prior consent" if event.kind == "consent.withdrawn" else None
        return Decision(purpose, "changed", wanted, note, new)
    if event.at < current.effective_at or (event.at == current.effective_at and _RANK[wanted] < _RANK[current.state]):
        note = f"older than the current state ({current.state} at {current.effective_at.isoformat()}): no effect"
        return Decision(purpose, "stale", current.state, note, current)
    if event.kind == "consent.withdrawn" and current.state == "objected":
        note = "objection stands: a withdrawal does not lift it"
        return Decision(purpose, "unchanged", "objected", note, current)
    if wanted == current.state and not current.suppressed:
        return Decision(purpose, "unchanged", wanted, f"already {wanted}", new)
    note = None
    if current.suppressed:
        note = "after erasure: supersedes the suppression entry" if wanted == "granted" else "after erasure"
    return Decision(purpose, "changed", wanted, note, new)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str


def may_use(
    purpose: Purpose | None, purpose_name: str, current: Current | None, restricted_since: datetime | None = None
) -> Verdict:
    """May ``purpose`` use the customer now? Only with a current, granted consent, and never
    while the customer's processing is restricted at their request (GDPR Art. 18: every purpose
    here is processing beyond storage, so a restriction stops each of them, consent or not)."""
    if purpose is not None and restricted_since is not None:
        when = restricted_since.isoformat()
        return Verdict(False, f"processing restricted at the customer's request since {when} (GDPR Art. 18)")
    return _consented(purpose, purpose_name, current)


def _consented(purpose: Purpose | None, purpose_name: str, current: Current | None) -> Verdict:
    if purpose is None:
        return Verdict(False, f"unknown purpose '{purpose_name}': no consent can exist for it")
    if current is None:
        return Verdict(False, "no consent recorded")
    when = current.effective_at.isoformat()
    if current.state == "granted":
        return Verdict(True, f"consent granted at {when} (text version {purpose.consent_text_version})")
    if current.state == "withdrawn":
        return Verdict(False, f"consent withdrawn at {when}")
    basis = purpose.objection_basis.split(":")[0]
    if current.suppressed:
        return Verdict(False, f"objection ({current.scope}) kept as a suppression entry after erasure; {basis}")
    return Verdict(False, f"objection ({current.scope}) filed at {when}; {basis}")


def receipt(event: ConsentEvent, purpose: Purpose, decision: Decision) -> dict[str, Any]:
    """A consent receipt shaped after the Kantara Initiative Consent Receipt v1.1, for one
    change of state. ``consentTimestamp`` is Unix seconds as in the specification."""
    state = decision.state_after
    return {
        "version": RECEIPT_VERSION,
        "jurisdiction": "FI",
        "consentTimestamp": int(event.at.timestamp()),
        "collectionMethod": event.channel or ("objection" if event.kind == "objection.filed" else "unspecified"),
        "consentReceiptID": str(uuid.uuid4()),
        "language": "fi",
        "piiPrincipalId": event.customer_number,
        "piiControllers": [CONTROLLER],
        "policyUrl": "urn:lampo:privacy-statement",
        "services": [
            {
                "service": "Muuramen Lämpö customer relationship",
                "purposes": [
                    {
                        "purpose": purpose.name,
                        "purposeDescription": purpose.legal_description,
                        "consentType": "EXPLICIT",
                        "purposeCategory": [purpose.name],
                        "piiCategory": ["customer_relationship"],
                        "primaryPurpose": False,
                        "termination": "withdrawal or objection at any time (privacy statement §5, §13)",
                        "thirdPartyDisclosure": False,
                        "consentTextVersion": purpose.consent_text_version,
                        "state": state,
                    }
                ],
            }
        ],
        "sensitive": False,
        "spiCat": [],
        "event": {"id": event.event_id, "type": event.kind, "scope": event.scope, "effectiveAt": event.at.isoformat()},
    }
