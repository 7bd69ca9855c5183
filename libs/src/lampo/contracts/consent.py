"""``consent.inbound.v1`` (consents, withdrawals, objections) and ``consent.events.v1``.

``purpose`` is a plain string here: the consent service owns the list of known purposes
(at least ``profiling`` and ``direct_marketing``) and answers unknown ones itself.
"""

from __future__ import annotations

from typing import Literal

from lampo.contracts._base import Identifier, InboundContract, OutboundContract, Text, Timestamp

ObjectionScope = Literal["processing", "direct_marketing", "profiling", "automated_decisions"]
ConsentState = Literal["granted", "withdrawn", "objected"]


class ConsentGiven(InboundContract):
    """``consent.given``."""

    customer_number: Identifier
    purpose: Text
    channel: Text
    at: Timestamp


class ConsentWithdrawn(InboundContract):
    """``consent.withdrawn``: takes effect at once."""

    customer_number: Identifier
    purpose: Text
    channel: Text
    at: Timestamp


class ObjectionFiled(InboundContract):
    """``objection.filed`` (GDPR Art. 21; direct marketing objections are absolute)."""

    customer_number: Identifier
    scope: ObjectionScope
    at: Timestamp


class ConsentChanged(OutboundContract):
    """``consent.changed`` on ``consent.events.v1``: read by every system that profiles or markets."""

    customer_number: Identifier
    purpose: Text
    state: ConsentState
    effective_at: Timestamp
    states: dict[Text, ConsentState] | None = None
    """Extension (optional): every current purpose of this customer, ``{purpose: state}``, after
    this change. The topic is compacted by its key, ``customer_number``, so only the last record
    per customer survives compaction; carrying the whole state in it lets a new reader rebuild
    the current state of every purpose from the compacted topic alone."""
