"""Handlers of billing: inbound events, privacy tasks and the run of scheduled deletions."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from lampo.billing.domain import (
    EVENT_KIND,
    PLURAL,
    ItemFacts,
    Keep,
    RetentionRules,
    group_retained,
    legal_date,
    settled,
)
from lampo.billing.errors import UnknownInvoice
from lampo.billing.store import BillingStore, StoredItem, encode, field_of
from lampo.clock import Clock
from lampo.contracts.billing import CollectionOpened, CreditChecked, InvoiceIssued, PaymentReceived
from lampo.contracts.categories import Category
from lampo.contracts.privacy import PrivacyTask
from lampo.crypto import FieldCipher, KeyRing
from lampo.messaging.consumer import BatchHandler, Incoming
from lampo.participant import Participant, TaskOutcome

PARTICIPANT = "billing"

# -- ingest -----------------------------------------------------------------------------------


async def ingest(store: BillingStore, item: Incoming) -> None:
    data = item.event.data
    kind = EVENT_KIND[item.event.envelope.type]
    invoice_number: str | None = None
    if isinstance(data, InvoiceIssued):
        occurred_at, invoice_number = data.issued_at, data.invoice_number
    elif isinstance(data, PaymentReceived | CollectionOpened):
        if not await store.invoice_exists(data.customer_number, data.invoice_number):
            raise UnknownInvoice(item.event.envelope.type)
        invoice_number = data.invoice_number
        occurred_at = data.paid_at if isinstance(data, PaymentReceived) else data.opened_at
    elif isinstance(data, CreditChecked):
        occurred_at = data.checked_at
    else:  # pragma: no cover - the catalog routes only these four types here
        raise TypeError(type(data).__name__)
    customer_number: str = data.customer_number
    _, cipher = await store.cipher_for_ingest(customer_number)
    payload = data.model_dump(mode="json", exclude={"customer_number"})
    blob = cipher.encrypt(field_of(kind, item.id), encode(payload))
    assert blob is not None
    await store.add_item(
        item.id, customer_number, kind=kind, invoice_number=invoice_number, occurred_at=occurred_at, payload=blob
    )
    item.span.set_attribute("lampo.billing.kind", kind)


def make_inbound_handler(keys: KeyRing) -> BatchHandler:
    async def handle(conn: asyncpg.Connection, items: list[Incoming]) -> None:
        store = BillingStore(conn, keys)
        for item in items:
            await ingest(store, item)

    return handle


# -- privacy tasks ----------------------------------------------------------------------------


@dataclass
class Decoded:
    stored: StoredItem
    data: dict[str, Any]


def _decode(cipher: FieldCipher, items: list[StoredItem]) -> list[Decoded]:
    return [Decoded(i, json.loads(cipher.decrypt(field_of(i.kind, i.item_id), i.payload) or "{}")) for i in items]


def _facts(item: Decoded, all_items: list[Decoded]) -> ItemFacts:
    stored = item.stored
    if stored.kind != "collection":
        return ItemFacts(stored.kind, stored.occurred_at)
    same_invoice = [i for i in all_items if i.stored.invoice_number == stored.invoice_number]
    invoice = next((i for i in same_invoice if i.stored.kind == "invoice"), None)
    payments = [i for i in same_invoice if i.stored.kind == "payment"]
    # A collection case, or a (part) payment after the case opened, renews the claim.
    renewals = [i.stored.occurred_at for i in same_invoice if i.stored.kind in ("collection", "payment")]
    paid_in_full = invoice is not None and settled(
        Decimal(invoice.data["total_eur"]), [Decimal(p.data["amount_eur"]) for p in payments]
    )
    return ItemFacts("collection", stored.occurred_at, renewed_at=max(renewals), settled=paid_in_full)


class BillingTasks:
    """The privacy protocol of the billing store."""

    def __init__(self, keys: KeyRing, clock: Clock, rules: RetentionRules) -> None:
        self.keys = keys
        self.clock = clock
        self.rules = rules

    def participant(self, name: str = PARTICIPANT) -> Participant:
        return Participant(
            name,
            {
                "access": self.access,
                "erasure": self.erasure,
                # Retention's purge applies the same statutes as an erasure request.
                "purge": self.erasure,
                "rectification": self.rectification,
                "restriction": self.restriction,
            },
        )

    async def access(self, conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        """Everything billing holds on the subject, per category. Items kept only by a statute
        or restricted at the subject's request are included and marked: Art. 15 covers all
        data still processed (storage is processing), restricted or not."""
        if Category.BILLING not in task.categories:
            return TaskOutcome(result={})
        store = BillingStore(conn, self.keys)
        billing: dict[str, list[dict[str, Any]]] = {name: [] for name in PLURAL.values()}
        for customer_number in task.subject.customer_numbers:
            cipher = await store.cipher(customer_number)
            if cipher is None:
                continue
            for item in _decode(cipher, await store.all_items(customer_number)):
                entry: dict[str, Any] = {"customer_number": customer_number, **item.data}
                entry["restricted"] = item.stored.restricted_reason
                entry["kept_until"] = item.stored.delete_after.isoformat() if item.stored.delete_after else None
                billing[PLURAL[item.stored.kind]].append(entry)
        return TaskOutcome(result={Category.BILLING.value: billing})

    async def erasure(self, conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        """Delete what no statute keeps; restrict, report and schedule the deletion of the rest."""
        if Category.BILLING not in task.categories:
            return TaskOutcome()
        store = BillingStore(conn, self.keys)
        now = self.clock.now()
        today = legal_date(now)
        erased = 0
        kept: list[Keep] = []
        for customer_number in task.subject.customer_numbers:
            cipher = await store.cipher(customer_number)
            if cipher is None:
                continue
            items = _decode(cipher, await store.all_items(customer_number))
            decisions = [(i, self.rules.decide(_facts(i, items), today)) for i in items]
            to_delete = [i.stored.item_id for i, keep in decisions if keep is None]
            to_keep = [(i.stored.item_id, keep.until, keep.legal_basis) for i, keep in decisions if keep is not None]
            erased += await store.delete_items(to_delete)
            kept += [keep for _, keep in decisions if keep is not None]
            if to_keep:
                await store.restrict([item_id for item_id, _, _ in to_keep], "retention", now)
                await store.schedule_deletions(customer_number, task.request_id, to_keep)
                await store.mark_erased(customer_number, now)
            else:
                await store.forget_customer(customer_number)
        return TaskOutcome(erased={Category.BILLING.value: erased}, retained=group_retained(kept))

    async def rectification(self, conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        """Nothing to change here, by design: corrections carry the registry's sections (names,
        contact, identifiers), which billing does not store, and invoices and payments are
        accounting vouchers that must not be altered after the fact. A billing error is corrected
        at source (a credit note or corrected invoice), which arrives here as a new event."""
        return TaskOutcome()

    async def restriction(self, conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        """Art. 18: the subject's items stay stored but leave every normal query and export."""
        if Category.BILLING not in task.categories:
            return TaskOutcome()
        store = BillingStore(conn, self.keys)
        for customer_number in task.subject.customer_numbers:
            ids = [i.item_id for i in await store.all_items(customer_number) if i.restricted_reason is None]
            await store.restrict(ids, "restriction", self.clock.now())
        return TaskOutcome()


# -- scheduled deletions ----------------------------------------------------------------------


async def purge_due(conn: asyncpg.Connection, keys: KeyRing, clock: Clock) -> dict[str, int]:
    """Delete every kept item whose statutory period has ended by ``clock``'s date; destroy the
    data key of each erased customer of whom nothing remains. Returns counts (no personal data)."""
    async with conn.transaction():
        store = BillingStore(conn, keys)
        due = await store.due_deletions(legal_date(clock.now()))
        by_customer: dict[str, list[str]] = defaultdict(list)
        for customer_number, item_id in due:
            by_customer[customer_number].append(item_id)
        deleted = 0
        forgotten = 0
        for customer_number, item_ids in by_customer.items():
            deleted += await store.delete_items(item_ids)
            if await store.is_empty_erased(customer_number):
                forgotten += int(await store.forget_customer(customer_number))
    return {"items_deleted": deleted, "customers_forgotten": forgotten}
