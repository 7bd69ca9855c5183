"""``billing.inbound.v1``: invoices, payments, collection and credit checks from billing.

Amounts are euro decimal strings, kept as sent (``Decimal(amount)`` to compute).
"""

from __future__ import annotations

from datetime import date

from lampo.contracts._base import Identifier, InboundContract, Text, Timestamp
from lampo.contracts.identifiers import EuroAmount


class InvoiceLine(InboundContract):
    text: str
    amount_eur: EuroAmount


class InvoiceIssued(InboundContract):
    """``invoice.issued``. ``total_eur`` is not checked against the lines (VAT, rounding)."""

    customer_number: Identifier
    invoice_number: Identifier
    issued_at: Timestamp
    due_date: date
    total_eur: EuroAmount
    lines: list[InvoiceLine]


class PaymentReceived(InboundContract):
    """``payment.received``."""

    customer_number: Identifier
    invoice_number: Identifier
    paid_at: Timestamp
    amount_eur: EuroAmount


class CollectionOpened(InboundContract):
    """``collection.opened``: the invoice went to a debt-collection agency."""

    customer_number: Identifier
    invoice_number: Identifier
    agency: Text
    opened_at: Timestamp


class CreditChecked(InboundContract):
    """``credit.checked``: ``result`` is the provider's verdict as text."""

    customer_number: Identifier
    checked_at: Timestamp
    provider: Text
    result: Text
