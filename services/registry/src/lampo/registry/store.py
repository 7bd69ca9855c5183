"""Every SQL statement of the registry."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

from lampo.crypto import FieldCipher, KeyRing
from lampo.registry.domain import Provenance, SectionUpdate


class RegistryStore:
    def __init__(self, conn: asyncpg.Connection, keys: KeyRing) -> None:
        self.conn = conn
        self.keys = keys

    async def subject_of(self, customer_number: str) -> str | None:
        value: str | None = await self.conn.fetchval(
            "SELECT subject_id FROM customers WHERE customer_number = $1", customer_number
        )
        return value

    async def subject_by_lookup(self, kind: str, value: str) -> str | None:
        found: str | None = await self.conn.fetchval(
            "SELECT subject_id FROM lookup WHERE kind = $1 AND digest = $2 LIMIT 1",
            kind,
            self.keys.blind_index(kind, value),
        )
        return found

    async def create_customer(self, customer_number: str, kind: str, subject_id: str | None) -> str:
        """Attach the customer number to a subject, creating the subject when none is given."""
        if subject_id is None:
            subject_id = str(uuid.uuid4())
            await self.conn.execute("INSERT INTO subjects (subject_id, kind) VALUES ($1, $2)", subject_id, kind)
        await self.conn.execute(
            "INSERT INTO customers (customer_number, subject_id) VALUES ($1, $2)", customer_number, subject_id
        )
        return subject_id

    async def cipher(self, subject_id: str) -> FieldCipher:
        return await self.keys.cipher(self.conn, subject_id, create=True)

    async def write_section(
        self, customer_number: str, subject_id: str, update: SectionUpdate, cipher: FieldCipher, prov: Provenance
    ) -> bool:
        """Replace a section unless a newer event already wrote it; True when written."""
        payload = cipher.encrypt(update.section, json.dumps(update.payload, ensure_ascii=False))
        written = await self.conn.fetchval(
            """
            INSERT INTO sections (customer_number, section, subject_id, category, payload, event_time, event_id,
                                  source_system, origin, legal_basis)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            ON CONFLICT (customer_number, section) DO UPDATE
               SET payload = EXCLUDED.payload, event_time = EXCLUDED.event_time, event_id = EXCLUDED.event_id,
                   source_system = EXCLUDED.source_system, origin = EXCLUDED.origin,
                   legal_basis = EXCLUDED.legal_basis, category = EXCLUDED.category, updated_at = now()
             WHERE sections.event_time <= EXCLUDED.event_time
            RETURNING true
            """,
            customer_number,
            update.section,
            subject_id,
            update.category,
            payload,
            prov.event_time,
            prov.event_id,
            prov.source_system,
            prov.origin,
            prov.legal_basis,
        )
        return bool(written)

    async def set_lookups(self, customer_number: str, subject_id: str, values: dict[str, str]) -> None:
        for kind, value in values.items():
            await self.conn.execute(
                """
                INSERT INTO lookup (kind, digest, customer_number, subject_id) VALUES ($1, $2, $3, $4)
                ON CONFLICT (kind, customer_number) DO UPDATE SET digest = EXCLUDED.digest, subject_id = EXCLUDED.subject_id
                """,
                kind,
                self.keys.blind_index(kind, value),
                customer_number,
                subject_id,
            )

    async def kind_of(self, subject_id: str) -> str:
        kind: str = await self.conn.fetchval("SELECT kind FROM subjects WHERE subject_id = $1", subject_id)
        return kind

    async def sections(self, subject_id: str) -> list[dict[str, Any]]:
        rows = await self.conn.fetch(
            "SELECT customer_number, section, category, payload, event_time, source_system, origin, legal_basis, updated_at"
            " FROM sections WHERE subject_id = $1 ORDER BY customer_number, section",
            subject_id,
        )
        return [dict(r) for r in rows]
