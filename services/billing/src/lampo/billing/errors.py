"""Errors of the billing store. Each rejection carries the dead-letter reason it maps to."""

from __future__ import annotations

from lampo.contracts.errors import Rejected


class BillingRejected(Rejected):
    """Root of billing's rejections of well-formed events."""


class UnknownInvoice(BillingRejected):
    def __init__(self, event_type: str) -> None:
        super().__init__(
            "unknown_invoice", f"data.invoice_number: no invoice with this number for this customer ({event_type})"
        )


class RetentionRulesInvalid(ValueError):
    """The statutory retention rules file does not validate; the service refuses to start."""
