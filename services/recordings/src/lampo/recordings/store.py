"""Every SQL statement of the recordings store.

Audio (whole recordings and held chunks) and e-mail Message-IDs, subjects and bodies are
encrypted with the customer's data key, whose key-ring subject id is a random ``key_id``
mapped from the customer number; the associated data names the recording or chunk, so a
ciphertext cannot be moved unnoticed. Audio is stored in PostgreSQL ``bytea`` (see
``migrations/0001_init.sql``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from lampo.crypto import FieldCipher, KeyDestroyed, KeyRing
from lampo.messaging import outbox


def audio_field(recording_id: str) -> str:
    return f"audio:{recording_id}"


def chunk_field(recording_id: str, index: int) -> str:
    return f"chunk:{recording_id}:{index}"


@dataclass(frozen=True)
class HeldPlan:
    customer_number: str
    chunk_count: int


@dataclass(frozen=True)
class Chunk:
    recording_id: str
    chunk_index: int
    chunk_count: int
    started_at: datetime
    duration_s: float
    media_type: str
    expected_sha256: str | None
    audio: bytes
    received_at: datetime


class RecordingsStore:
    def __init__(self, conn: asyncpg.Connection, keys: KeyRing) -> None:
        self.conn = conn
        self.keys = keys

    # -- customers and their keys -----------------------------------------------------------

    async def cipher_for_ingest(self, customer_number: str) -> FieldCipher:
        key_id = await self.conn.fetchval(
            """
            INSERT INTO customers (customer_number, key_id) VALUES ($1, $2)
            ON CONFLICT (customer_number) DO UPDATE SET customer_number = EXCLUDED.customer_number
            RETURNING key_id
            """,
            customer_number,
            str(uuid.uuid4()),
        )
        return await self.keys.cipher(self.conn, key_id, create=True)

    async def cipher(self, customer_number: str) -> FieldCipher | None:
        key_id = await self.conn.fetchval("SELECT key_id FROM customers WHERE customer_number = $1", customer_number)
        if key_id is None:
            return None
        try:
            return await self.keys.cipher(self.conn, key_id, create=False)
        except KeyDestroyed:
            return None

    async def forget_customer(self, customer_number: str) -> None:
        """Destroy the customer's data key and every row about them (the rest cascades)."""
        key_id = await self.conn.fetchval("SELECT key_id FROM customers WHERE customer_number = $1", customer_number)
        if key_id is None:
            return
        await self.keys.destroy(self.conn, key_id)
        await outbox.purge_subject(self.conn, key_id)
        await self.conn.execute("DELETE FROM customers WHERE customer_number = $1", customer_number)

    async def restrict(self, customer_number: str, at: datetime) -> None:
        await self.conn.execute(
            "UPDATE customers SET restricted_at = COALESCE(restricted_at, $2) WHERE customer_number = $1",
            customer_number,
            at,
        )

    async def lift_restriction(self, customer_number: str) -> None:
        await self.conn.execute("UPDATE customers SET restricted_at = NULL WHERE customer_number = $1", customer_number)

    async def known(self, customer_number: str) -> bool:
        found: bool = await self.conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM customers WHERE customer_number = $1)", customer_number
        )
        return found

    async def restricted_at(self, customer_number: str) -> tuple[bool, datetime | None]:
        """(known here, since when the customer is restricted at their request or None)."""
        row = await self.conn.fetchrow(
            "SELECT restricted_at FROM customers WHERE customer_number = $1", customer_number
        )
        return (row is not None, row["restricted_at"] if row is not None else None)

    async def recording_of(self, customer_number: str, recording_id: str) -> asyncpg.Record | None:
        """One complete recording of the customer, its audio still encrypted."""
        row: asyncpg.Record | None = await self.conn.fetchrow(
            "SELECT recording_id, media_type, sha256, audio FROM recordings WHERE customer_number = $1 AND recording_id = $2",
            customer_number,
            recording_id,
        )
        return row

    async def held_counts(self, customer_number: str) -> int | None:
        """Recordings (complete or not) and e-mails held for the customer; None: not known here."""
        count: int | None = await self.conn.fetchval(
            """
            SELECT (SELECT count(*) FROM recordings r WHERE r.customer_number = c.customer_number)
                 + (SELECT count(DISTINCT recording_id) FROM recording_chunks h WHERE h.customer_number = c.customer_number)
                 + (SELECT count(*) FROM emails e WHERE e.customer_number = c.customer_number)
              FROM customers c WHERE c.customer_number = $1
            """,
            customer_number,
        )
        return count

    # -- recordings ---------------------------------------------------------------------------

    async def recording_plan(self, recording_id: str) -> HeldPlan | None:
        """Customer and chunk count of a recording already assembled, if it is."""
        row = await self.conn.fetchrow(
            "SELECT customer_number, chunk_count FROM recordings WHERE recording_id = $1", recording_id
        )
        return HeldPlan(row["customer_number"], row["chunk_count"]) if row else None

    async def held_plan(self, recording_id: str) -> HeldPlan | None:
        """Customer and chunk count the chunks held so far announced. Chunks of one call share
        the customer number, the record key, so one consumer sees them in order."""
        row = await self.conn.fetchrow(
            "SELECT customer_number, chunk_count FROM recording_chunks WHERE recording_id = $1 LIMIT 1",
            recording_id,
        )
        return HeldPlan(row["customer_number"], row["chunk_count"]) if row else None

    async def hold_chunk(self, customer_number: str, chunk: Chunk) -> None:
        await self.conn.execute(
            """
            INSERT INTO recording_chunks (recording_id, chunk_index, chunk_count, customer_number, started_at,
                                          duration_s, media_type, expected_sha256, audio, received_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            ON CONFLICT (recording_id, chunk_index) DO NOTHING
            """,
            chunk.recording_id,
            chunk.chunk_index,
            chunk.chunk_count,
            customer_number,
            chunk.started_at,
            chunk.duration_s,
            chunk.media_type,
            chunk.expected_sha256,
            chunk.audio,
            chunk.received_at,
        )

    async def held_chunks(self, recording_id: str) -> list[Chunk]:
        rows = await self.conn.fetch(
            "SELECT * FROM recording_chunks WHERE recording_id = $1 ORDER BY chunk_index", recording_id
        )
        return [_chunk(r) for r in rows]

    async def store_recording(
        self, customer_number: str, first: Chunk, *, size: int, sha256: str, audio: bytes
    ) -> None:
        """Store the assembled recording and drop its held chunks, in the caller's transaction."""
        await self.conn.execute(
            """
            INSERT INTO recordings (recording_id, customer_number, started_at, duration_s, media_type, size_bytes,
                                    sha256, chunk_count, audio)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            """,
            first.recording_id,
            customer_number,
            first.started_at,
            first.duration_s,
            first.media_type,
            size,
            sha256,
            first.chunk_count,
            audio,
        )
        await self.conn.execute("DELETE FROM recording_chunks WHERE recording_id = $1", first.recording_id)

    async def recordings_of(self, customer_number: str) -> list[dict[str, Any]]:
        rows = await self.conn.fetch(
            "SELECT * FROM recordings WHERE customer_number = $1 ORDER BY started_at, recording_id", customer_number
        )
        return [dict(r) for r in rows]

    async def recordings_listed(self, customer_number: str) -> list[asyncpg.Record]:
        """A customer's recordings without their audio (read one at a time with :meth:`audio_of`)."""
        rows: list[asyncpg.Record] = await self.conn.fetch(
            "SELECT recording_id, customer_number, started_at, duration_s, media_type, size_bytes, sha256"
            " FROM recordings WHERE customer_number = $1 ORDER BY started_at, recording_id",
            customer_number,
        )
        return rows

    async def audio_of(self, recording_id: str) -> bytes | None:
        """One recording's audio, still encrypted."""
        audio = await self.conn.fetchval("SELECT audio FROM recordings WHERE recording_id = $1", recording_id)
        return None if audio is None else bytes(audio)

    async def held_chunks_of(self, customer_number: str) -> list[Chunk]:
        rows = await self.conn.fetch(
            "SELECT * FROM recording_chunks WHERE customer_number = $1 ORDER BY recording_id, chunk_index",
            customer_number,
        )
        return [_chunk(r) for r in rows]

    async def search(
        self,
        *,
        customer_number: str | None = None,
        started_from: datetime | None = None,
        started_before: datetime | None = None,
        media_type: str | None = None,
    ) -> list[dict[str, Any]]:
        """Metadata of complete recordings (no audio, no personal data); restricted customers'
        recordings are not part of a normal query."""
        rows = await self.conn.fetch(
            """
            SELECT r.recording_id, r.customer_number, r.started_at, r.duration_s, r.media_type, r.size_bytes, r.sha256
              FROM recordings r JOIN customers c USING (customer_number)
             WHERE c.restricted_at IS NULL
               AND ($1::text IS NULL OR r.customer_number = $1)
               AND ($2::timestamptz IS NULL OR r.started_at >= $2)
               AND ($3::timestamptz IS NULL OR r.started_at < $3)
               AND ($4::text IS NULL OR r.media_type = $4)
             ORDER BY r.started_at, r.recording_id
            """,
            customer_number,
            started_from,
            started_before,
            media_type,
        )
        return [dict(r) for r in rows]

    # -- e-mails ------------------------------------------------------------------------------

    async def add_email(
        self,
        customer_number: str,
        *,
        message_key: bytes,
        at: datetime,
        message_id: bytes,
        subject: bytes,
        body: bytes,
        size: int,
    ) -> None:
        await self.conn.execute(
            """
            INSERT INTO emails (customer_number, message_key, at, message_id, subject, body, size_bytes)
            VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (customer_number, message_key) DO NOTHING
            """,
            customer_number,
            message_key,
            at,
            message_id,
            subject,
            body,
            size,
        )

    async def emails_of(self, customer_number: str) -> list[dict[str, Any]]:
        rows = await self.conn.fetch(
            "SELECT message_key, at, message_id, subject, body FROM emails WHERE customer_number = $1"
            " ORDER BY at, message_key",
            customer_number,
        )
        return [dict(r) for r in rows]


async def incomplete_recordings(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Recordings still missing chunks: id, customer number, chunks held of how many, first
    and last arrival (metadata only)."""
    rows = await conn.fetch(
        """
        SELECT recording_id, min(customer_number) AS customer_number, count(*) AS received,
               max(chunk_count) AS chunk_count, min(received_at) AS first_received_at,
               max(received_at) AS last_received_at
          FROM recording_chunks GROUP BY recording_id ORDER BY min(received_at), recording_id
        """
    )
    return [dict(r) for r in rows]


def _chunk(r: asyncpg.Record) -> Chunk:
    return Chunk(
        r["recording_id"],
        r["chunk_index"],
        r["chunk_count"],
        r["started_at"],
        r["duration_s"],
        r["media_type"],
        r["expected_sha256"],
        bytes(r["audio"]),
        r["received_at"],
    )
