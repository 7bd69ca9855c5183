"""``retention.inbound.v1``: legal holds placed and released by authorities' cases."""

from __future__ import annotations

from pydantic import Field

from lampo.contracts._base import Identifier, InboundContract, Text, Timestamp
from lampo.contracts.categories import Category


class LegalHoldPlaced(InboundContract):
    """``legal_hold.placed``: ``categories`` empty (or absent) means every category is held."""

    hold_id: Identifier
    customer_number: Identifier
    categories: list[Category] = Field(default_factory=list)
    case_reference: Text
    authority: Text
    placed_at: Timestamp


class LegalHoldReleased(InboundContract):
    """``legal_hold.released``."""

    hold_id: Identifier
    customer_number: Identifier
    released_at: Timestamp
