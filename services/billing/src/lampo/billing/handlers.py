"""Handlers of billing: inbound events, privacy tasks and the run of scheduled deletions."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
from aiokafka.structs import ConsumerRecord

from lampo.billing.domain import (
    EVENT_KIND,
    HOLD_STATE_TYPE,
    LEGITIMATE_INTEREST_KINDS,
    OBJECTION_RESTRICTS,
    PLURAL,
    PROVENANCE,
    STATUTORY_RESTRICTION,
    VOUCHER_NOT_ALTERED,
    HoldState,
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
from lampo.contracts.catalog import parser_for
from lampo.contracts.categories import Category
from lampo.contracts.errors import ContractViolation
from lampo.contracts.privacy import Effect, PrivacyTask
from lampo.crypto import FieldCipher, KeyRing
from lampo.messaging.consumer import BatchHandler, Incoming
from lampo.participant import Participant, TaskOutcome

PARTICIPANT = "billing"
log = logging.getLogger("lampo.billing")

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


def decode(cipher: FieldCipher, items: list[StoredItem]) -> list[Decoded]:
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
    """The privacy protocol of the billing store: every task kind is answered; a kind or a
    category billing holds nothing for is done with nothing changed (``nothing_held``)."""

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
                "objection": self.objection,
            },
        )

    async def access(self, conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        """Everything billing holds on the subject, per category. Items kept only by a statute
        or restricted at the subject's request are included and marked: Art. 15 covers all
        data still processed (storage is processing), restricted or not. Each item says where it
        came from and on what basis it is processed (``origin``, ``legal_basis``): none of it is
        data the subject provided under consent or contract, so portability leaves it out."""
        if Category.BILLING not in task.categories:
            return TaskOutcome(result={})
        store = BillingStore(conn, self.keys)
        billing: dict[str, list[dict[str, Any]]] = {name: [] for name in PLURAL.values()}
        for customer_number in task.subject.customer_numbers:
            cipher = await store.cipher(customer_number)
            if cipher is None:
                continue
            for item in decode(cipher, await store.all_items(customer_number)):
                entry: dict[str, Any] = {"customer_number": customer_number, **item.data}
                entry["origin"], entry["legal_basis"] = PROVENANCE[item.stored.kind]
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
            items = decode(cipher, await store.all_items(customer_number))
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

    async def _items(self, store: BillingStore, task: PrivacyTask) -> dict[str, list[StoredItem]]:
        """The subject's items per customer number billing knows (restricted ones included)."""
        found: dict[str, list[StoredItem]] = {}
        for customer_number in task.subject.customer_numbers:
            if await store.cipher(customer_number) is not None:
                found[customer_number] = await store.all_items(customer_number)
        return found

    async def rectification(self, conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        """Billing keeps no addressee of its own: the name and address it holds are those printed
        on issued invoices (their lines), and an issued invoice is an accounting voucher, which
        is not altered after the fact. So nothing changes here, and the answer says so, with the
        law and how many invoices carry the old data. Future invoices take the addressee the
        billing system has from the register (``subject.changed``), not from this store; a
        billing error is corrected at source (a credit note), which arrives as a new event.
        The task names the corrected categories (basic, contact), of which invoices hold copies:
        whichever they are, the answer is about the invoices."""
        store = BillingStore(conn, self.keys)
        invoices = sum(i.kind == "invoice" for items in (await self._items(store, task)).values() for i in items)
        if not invoices:
            return TaskOutcome(effects=[_nothing_held()])
        return TaskOutcome(
            effects=[
                Effect(action="not_altered", category=Category.BILLING, items=invoices, legal_basis=VOUCHER_NOT_ALTERED)
            ]
        )

    async def restriction(self, conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        """Art. 18: the subject's items stay stored but leave every normal query and export, and
        so do items that arrive while the restriction stands. ``lift`` removes the subject's own
        restriction; items kept only by a statute after an erasure stay restricted."""
        if Category.BILLING not in task.categories:
            return TaskOutcome(effects=[_nothing_held()])
        store = BillingStore(conn, self.keys)
        now = self.clock.now()
        held = await self._items(store, task)
        if not held:
            return TaskOutcome(effects=[_nothing_held()])
        effects: list[Effect] = []
        if task.lift:
            lifted = 0
            for customer_number in held:
                await store.restrict_customer(customer_number, None)
                lifted += await store.lift_restriction(customer_number)
            effects.append(Effect(action="restriction_lifted", category=Category.BILLING, items=lifted, at=now))
            statutory = sum(i.restricted_reason == "retention" for items in held.values() for i in items)
            if statutory:
                effects.append(
                    Effect(
                        action="restricted",
                        category=Category.BILLING,
                        items=statutory,
                        legal_basis=STATUTORY_RESTRICTION,
                    )
                )
            return TaskOutcome(effects=effects)
        restricted = 0
        for customer_number, items in held.items():
            await store.restrict_customer(customer_number, now)
            ids = [i.item_id for i in items if i.restricted_reason is None]
            await store.restrict(ids, "restriction", now)
            restricted += len(items)
        return TaskOutcome(effects=[Effect(action="restricted", category=Category.BILLING, items=restricted, at=now)])

    async def objection(self, conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        """Art. 21: billing neither markets, profiles nor decides automatically, so those scopes
        find nothing here. An objection to processing reaches what billing processes on its
        legitimate interest (credit checks): they are restricted until the objection is decided
        (Art. 18(1)(d)). Invoices, payments and collection rest on a statute or the contract,
        which an objection does not reach. The credit checks are restricted as at the subject's
        request: the decision on the objection ends it with a restriction lift (or an erasure)."""
        if task.scope != "processing" or Category.BILLING not in task.categories:
            return TaskOutcome(effects=[_nothing_held()])
        store = BillingStore(conn, self.keys)
        now = self.clock.now()
        ids = [
            i.item_id
            for items in (await self._items(store, task)).values()
            for i in items
            if i.kind in LEGITIMATE_INTEREST_KINDS
        ]
        if not ids:
            return TaskOutcome(effects=[_nothing_held()])
        await store.restrict(ids, "restriction", now)
        return TaskOutcome(
            effects=[
                Effect(
                    action="processing_restricted",
                    category=Category.BILLING,
                    items=len(ids),
                    legal_basis=OBJECTION_RESTRICTS,
                    at=now,
                )
            ]
        )


def _nothing_held() -> Effect:
    return Effect(action="nothing_held", category=Category.BILLING)


# -- scheduled deletions ----------------------------------------------------------------------


async def purge_due(conn: asyncpg.Connection, keys: KeyRing, clock: Clock) -> dict[str, int]:
    """Delete every kept item whose statutory period has ended by ``clock``'s date, except those
    of a customer a legal hold covers for billing (issue #16: a hold stops every deletion, as
    it stops retention's sweep); destroy the data key of each erased customer of whom nothing
    remains. Returns counts (no personal data)."""
    async with conn.transaction():
        store = BillingStore(conn, keys)
        due = await store.due_deletions(legal_date(clock.now()))
        by_customer: dict[str, list[str]] = defaultdict(list)
        for customer_number, item_id in due:
            by_customer[customer_number].append(item_id)
        deleted = 0
        forgotten = 0
        held = await store.held_customers(list(by_customer))
        for customer_number, item_ids in by_customer.items():
            if customer_number in held:
                continue  # a legal hold stands: nothing of it goes until the hold is released
            deleted += await store.delete_items(item_ids)
            if await store.is_empty_erased(customer_number):
                forgotten += int(await store.forget_customer(customer_number))
    items_held = sum(len(by_customer[c]) for c in held)
    return {"items_deleted": deleted, "customers_forgotten": forgotten, "items_held": items_held}


# -- legal holds ------------------------------------------------------------------------------


parse_hold_state = parser_for({HOLD_STATE_TYPE: HoldState})


def is_hold_state(record: ConsumerRecord[Any, Any]) -> bool:
    """The consumer's selector: retention.holds.v1 is internal (written by retention only) and
    has no dead-letter topic, so a record that is not a well-formed ``legal_hold.state`` keyed
    by its own customer number is passed over (counted, logged by position only) rather than
    dead-lettered; applying one keyed otherwise could let an older state win on a replay."""
    try:
        key = record.key.decode() if isinstance(record.key, bytes) else record.key
        state = parse_hold_state(record.topic, record.value or b"").data
    except (ContractViolation, ValueError):  # UnicodeDecodeError is a ValueError
        state = None
    if isinstance(state, HoldState) and key == state.customer_number:
        return True
    log.warning("billing holds: record %d@%d passed over: not a legal_hold.state", record.partition, record.offset)
    return False


def make_holds_handler(keys: KeyRing) -> BatchHandler:
    """``legal_hold.state`` on retention.holds.v1: billing's copy of the holds standing now per
    customer number (the latest state is the whole truth, so applying one again is harmless)."""

    async def handle(conn: asyncpg.Connection, items: list[Incoming]) -> None:
        store = BillingStore(conn, keys)
        for item in items:
            state = item.event.data
            assert isinstance(state, HoldState)
            await store.set_holds(state.customer_number, [h.hold_id for h in state.holds], state.holds_billing())

    return handle
