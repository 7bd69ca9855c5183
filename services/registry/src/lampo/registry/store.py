"""Every SQL statement of the registry.

Ingest statements take whole batches (arrays through ``unnest``), so a batch of 500 upserts
costs a handful of round trips rather than a dozen per event.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar, Final

import asyncpg
import orjson

from lampo.crypto import FieldCipher, KeyRing
from lampo.registry.domain import Profile, Provenance, Reading, ReadingTotals, SectionUpdate

SectionRow = tuple[str, str, str, str, bytes | None, datetime, str, str, str, str]
"""(customer_number, section, subject_id, category, encrypted payload, event_time, event_id,
source_system, origin, legal_basis)."""

_PROVENANCE_COLUMNS = "event_time, event_id, source_system, origin, legal_basis"
_SECTION_COLUMNS: Final = [
    "customer_number",
    "section",
    "subject_id",
    "category",
    "payload",
    "event_time",
    "event_id",
    "source_system",
    "origin",
    "legal_basis",
]  # SectionRow's fields
_LOOKUP_COLUMNS: Final = ["kind", "digest", "customer_number", "subject_id"]


def _count(status: str) -> int:
    return int(status.rsplit(maxsplit=1)[-1])


def _utc_text(column: str) -> str:
    """SQL for a timestamptz as Python's ``str()`` of the UTC datetime asyncpg returns."""
    return f"replace(to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), '.000000', '') || '+00:00'"


# Each reading as the JSON text of its access-result item, concatenated (a third cheaper for the
# server than json_build_object); to_json quotes the free-text columns.
_CONSUMPTION_ITEMS = f"""
SELECT '{{"customer_number":' || to_json(customer_number) || ',"kind":' || to_json($2::text)
    || ',"data":{{"metering_point":' || to_json(metering_point)
    || ',"period_start":"' || to_char(period_start, 'YYYY-MM-DD') || '","period_end":"' || to_char(period_end, 'YYYY-MM-DD')
    || '","energy_mwh":"' || energy_mwh || '","annual_forecast_mwh":' || coalesce('"' || annual_forecast_mwh || '"', 'null')
    || '}},"source_system":' || to_json(source_system) || ',"origin":' || to_json(origin)
    || ',"legal_basis":' || to_json(legal_basis) || ',"updated_at":"' || {_utc_text("event_time")} || '"}}'
FROM (SELECT * FROM consumption WHERE subject_id = $1 ORDER BY customer_number, metering_point, period_start OFFSET 0) AS c
"""
# OFFSET 0 keeps the rows ordered before they are turned into JSON: flattened, the planner sorts
# the finished JSON of every row (a disk sort) before the first one comes; this way they stream.


class RegistryStore:
    def __init__(self, conn: asyncpg.Connection, keys: KeyRing) -> None:
        self.conn = conn
        self.keys = keys
        # Blind indexes computed in this store's life (one batch): a batch locks, matches and
        # indexes each identity code, e-mail and business ID, one HMAC each instead of three.
        self._digests: dict[tuple[str, str], bytes] = {}

    def blind_index(self, kind: str, value: str) -> bytes:
        digest = self._digests.get((kind, value))
        if digest is None:
            digest = self._digests[(kind, value)] = self.keys.blind_index(kind, value)
        return digest

    # --- subjects and customers --------------------------------------------------------------

    async def subject_of(self, customer_number: str) -> str | None:
        value: str | None = await self.conn.fetchval(
            "SELECT subject_id FROM customers WHERE customer_number = $1", customer_number
        )
        return value

    async def subjects_of(self, customer_numbers: Iterable[str]) -> dict[str, str]:
        rows = await self.conn.fetch(
            "SELECT customer_number, subject_id FROM customers WHERE customer_number = ANY($1::text[])",
            list(set(customer_numbers)),
        )
        return {r["customer_number"]: r["subject_id"] for r in rows}

    async def subject_by_lookup(self, kind: str, value: str) -> str | None:
        found: str | None = await self.conn.fetchval(
            "SELECT subject_id FROM lookup WHERE kind = $1 AND digest = $2 LIMIT 1",
            kind,
            self.blind_index(kind, value),
        )
        return found

    async def subjects_by_lookup(self, kind: str, value: str) -> set[str]:
        rows = await self.conn.fetch(
            "SELECT DISTINCT subject_id FROM lookup WHERE kind = $1 AND digest = $2",
            kind,
            self.blind_index(kind, value),
        )
        return {r["subject_id"] for r in rows}

    async def subjects_by_digests(self, pairs: Sequence[tuple[str, bytes]]) -> dict[tuple[str, bytes], str]:
        if not pairs:
            return {}
        rows = await self.conn.fetch(
            "SELECT DISTINCT ON (l.kind, l.digest) l.kind, l.digest, l.subject_id"
            " FROM lookup l JOIN unnest($1::text[], $2::bytea[]) AS w(kind, digest)"
            " ON l.kind = w.kind AND l.digest = w.digest ORDER BY l.kind, l.digest, l.subject_id",
            [k for k, _ in pairs],
            [d for _, d in pairs],
        )
        return {(r["kind"], bytes(r["digest"])): r["subject_id"] for r in rows}

    async def customers_by_digests(self, pairs: Sequence[tuple[str, bytes]]) -> list[str]:
        """The customer numbers any of the blind indexes (kind, digest) lead to, in order."""
        if not pairs:
            return []
        rows = await self.conn.fetch(
            "SELECT DISTINCT l.customer_number FROM lookup l JOIN unnest($1::text[], $2::bytea[]) AS w(kind, digest)"
            " ON l.kind = w.kind AND l.digest = w.digest ORDER BY 1",
            [k for k, _ in pairs],
            [d for _, d in pairs],
        )
        return [r["customer_number"] for r in rows]

    async def customer_exists(self, customer_number: str) -> bool:
        return bool(
            await self.conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM customers WHERE customer_number = $1)", customer_number
            )
        )

    # --- the name look-ups' backfill (migration 0006) ------------------------------------------

    async def backfill_pending(self, kind: str) -> bool:
        return bool(await self.conn.fetchval("SELECT done_at IS NULL FROM lookup_backfills WHERE kind = $1", kind))

    async def backfill_done(self, kind: str, at: datetime) -> None:
        await self.conn.execute("UPDATE lookup_backfills SET done_at = $2 WHERE kind = $1", kind, at)

    async def unindexed_names(self, after: str, limit: int) -> list[asyncpg.Record]:
        """A page of held person and organisation sections, after customer number ``after``, whose
        name look-up is missing; locked (FOR SHARE) until the transaction ends, so an erasure or
        update of the section waits for the look-up written from it."""
        rows: list[asyncpg.Record] = await self.conn.fetch(
            """
            SELECT x.customer_number, x.subject_id, x.section, x.payload FROM sections x
             WHERE x.section IN ('person', 'organisation') AND x.payload IS NOT NULL AND x.customer_number > $1
               AND NOT EXISTS (SELECT 1 FROM lookup l WHERE l.customer_number = x.customer_number
                                  AND l.kind = CASE x.section WHEN 'person' THEN 'person_name' ELSE 'organisation_name' END)
             ORDER BY x.customer_number, x.section
             LIMIT $2
               FOR SHARE OF x
            """,
            after,
            limit,
        )
        return rows

    async def add_lookups(self, rows: Sequence[tuple[str, bytes, str, str]]) -> None:
        """(kind, digest, customer_number, subject_id), each unless one of its kind is stored."""
        if rows:
            await self.conn.execute(
                "INSERT INTO lookup (kind, digest, customer_number, subject_id)"
                " SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[], $4::text[]) ON CONFLICT DO NOTHING",
                *[list(c) for c in zip(*rows, strict=True)],
            )

    @staticmethod
    def new_subject_id() -> str:
        return str(uuid.uuid4())

    async def insert_subjects(self, subjects: Sequence[tuple[str, str]]) -> None:
        if subjects:
            await self.conn.execute(
                "INSERT INTO subjects (subject_id, kind) SELECT * FROM unnest($1::text[], $2::text[])",
                [s for s, _ in subjects],
                [k for _, k in subjects],
            )

    async def insert_customers(self, customers: Sequence[tuple[str, str]]) -> None:
        if customers:
            await self.conn.execute(
                "INSERT INTO customers (customer_number, subject_id) SELECT * FROM unnest($1::text[], $2::text[])",
                [c for c, _ in customers],
                [s for _, s in customers],
            )

    async def create_customer(self, customer_number: str, kind: str, subject_id: str | None) -> str:
        """Attach the customer number to a subject, creating the subject when none is given."""
        if subject_id is None:
            subject_id = self.new_subject_id()
            await self.insert_subjects([(subject_id, kind)])
        await self.insert_customers([(customer_number, subject_id)])
        return subject_id

    async def customers_of(self, subject_id: str) -> list[str]:
        rows = await self.conn.fetch(
            "SELECT customer_number FROM customers WHERE subject_id = $1 ORDER BY customer_number", subject_id
        )
        return [r["customer_number"] for r in rows]

    async def subject_row(self, subject_id: str) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self.conn.fetchrow(
            "SELECT subject_id, kind, restricted FROM subjects WHERE subject_id = $1", subject_id
        )
        return row

    async def kind_of(self, subject_id: str) -> str:
        kind: str = await self.conn.fetchval("SELECT kind FROM subjects WHERE subject_id = $1", subject_id)
        return kind

    async def kinds_of(self, subject_ids: Iterable[str]) -> dict[str, str]:
        rows = await self.conn.fetch(
            "SELECT subject_id, kind FROM subjects WHERE subject_id = ANY($1::text[])", list(set(subject_ids))
        )
        return {r["subject_id"]: r["kind"] for r in rows}

    async def is_restricted(self, subject_id: str) -> bool:
        return bool(await self.conn.fetchval("SELECT restricted FROM subjects WHERE subject_id = $1", subject_id))

    async def add_restriction(self, subject_id: str, reason: str, since: datetime, request_id: str | None) -> datetime:
        """Restrict the subject for ``reason`` (kept as it is when it already stands); returns
        since when that reason stands."""
        await self.conn.execute(
            "INSERT INTO restrictions (subject_id, reason, since, request_id) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (subject_id, reason) DO NOTHING",
            subject_id,
            reason,
            since,
            request_id,
        )
        await self.conn.execute("UPDATE subjects SET restricted = true WHERE subject_id = $1", subject_id)
        standing: datetime = await self.conn.fetchval(
            "SELECT since FROM restrictions WHERE subject_id = $1 AND reason = $2", subject_id, reason
        )
        return standing

    async def remove_restriction(self, subject_id: str, reason: str) -> bool:
        """Lift the restriction for ``reason``; the subject stays restricted while another reason
        stands. True when that reason stood."""
        status: str = await self.conn.execute(
            "DELETE FROM restrictions WHERE subject_id = $1 AND reason = $2", subject_id, reason
        )
        await self.conn.execute(
            "UPDATE subjects SET restricted = EXISTS (SELECT 1 FROM restrictions r WHERE r.subject_id = $1)"
            " WHERE subject_id = $1",
            subject_id,
        )
        return _count(status) > 0

    async def restrictions(self, subject_id: str) -> list[asyncpg.Record]:
        """(reason, since) of each restriction standing, oldest first."""
        rows: list[asyncpg.Record] = await self.conn.fetch(
            "SELECT reason, since FROM restrictions WHERE subject_id = $1 ORDER BY since, reason", subject_id
        )
        return rows

    async def record_objection(self, subject_id: str, scope: str, status: str, at: datetime, request_id: str) -> None:
        """The subject's objection of ``scope`` (a new filing replaces the last one and its decision)."""
        await self.conn.execute(
            """
            INSERT INTO objections (subject_id, scope, status, filed_at, request_id) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (subject_id, scope) DO UPDATE
               SET status = EXCLUDED.status, filed_at = EXCLUDED.filed_at, request_id = EXCLUDED.request_id,
                   decided_at = NULL
            """,
            subject_id,
            scope,
            status,
            at,
            request_id,
        )

    async def decide_objection(self, subject_id: str, scope: str, status: str, at: datetime) -> bool:
        """Record the decision on a pending objection; False when none is pending."""
        status_text: str = await self.conn.execute(
            "UPDATE objections SET status = $3, decided_at = $4 WHERE subject_id = $1 AND scope = $2 AND status = 'pending'",
            subject_id,
            scope,
            status,
            at,
        )
        return _count(status_text) == 1

    async def objections(self, subject_id: str) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.conn.fetch(
            "SELECT scope, status, filed_at, decided_at FROM objections WHERE subject_id = $1 ORDER BY filed_at, scope",
            subject_id,
        )
        return rows

    async def direct_marketing_audience(self, after: str, limit: int, now: datetime) -> list[str]:
        """A page of the customer numbers direct marketing may reach, in order, after ``after``:
        consent to direct marketing granted; relationship not ended; subject not restricted; no
        objection to processing in the consent copy; no objection to direct marketing or
        processing filed through a DSAR since that consent was given (Art. 21(3): absolute). Read
        through the partial index of granted marketing consents, each candidate checked by keys."""
        rows = await self.conn.fetch(
            """
            SELECT g.customer_number
              FROM profiling_consent g
              JOIN customers c ON c.customer_number = g.customer_number
              JOIN subjects s ON s.subject_id = c.subject_id
             WHERE g.purpose = 'direct_marketing' AND g.state = 'granted' AND g.customer_number > $1
               AND c.customer_number > $1  -- the same bound, so each join starts at the page, not the start
               AND NOT s.restricted
               AND NOT EXISTS (SELECT 1 FROM relationship_ends r
                                WHERE r.customer_number = g.customer_number AND r.ended_at <= $3)
               AND NOT EXISTS (SELECT 1 FROM profiling_consent o
                                WHERE o.customer_number = g.customer_number AND o.customer_number > $1
                                  AND o.purpose = 'processing' AND o.state = 'objected')
               AND NOT EXISTS (SELECT 1 FROM objections x
                                WHERE x.subject_id = c.subject_id AND x.scope IN ('direct_marketing', 'processing')
                                  AND x.filed_at >= g.effective_at)
             ORDER BY g.customer_number
             LIMIT $2
            """,
            after,
            limit,
            now,
        )
        return [r["customer_number"] for r in rows]

    async def task_subjects(self, subject_id: str, customer_numbers: Sequence[str]) -> list[str]:
        """The subjects a privacy task names: its subject id and those of its customer numbers."""
        rows = await self.conn.fetch(
            "SELECT subject_id FROM subjects WHERE subject_id = $1"
            " UNION SELECT subject_id FROM customers WHERE customer_number = ANY($2::text[])",
            subject_id,
            list(customer_numbers),
        )
        return sorted(r["subject_id"] for r in rows)

    # --- keys ----------------------------------------------------------------------------------

    async def cipher(self, subject_id: str) -> FieldCipher:
        return await self.keys.cipher(self.conn, subject_id, create=True)

    async def ciphers(self, subject_ids: Iterable[str], *, create: bool) -> dict[str, FieldCipher]:
        return await self.keys.ciphers(self.conn, subject_ids, create=create)

    # --- sections --------------------------------------------------------------------------------

    @staticmethod
    def section_row(
        customer_number: str, subject_id: str, update: SectionUpdate, cipher: FieldCipher, prov: Provenance
    ) -> SectionRow:
        payload = None if update.payload is None else orjson.dumps(update.payload)
        return (
            customer_number,
            update.section,
            subject_id,
            update.category,
            cipher.encrypt(update.section, payload),
            prov.event_time,
            prov.event_id,
            prov.source_system,
            prov.origin,
            prov.legal_basis,
        )

    async def write_sections(self, rows: Sequence[SectionRow], *, new: Collection[str] = ()) -> set[tuple[str, str]]:
        """Replace sections unless a newer event already wrote them; returns those written.
        At most one row per (customer_number, section) per call. ``new``: customer numbers
        inserted in this transaction, which hold no section yet: theirs are copied in as they are
        (no conflict to look for, every one written)."""
        fresh = [row for row in rows if row[0] in new]
        if fresh:
            await self.conn.copy_records_to_table("sections", records=fresh, columns=_SECTION_COLUMNS)
        rows = [row for row in rows if row[0] not in new] if fresh else rows
        written = {(row[0], row[1]) for row in fresh}
        if not rows:
            return written
        columns = list(zip(*rows, strict=True))
        updated = await self.conn.fetch(
            """
            INSERT INTO sections (customer_number, section, subject_id, category, payload, event_time, event_id,
                                  source_system, origin, legal_basis)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::timestamptz[],
                                 $7::text[], $8::text[], $9::text[], $10::text[])
            ON CONFLICT (customer_number, section) DO UPDATE
               SET payload = EXCLUDED.payload, event_time = EXCLUDED.event_time, event_id = EXCLUDED.event_id,
                   source_system = EXCLUDED.source_system, origin = EXCLUDED.origin,
                   legal_basis = EXCLUDED.legal_basis, category = EXCLUDED.category, updated_at = now()
             WHERE sections.event_time <= EXCLUDED.event_time
            RETURNING customer_number, section
            """,
            *[list(c) for c in columns],
        )
        return written | {(r["customer_number"], r["section"]) for r in updated}

    async def write_section(
        self, customer_number: str, subject_id: str, update: SectionUpdate, cipher: FieldCipher, prov: Provenance
    ) -> bool:
        row = self.section_row(customer_number, subject_id, update, cipher, prov)
        return bool(await self.write_sections([row]))

    async def held_sections(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of (customer_number, section) currently hold data (not absent, not a tombstone)."""
        if not keys:
            return set()
        rows = await self.conn.fetch(
            "SELECT x.customer_number, x.section FROM sections x"
            " JOIN unnest($1::text[], $2::text[]) AS k(customer_number, section)"
            " ON x.customer_number = k.customer_number AND x.section = k.section WHERE x.payload IS NOT NULL",
            [c for c, _ in keys],
            [s for _, s in keys],
        )
        return {(r["customer_number"], r["section"]) for r in rows}

    async def section_rows(self, subject_id: str) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.conn.fetch(
            "SELECT customer_number, section, category, payload, event_time, source_system, origin, legal_basis, updated_at"
            " FROM sections WHERE subject_id = $1 AND payload IS NOT NULL ORDER BY customer_number, section",
            subject_id,
        )
        return rows

    async def sections(self, subject_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.section_rows(subject_id)]

    async def section_of(self, customer_number: str, section: str) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self.conn.fetchrow(
            "SELECT subject_id, payload, event_time, legal_basis FROM sections WHERE customer_number = $1 AND section = $2",
            customer_number,
            section,
        )
        return row

    # --- values derived from sections: lookups, metering points, contact links -----------------

    async def set_lookups(self, rows: Sequence[tuple[str, bytes, str, str]], *, new: Collection[str] = ()) -> None:
        """(kind, digest, customer_number, subject_id). ``new``: customer numbers inserted in this
        transaction (none of their lookups exists yet: copied in)."""
        fresh = [row for row in rows if row[2] in new]
        if fresh:
            await self.conn.copy_records_to_table("lookup", records=fresh, columns=_LOOKUP_COLUMNS)
            rows = [row for row in rows if row[2] not in new]
        if rows:
            await self.conn.execute(
                """
                INSERT INTO lookup (kind, digest, customer_number, subject_id)
                SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[], $4::text[])
                ON CONFLICT (kind, customer_number) DO UPDATE SET digest = EXCLUDED.digest, subject_id = EXCLUDED.subject_id
                """,
                *[list(c) for c in zip(*rows, strict=True)],
            )

    async def clear_lookups(self, rows: Sequence[tuple[str, str]]) -> None:
        """(kind, customer_number)."""
        if rows:
            await self.conn.execute(
                "DELETE FROM lookup l USING unnest($1::text[], $2::text[]) AS c(kind, customer_number)"
                " WHERE l.kind = c.kind AND l.customer_number = c.customer_number",
                [k for k, _ in rows],
                [c for _, c in rows],
            )

    async def set_metering_points(self, customer_numbers: Sequence[str], rows: Sequence[tuple[str, str, str]]) -> None:
        """Replace the metering points of ``customer_numbers`` with ``rows`` (customer, point, subject)."""
        if customer_numbers:
            await self.conn.execute(
                "DELETE FROM metering_points WHERE customer_number = ANY($1::text[])", list(customer_numbers)
            )
        if rows:
            await self.conn.execute(
                "INSERT INTO metering_points (customer_number, metering_point, subject_id)"
                " SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING",
                *[list(c) for c in zip(*rows, strict=True)],
            )

    async def set_contact_links(self, customer_numbers: Sequence[str], rows: Sequence[tuple[str, str, str]]) -> None:
        """Replace the organisation links of ``customer_numbers`` with ``rows`` (customer, organisation, subject)."""
        if customer_numbers:
            await self.conn.execute(
                "DELETE FROM contact_links WHERE customer_number = ANY($1::text[])", list(customer_numbers)
            )
        if rows:
            await self.conn.execute(
                "INSERT INTO contact_links (customer_number, organisation_number, subject_id)"
                " SELECT * FROM unnest($1::text[], $2::text[], $3::text[])",
                *[list(c) for c in zip(*rows, strict=True)],
            )

    async def has_metering_point(self, customer_number: str, metering_point: str) -> bool:
        return bool(
            await self.conn.fetchval(
                "SELECT true FROM metering_points WHERE customer_number = $1 AND metering_point = $2",
                customer_number,
                metering_point,
            )
        )

    async def metering_points_held(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of the (customer number, metering point) pairs are the customer's."""
        wanted = list(set(pairs))
        if not wanted:
            return set()
        rows = await self.conn.fetch(
            "SELECT m.customer_number, m.metering_point FROM metering_points m"
            " JOIN unnest($1::text[], $2::text[]) AS w(c, p) ON m.customer_number = w.c AND m.metering_point = w.p",
            [c for c, _ in wanted],
            [p for _, p in wanted],
        )
        return {(r["customer_number"], r["metering_point"]) for r in rows}

    # --- the other inbound types -----------------------------------------------------------------

    async def end_relationship(
        self, customer_number: str, subject_id: str, ended_at: datetime, prov: Provenance
    ) -> bool:
        written = await self.conn.fetchval(
            f"""
            INSERT INTO relationship_ends (customer_number, subject_id, ended_at, {_PROVENANCE_COLUMNS})
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (customer_number) DO UPDATE
               SET ended_at = EXCLUDED.ended_at, event_time = EXCLUDED.event_time, event_id = EXCLUDED.event_id,
                   source_system = EXCLUDED.source_system, origin = EXCLUDED.origin,
                   legal_basis = EXCLUDED.legal_basis, updated_at = now()
             WHERE relationship_ends.event_time <= EXCLUDED.event_time
            RETURNING true
            """,
            customer_number,
            subject_id,
            ended_at,
            *self._prov(prov),
        )
        return bool(written)

    async def upsert_contract(
        self,
        customer_number: str,
        subject_id: str,
        contract: tuple[str, str, str, date, date | None, str | None],
        prov: Provenance,
    ) -> bool:
        """``contract``: (contract_id, product, status, valid_from, valid_to, metering_point)."""
        written = await self.conn.fetchval(
            f"""
            INSERT INTO contracts (customer_number, subject_id, contract_id, product, status, valid_from, valid_to,
                                   metering_point, {_PROVENANCE_COLUMNS})
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
            ON CONFLICT (customer_number, contract_id) DO UPDATE
               SET product = EXCLUDED.product, status = EXCLUDED.status, valid_from = EXCLUDED.valid_from,
                   valid_to = EXCLUDED.valid_to, metering_point = EXCLUDED.metering_point,
                   event_time = EXCLUDED.event_time, event_id = EXCLUDED.event_id,
                   source_system = EXCLUDED.source_system, origin = EXCLUDED.origin,
                   legal_basis = EXCLUDED.legal_basis, updated_at = now()
             WHERE contracts.event_time <= EXCLUDED.event_time
            RETURNING true
            """,
            customer_number,
            subject_id,
            *contract,
            *self._prov(prov),
        )
        return bool(written)

    async def upsert_consumption(
        self,
        customer_number: str,
        subject_id: str,
        reading: tuple[str, date, date, Decimal, Decimal | None],
        prov: Provenance,
    ) -> bool:
        """``reading``: (metering_point, period_start, period_end, energy_mwh, annual_forecast_mwh)."""
        written = await self.conn.fetchval(
            f"""
            INSERT INTO consumption (customer_number, subject_id, metering_point, period_start, period_end, energy_mwh,
                                     annual_forecast_mwh, {_PROVENANCE_COLUMNS})
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            ON CONFLICT (customer_number, metering_point, period_start, period_end) DO UPDATE
               SET energy_mwh = EXCLUDED.energy_mwh, annual_forecast_mwh = EXCLUDED.annual_forecast_mwh,
                   event_time = EXCLUDED.event_time, event_id = EXCLUDED.event_id,
                   source_system = EXCLUDED.source_system, origin = EXCLUDED.origin,
                   legal_basis = EXCLUDED.legal_basis, updated_at = now()
             WHERE consumption.event_time <= EXCLUDED.event_time
            RETURNING true
            """,
            customer_number,
            subject_id,
            *reading,
            *self._prov(prov),
        )
        return bool(written)

    async def upsert_consumptions(
        self, rows: Sequence[tuple[str, str, tuple[str, date, date, Decimal, Decimal | None], Provenance]]
    ) -> set[tuple[str, str, date, date]]:
        """Many readings ``(customer_number, subject_id, reading, provenance)`` in one statement
        (at most one per key: the caller picks the latest event of each), each written unless a
        later event is stored. Returns the keys (customer, metering point, start, end) written."""
        if not rows:
            return set()
        columns: list[list[Any]] = [[] for _ in range(12)]
        for customer, subject_id, reading, prov in rows:
            for column, value in zip(columns, (customer, subject_id, *reading, *self._prov(prov)), strict=True):
                column.append(value)
        written = await self.conn.fetch(
            f"""
            INSERT INTO consumption (customer_number, subject_id, metering_point, period_start, period_end, energy_mwh,
                                     annual_forecast_mwh, {_PROVENANCE_COLUMNS})
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::date[], $6::numeric[],
                                 $7::numeric[], $8::timestamptz[], $9::text[], $10::text[], $11::text[], $12::text[])
            ON CONFLICT (customer_number, metering_point, period_start, period_end) DO UPDATE
               SET energy_mwh = EXCLUDED.energy_mwh, annual_forecast_mwh = EXCLUDED.annual_forecast_mwh,
                   event_time = EXCLUDED.event_time, event_id = EXCLUDED.event_id,
                   source_system = EXCLUDED.source_system, origin = EXCLUDED.origin,
                   legal_basis = EXCLUDED.legal_basis, updated_at = now()
             WHERE consumption.event_time <= EXCLUDED.event_time
            RETURNING customer_number, metering_point, period_start, period_end
            """,
            *columns,
        )
        return {(r["customer_number"], r["metering_point"], r["period_start"], r["period_end"]) for r in written}

    async def upsert_interaction(
        self,
        customer_number: str,
        subject_id: str,
        interaction: tuple[str, str, datetime, bytes | None],
        prov: Provenance,
    ) -> bool:
        """``interaction``: (interaction_id, channel, at, encrypted summary)."""
        written = await self.conn.fetchval(
            f"""
            INSERT INTO interactions (customer_number, subject_id, interaction_id, channel, at, summary,
                                      {_PROVENANCE_COLUMNS})
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            ON CONFLICT (customer_number, interaction_id) DO UPDATE
               SET channel = EXCLUDED.channel, at = EXCLUDED.at, summary = EXCLUDED.summary,
                   event_time = EXCLUDED.event_time, event_id = EXCLUDED.event_id,
                   source_system = EXCLUDED.source_system, origin = EXCLUDED.origin,
                   legal_basis = EXCLUDED.legal_basis, updated_at = now()
             WHERE interactions.event_time <= EXCLUDED.event_time
            RETURNING true
            """,
            customer_number,
            subject_id,
            *interaction,
            *self._prov(prov),
        )
        return bool(written)

    @staticmethod
    def _prov(prov: Provenance) -> tuple[datetime, str, str, str, str]:
        return (prov.event_time, prov.event_id, prov.source_system, prov.origin, prov.legal_basis)

    # --- consent and profiles ----------------------------------------------------------------------

    async def set_consent(self, customer_number: str, purpose: str, state: str, effective_at: datetime) -> bool:
        """Record a consent state unless a later one is already stored; True when recorded."""
        written = await self.conn.fetchval(
            """
            INSERT INTO profiling_consent (customer_number, purpose, state, effective_at) VALUES ($1, $2, $3, $4)
            ON CONFLICT (customer_number, purpose) DO UPDATE SET state = EXCLUDED.state, effective_at = EXCLUDED.effective_at
             WHERE profiling_consent.effective_at <= EXCLUDED.effective_at
            RETURNING true
            """,
            customer_number,
            purpose,
            state,
            effective_at,
        )
        return bool(written)

    async def lock_customers(self, customer_numbers: Iterable[str]) -> None:
        """Serialise profiling decisions per customer until the transaction ends: the consent
        consumer and the inbound consumer each read what the other writes, and without the lock
        both could miss the other's uncommitted change and leave a consented customer unprofiled."""
        customers = sorted(set(customer_numbers))
        if customers:
            await self.conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(c, 7201))"
                ' FROM (SELECT c FROM unnest($1::text[]) AS c ORDER BY c COLLATE "C" OFFSET 0) AS s',
                customers,
            )

    async def lock_identities(self, digests: Iterable[bytes]) -> None:
        """Serialise matching by identity code or business ID until the transaction ends, across
        every instance of the registry: a transaction that could attach a new customer number to
        the subject of one of ``digests`` (blind indexes) takes their locks before it looks them
        up, so another instance that saw another customer number of the same person either
        committed its subject before that look-up or waits for this one's. Keys in ascending
        order: two batches sharing identities never wait for each other in a cycle."""
        keys = sorted({int.from_bytes(d[:8], "big", signed=True) for d in digests})
        if keys:
            await self.conn.execute(
                "SELECT pg_advisory_xact_lock(k) FROM (SELECT k FROM unnest($1::bigint[]) AS k ORDER BY k OFFSET 0) AS s",
                keys,
            )

    async def set_consents(self, rows: Sequence[tuple[str, str, str, datetime]]) -> set[str]:
        """Many consent states at once, one per (customer_number, purpose); returns the customer
        numbers whose state changed."""
        if not rows:
            return set()
        written = await self.conn.fetch(
            """
            INSERT INTO profiling_consent (customer_number, purpose, state, effective_at)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
            ON CONFLICT (customer_number, purpose) DO UPDATE SET state = EXCLUDED.state, effective_at = EXCLUDED.effective_at
             WHERE profiling_consent.effective_at <= EXCLUDED.effective_at
            RETURNING customer_number
            """,
            *[list(c) for c in zip(*rows, strict=True)],
        )
        return {r["customer_number"] for r in written}

    async def consent_states(self, customer_number: str) -> dict[str, str]:
        rows = await self.conn.fetch(
            "SELECT purpose, state FROM profiling_consent WHERE customer_number = $1", customer_number
        )
        return {r["purpose"]: r["state"] for r in rows}

    async def readings(self, customer_number: str) -> list[Reading]:
        rows = await self.conn.fetch(
            "SELECT period_start, period_end, energy_mwh, annual_forecast_mwh FROM consumption WHERE customer_number = $1",
            customer_number,
        )
        return [Reading(r["period_start"], r["period_end"], r["energy_mwh"], r["annual_forecast_mwh"]) for r in rows]

    async def reading_totals(self, customer_number: str) -> ReadingTotals | None:
        """The sums a profile is computed from (``domain.totals_of`` of :meth:`readings`), in
        one aggregate by the database."""
        row = await self.conn.fetchrow(
            """
            WITH r AS (
                SELECT period_start, period_end, energy_mwh, annual_forecast_mwh
                  FROM consumption WHERE customer_number = $1
            ), span AS (
                SELECT max(period_end) AS latest, min(period_start) AS earliest, count(*) AS reports FROM r
            )
            SELECT span.latest, span.earliest, span.reports,
                   coalesce(sum(r.energy_mwh) FILTER (WHERE r.period_end > span.latest - 365), 0) AS current,
                   coalesce(sum(r.energy_mwh) FILTER (
                       WHERE r.period_end > span.latest - 730 AND r.period_end <= span.latest - 365), 0) AS previous,
                   count(*) FILTER (
                       WHERE r.period_end > span.latest - 730 AND r.period_end <= span.latest - 365) AS previous_reports,
                   (SELECT annual_forecast_mwh FROM r WHERE annual_forecast_mwh IS NOT NULL
                     ORDER BY period_end DESC, annual_forecast_mwh DESC LIMIT 1) AS forecast
              FROM span, r
             GROUP BY span.latest, span.earliest, span.reports
            """,
            customer_number,
        )
        return ReadingTotals(**dict(row)) if row else None

    async def save_profile(
        self, customer_number: str, subject_id: str, profile: Profile, computed_at: datetime
    ) -> None:
        await self.conn.execute(
            """
            INSERT INTO profiles (customer_number, subject_id, annual_mwh, band, trend, reports, computed_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (customer_number) DO UPDATE
               SET annual_mwh = EXCLUDED.annual_mwh, band = EXCLUDED.band, trend = EXCLUDED.trend,
                   reports = EXCLUDED.reports, computed_at = EXCLUDED.computed_at
            """,
            customer_number,
            subject_id,
            profile.annual_mwh,
            profile.band,
            profile.trend,
            profile.reports,
            computed_at,
        )

    async def delete_profiles(self, *, customer_number: str | None = None, subject_id: str | None = None) -> int:
        status: str = await self.conn.execute(
            "DELETE FROM profiles WHERE customer_number = $1 OR subject_id = $2", customer_number, subject_id
        )
        return _count(status)

    # --- the participant: access and erasure ------------------------------------------------------

    _HELD: ClassVar[dict[str, str]] = {
        "relationship_ends": "SELECT * FROM relationship_ends WHERE subject_id = $1 ORDER BY customer_number",
        "contracts": "SELECT * FROM contracts WHERE subject_id = $1 ORDER BY customer_number, contract_id",
        "consumption": "SELECT * FROM consumption WHERE subject_id = $1 ORDER BY customer_number, metering_point, period_start",
        "interactions": "SELECT * FROM interactions WHERE subject_id = $1 ORDER BY customer_number, at",
        "profiles": "SELECT * FROM profiles WHERE subject_id = $1 ORDER BY customer_number",
    }

    async def held(self, subject_id: str) -> dict[str, list[asyncpg.Record]]:
        """Everything held on a subject outside ``sections``, per table."""
        return {name: await self.conn.fetch(sql, subject_id) for name, sql in self._HELD.items()}

    async def held_pages(self, table: str, subject_id: str, page_rows: int) -> AsyncIterator[list[asyncpg.Record]]:
        """What :meth:`held` reads of one table, in pages of ``page_rows`` through a server-side
        cursor (in the caller's transaction): a subject's 50,000 readings never at once."""
        cursor = await self.conn.cursor(self._HELD[table], subject_id)
        while page := await cursor.fetch(page_rows):
            yield page

    async def consumption_json_pages(self, subject_id: str, kind: str, page_rows: int) -> AsyncIterator[list[str]]:
        """The subject's consumption readings as access-result items, JSON text built by
        PostgreSQL (a heavy subject's 50,000 readings cost no Python object per value), in pages
        through a server-side cursor, in :meth:`held`'s order. Values as the Python path writes
        them: decimals and dates as text, times as ``str(datetime)`` in UTC."""
        cursor = await self.conn.cursor(_CONSUMPTION_ITEMS, subject_id, kind)
        # The next page is asked for before this one is handed on: the database builds it while
        # the caller seals and sends this one (nothing else uses the connection meanwhile).
        ahead = asyncio.ensure_future(cursor.fetch(page_rows))
        try:
            while page := await ahead:
                ahead = asyncio.ensure_future(cursor.fetch(page_rows))
                yield [row[0] for row in page]
        finally:
            if not ahead.done():
                ahead.cancel()

    async def provenance(self, subject_id: str) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.conn.fetch(
            "SELECT category, source_system, origin, legal_basis, last_changed, items FROM provenance"
            " WHERE subject_id = $1 ORDER BY category, last_changed DESC",
            subject_id,
        )
        return rows

    async def erase_category(self, subject_id: str, category: str) -> int:
        """Delete a subject's data of one category; returns the items erased (tombstones not counted)."""
        erased = 0
        rows = await self.conn.fetch(
            "DELETE FROM sections WHERE subject_id = $1 AND category = $2 RETURNING payload IS NOT NULL AS held",
            subject_id,
            category,
        )
        erased += sum(1 for r in rows if r["held"])
        derived = {
            "basic": [
                "DELETE FROM lookup WHERE subject_id = $1 AND kind IN ('personal_identity_code', 'business_id',"
                " 'person_name', 'person_name_last_first', 'organisation_name')",
                "DELETE FROM metering_points WHERE subject_id = $1",
            ],
            "contact": ["DELETE FROM lookup WHERE subject_id = $1 AND kind = 'email'"],
            "contact_person": ["DELETE FROM contact_links WHERE subject_id = $1"],
        }
        for sql in derived.get(category, []):
            await self.conn.execute(sql, subject_id)
        tables = {
            "customer_relationship": ["relationship_ends", "contracts", "interactions"],
            "consumption": ["consumption"],
            "services": ["profiles"],
        }
        for table in tables.get(category, []):
            erased += _count(await self.conn.execute(f"DELETE FROM {table} WHERE subject_id = $1", subject_id))
        return erased

    async def holds_anything(self, subject_id: str) -> bool:
        return bool(
            await self.conn.fetchval(
                """
                SELECT EXISTS (SELECT 1 FROM sections WHERE subject_id = $1 AND payload IS NOT NULL)
                    OR EXISTS (SELECT 1 FROM relationship_ends WHERE subject_id = $1)
                    OR EXISTS (SELECT 1 FROM contracts WHERE subject_id = $1)
                    OR EXISTS (SELECT 1 FROM interactions WHERE subject_id = $1)
                    OR EXISTS (SELECT 1 FROM consumption WHERE subject_id = $1)
                    OR EXISTS (SELECT 1 FROM profiles WHERE subject_id = $1)
                """,
                subject_id,
            )
        )

    async def forget_subject(self, subject_id: str, customer_numbers: Sequence[str]) -> None:
        """Remove the subject's last traces: customers, tombstones, links, consent copies."""
        await self.conn.execute(
            "DELETE FROM profiling_consent WHERE customer_number = ANY($1::text[])", list(customer_numbers)
        )
        await self.conn.execute(
            "DELETE FROM contact_links WHERE organisation_number = ANY($1::text[])", list(customer_numbers)
        )
        await self.conn.execute("DELETE FROM subjects WHERE subject_id = $1", subject_id)  # cascades to every table

    # --- accuracy (§12) ------------------------------------------------------------------------------

    async def current_sections(self) -> list[asyncpg.Record]:
        """Every customer's current sections, restricted subjects left out (restricted: not used)."""
        rows: list[asyncpg.Record] = await self.conn.fetch(
            "SELECT c.customer_number, c.subject_id, s.kind, x.section, x.payload"
            " FROM customers c JOIN subjects s USING (subject_id)"
            " LEFT JOIN sections x ON x.customer_number = c.customer_number AND x.payload IS NOT NULL"
            " WHERE NOT s.restricted ORDER BY c.customer_number"
        )
        return rows

    async def duplicate_identity_codes(self) -> list[list[str]]:
        rows = await self.conn.fetch(
            "SELECT array_agg(l.customer_number ORDER BY l.customer_number) AS numbers"
            " FROM lookup l JOIN subjects s USING (subject_id)"
            " WHERE l.kind = 'personal_identity_code' AND NOT s.restricted"
            " GROUP BY l.digest HAVING count(*) > 1 ORDER BY 1"
        )
        return [list(r["numbers"]) for r in rows]

    async def unconfirmed_contacts(self, before: datetime) -> list[str]:
        rows = await self.conn.fetch(
            "SELECT x.customer_number FROM sections x JOIN subjects s USING (subject_id)"
            " WHERE x.section = 'contact' AND x.payload IS NOT NULL AND x.event_time < $1 AND NOT s.restricted"
            " ORDER BY x.customer_number",
            before,
        )
        return [r["customer_number"] for r in rows]
