"""Every SQL statement of the staff service."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

import asyncpg

from lampo.staff.domain import GENESIS, HMAC_SHA256, AuditEntry, AuditRow, chain_mac

# Appends to the audit chain are serialised: each row needs the hash of the one before it.
_AUDIT_LOCK = 0x5354_4146_4641_5544  # "STAFFAUD"


class StaffStore:
    def __init__(self, conn: asyncpg.Connection, audit_key: bytes | None = None) -> None:
        self.conn = conn
        # The key of the audit chain (LAMPO_AUDIT_KEY); needed only to append to it.
        self._audit_key = audit_key

    # --- users and grants ----------------------------------------------------------------------

    async def user(self, username: str, *, for_update: bool = False) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self.conn.fetchrow(
            "SELECT username, password_hash, failed_attempts, locked_at FROM users WHERE username = $1"
            + (" FOR UPDATE" if for_update else ""),
            username,
        )
        return row

    async def create_user(self, username: str, password_hash: str, created_by: str, at: datetime) -> bool:
        status: str = await self.conn.execute(
            "INSERT INTO users (username, password_hash, created_by, created_at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (username) DO NOTHING",
            username,
            password_hash,
            created_by,
            at,
        )
        return status.endswith(" 1")

    async def users(self) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.conn.fetch(
            "SELECT u.username, u.created_at, u.failed_attempts, u.locked_at,"
            " coalesce(array_agg(g.role ORDER BY g.role) FILTER (WHERE g.role IS NOT NULL), '{}') AS roles"
            " FROM users u LEFT JOIN grants g USING (username) GROUP BY u.username ORDER BY u.username"
        )
        return rows

    async def set_password_hash(self, username: str, password_hash: str) -> None:
        await self.conn.execute("UPDATE users SET password_hash = $2 WHERE username = $1", username, password_hash)

    async def record_failure(self, username: str, lock_at: datetime | None) -> int:
        attempts: int = await self.conn.fetchval(
            "UPDATE users SET failed_attempts = failed_attempts + 1, locked_at = coalesce(locked_at, $2)"
            " WHERE username = $1 RETURNING failed_attempts",
            username,
            lock_at,
        )
        return attempts

    async def lock(self, username: str, at: datetime) -> None:
        await self.conn.execute("UPDATE users SET locked_at = $2 WHERE username = $1", username, at)

    async def reset_failures(self, username: str) -> None:
        await self.conn.execute("UPDATE users SET failed_attempts = 0 WHERE username = $1", username)

    async def unlock(self, username: str) -> bool:
        status: str = await self.conn.execute(
            "UPDATE users SET failed_attempts = 0, locked_at = NULL WHERE username = $1", username
        )
        return status.endswith(" 1")

    async def roles_of(self, username: str) -> list[str]:
        rows = await self.conn.fetch("SELECT role FROM grants WHERE username = $1 ORDER BY role", username)
        return [r["role"] for r in rows]

    async def grant(self, username: str, role: str, granted_by: str, at: datetime) -> bool:
        status: str = await self.conn.execute(
            "INSERT INTO grants (username, role, granted_by, granted_at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING",
            username,
            role,
            granted_by,
            at,
        )
        return status.endswith(" 1")

    async def revoke(self, username: str, role: str) -> bool:
        status: str = await self.conn.execute("DELETE FROM grants WHERE username = $1 AND role = $2", username, role)
        return status.endswith(" 1")

    async def holders_of(self, role: str) -> list[str]:
        rows = await self.conn.fetch("SELECT username FROM grants WHERE role = $1 ORDER BY username FOR UPDATE", role)
        return [r["username"] for r in rows]

    # --- sessions --------------------------------------------------------------------------------

    async def create_session(self, token_hash: bytes, username: str, at: datetime, expires_at: datetime) -> None:
        await self.conn.execute(
            "INSERT INTO sessions (token_hash, username, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            token_hash,
            username,
            at,
            expires_at,
        )

    async def session_user(self, token_hash: bytes, now: datetime) -> str | None:
        """The user of a live session: not ended, not expired, the account not locked."""
        username: str | None = await self.conn.fetchval(
            "SELECT s.username FROM sessions s JOIN users u USING (username)"
            " WHERE s.token_hash = $1 AND s.ended_at IS NULL AND s.expires_at > $2 AND u.locked_at IS NULL",
            token_hash,
            now,
        )
        return username

    async def end_session(self, token_hash: bytes, at: datetime) -> None:
        await self.conn.execute(
            "UPDATE sessions SET ended_at = $2 WHERE token_hash = $1 AND ended_at IS NULL", token_hash, at
        )

    async def end_sessions_of(self, username: str, at: datetime) -> None:
        await self.conn.execute(
            "UPDATE sessions SET ended_at = $2 WHERE username = $1 AND ended_at IS NULL", username, at
        )

    # --- the audit chain ---------------------------------------------------------------------------

    async def append_audit(self, entry: AuditEntry, at: datetime) -> int:
        """Append one row to the chain; call inside a transaction (the lock is held until commit)."""
        if self._audit_key is None:
            raise RuntimeError("StaffStore(conn, audit_key) is needed to append to the audit chain")
        await self.conn.execute("SELECT pg_advisory_xact_lock($1)", _AUDIT_LOCK)
        last = await self.conn.fetchrow("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        seq = 1 if last is None else last["seq"] + 1
        prev = GENESIS if last is None else last["hash"]
        await self.conn.execute(
            "INSERT INTO audit_log (seq, at, actor, action, interface, customer_number, categories, outcome,"
            " detail, prev_hash, hash, scheme) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12)",
            seq,
            at,
            entry.actor,
            entry.action,
            entry.interface,
            entry.customer_number,
            list(entry.categories),
            entry.outcome,
            json.dumps(dict(entry.detail or {}), sort_keys=True),
            prev,
            chain_mac(self._audit_key, prev, seq, at, entry),
            HMAC_SHA256,
        )
        return seq

    async def audit_head(self) -> tuple[int, str] | None:
        """The chain's last row: (seq, hash), None while the log is empty."""
        row = await self.conn.fetchrow("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        return None if row is None else (row["seq"], row["hash"])

    async def audit_rows(self) -> AsyncIterator[AuditRow]:
        """Every audit row in seq order (a server-side cursor: call inside a transaction)."""
        async for r in self.conn.cursor("SELECT * FROM audit_log ORDER BY seq"):
            entry = AuditEntry(
                actor=r["actor"],
                action=r["action"],
                interface=r["interface"],
                outcome=r["outcome"],
                customer_number=r["customer_number"],
                categories=tuple(r["categories"]),
                detail=json.loads(r["detail"]),
            )
            yield r["seq"], r["at"], entry, r["scheme"], r["prev_hash"], r["hash"]

    async def count_audit(self, action: str, since: datetime, *, actor: str | None = None) -> int:
        count: int = await self.conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = $1 AND at > $2 AND ($3::text IS NULL OR actor = $3)",
            action,
            since,
            actor,
        )
        return count

    async def search_audit(
        self,
        *,
        customer_number: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_seq: int | None = None,
        limit: int = 50,
    ) -> list[asyncpg.Record]:
        """Audit rows matching every filter given, newest first, ``limit`` rows with a seq below
        ``before_seq`` (the page before)."""
        rows: list[asyncpg.Record] = await self.conn.fetch(
            "SELECT seq, at, actor, action, interface, customer_number, categories, outcome, detail FROM audit_log"
            " WHERE ($1::text IS NULL OR customer_number = $1) AND ($2::text IS NULL OR actor = $2)"
            " AND ($3::timestamptz IS NULL OR at >= $3) AND ($4::timestamptz IS NULL OR at < $4)"
            " AND ($5::bigint IS NULL OR seq < $5) ORDER BY seq DESC LIMIT $6",
            customer_number,
            actor,
            since,
            until,
            before_seq,
            limit,
        )
        return rows

    # --- failed logins (per address, and in a window), by index, not from the audit log -------------

    async def record_login_failure(self, at: datetime, address: str) -> None:
        await self.conn.execute("INSERT INTO login_failures (at, address) VALUES ($1, $2)", at, address)

    async def count_failures(self, since: datetime, *, address: str | None = None) -> int:
        count: int
        if address is None:
            count = await self.conn.fetchval("SELECT count(*) FROM login_failures WHERE at > $1", since)
        else:
            count = await self.conn.fetchval(
                "SELECT count(*) FROM login_failures WHERE address = $1 AND at > $2", address, since
            )
        return count

    # --- confidentiality commitments (§8) ------------------------------------------------------------

    async def add_commitment(self, username: str, text_version: str, at: datetime) -> bool:
        status: str = await self.conn.execute(
            "INSERT INTO confidentiality_commitments (username, text_version, committed_at) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING",
            username,
            text_version,
            at,
        )
        return status.endswith(" 1")

    async def commitment_at(self, username: str, text_version: str) -> datetime | None:
        at: datetime | None = await self.conn.fetchval(
            "SELECT committed_at FROM confidentiality_commitments WHERE username = $1 AND text_version = $2",
            username,
            text_version,
        )
        return at

    async def commitments(self) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.conn.fetch(
            "SELECT username, text_version, committed_at FROM confidentiality_commitments"
            " ORDER BY username, text_version"
        )
        return rows

    # --- alerts ----------------------------------------------------------------------------------

    async def alerted_since(self, kind: str, username: str | None, since: datetime) -> bool:
        return bool(
            await self.conn.fetchval(
                "SELECT true FROM alerts WHERE kind = $1 AND username IS NOT DISTINCT FROM $2 AND at > $3 LIMIT 1",
                kind,
                username,
                since,
            )
        )

    async def add_alert(self, kind: str, username: str | None, at: datetime, detail: dict[str, int | str]) -> int:
        alert_id: int = await self.conn.fetchval(
            "INSERT INTO alerts (kind, username, at, detail) VALUES ($1, $2, $3, $4::jsonb) RETURNING id",
            kind,
            username,
            at,
            json.dumps(detail),
        )
        return alert_id

    async def recent_alerts(self, limit: int) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.conn.fetch(
            "SELECT id, kind, username, at, detail FROM alerts ORDER BY id DESC LIMIT $1", limit
        )
        return rows

    async def alerts(self, kinds: Sequence[str] | None = None) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.conn.fetch(
            "SELECT id, kind, username, at, detail FROM alerts WHERE $1::text[] IS NULL OR kind = ANY($1::text[])"
            " ORDER BY id",
            list(kinds) if kinds is not None else None,
        )
        return rows

    # --- the follow-up of the accuracy report (§12) ---------------------------------------------------

    async def add_followup(self, at: datetime, username: str, customer_number: str, finding: str, outcome: str) -> int:
        followup_id: int = await self.conn.fetchval(
            "INSERT INTO accuracy_followups (at, username, customer_number, finding, outcome)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING id",
            at,
            username,
            customer_number,
            finding,
            outcome,
        )
        return followup_id

    async def followups(self, limit: int) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.conn.fetch(
            "SELECT id, at, username, customer_number, finding, outcome FROM accuracy_followups"
            " ORDER BY id DESC LIMIT $1",
            limit,
        )
        return rows
