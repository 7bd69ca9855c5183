"""An access or portability package after it is built: whose it is and when it expires, read
(streamed chunk by chunk, never whole in memory), transferred to another controller (Art. 20(2)),
and destroyed (its key and its chunks) when it expires or when its subject is erased. Every
fetch, write-out, transfer and destruction is recorded in ``package_log``: who (a caller's or
an operator's name), when, what and how it ended; never the subject's data.

The package's address is ``<public_url>/v1/packages/<request_id>`` (``package_api``); after
its destruction it answers 410.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx

from lampo.contracts.dsar import ParticipantResult
from lampo.contracts.identifiers import ISO_3166_ALPHA2, is_eu_eea
from lampo.crypto import FieldCipher, KeyDestroyed, KeyRing
from lampo.dsar.errors import DsarError, NoPackage, UnknownRequest
from lampo.dsar.settings import DsarSettings

SYSTEM = "system"
STAFF = "staff"
"""The caller that may fetch any package and order transfers (the staff service)."""
COORDINATOR = "dsar"
"""The coordinator's own entry in an erasure's results: the packages it destroyed."""


def package_key(request_id: str) -> str:
    """KeyRing subject of the stored package: destroying it deletes the package."""
    return f"package:{request_id}"


def package_uri(settings: DsarSettings, request_id: str) -> str:
    return f"{settings.public_url.rstrip('/')}/v1/packages/{request_id}"


# -- refusals ----------------------------------------------------------------------------------


class PackageGone(DsarError):
    """410: the package expired or was destroyed (its subject was erased)."""

    def __init__(self, when: datetime | None, reason: str | None) -> None:
        why = "it expired" if (reason or "expired") == "expired" else "its subject was erased"
        at = f" at {when.isoformat()}" if when else ""
        super().__init__("gone", f"package: destroyed{at} because {why}")


class NotYours(DsarError):
    """403: the caller is neither the request's channel nor staff."""

    def __init__(self) -> None:
        super().__init__("forbidden", "caller: only the request's channel or staff may fetch its package")


class TransferRefused(DsarError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)


# -- SQL ----------------------------------------------------------------------------------------


class PackageStore:
    """The SQL of the package's life (the package itself is written by ``DsarStore.save_package``)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def register(
        self,
        request_id: str,
        *,
        subject_id: str | None,
        customer_numbers: Sequence[str],
        categories: Sequence[str],
        expires_at: datetime,
    ) -> None:
        await self.conn.execute(
            "UPDATE packages SET subject_id = $2, customer_numbers = $3, categories = $4, expires_at = $5,"
            " destroyed_at = NULL, destroyed_reason = NULL WHERE request_id = $1",
            request_id, subject_id, list(customer_numbers), list(categories), expires_at,
        )  # fmt: skip

    async def get(self, request_id: str, *, lock: bool = False) -> asyncpg.Record | None:
        """The package with its request's kind and channel."""
        row: asyncpg.Record | None = await self.conn.fetchrow(
            "SELECT p.request_id, p.sha256, p.size_bytes, p.created_at, p.expires_at, p.destroyed_at,"
            " p.destroyed_reason, p.subject_id, p.categories, p.blob IS NOT NULL AS whole, r.kind, r.channel"
            " FROM packages p JOIN requests r USING (request_id) WHERE p.request_id = $1"
            + (" FOR UPDATE OF p" if lock else ""),
            request_id,
        )
        return row

    async def request_channel(self, request_id: str) -> str | None:
        channel: str | None = await self.conn.fetchval("SELECT channel FROM requests WHERE request_id = $1", request_id)
        return channel

    async def whole(self, request_id: str) -> bytes | None:
        """A package stored whole (before packages were stored in chunks)."""
        blob = await self.conn.fetchval("SELECT blob FROM packages WHERE request_id = $1", request_id)
        return None if blob is None else bytes(blob)

    async def chunk(self, request_id: str, n: int) -> bytes | None:
        blob = await self.conn.fetchval(
            "SELECT blob FROM package_chunks WHERE request_id = $1 AND n = $2", request_id, n
        )
        return None if blob is None else bytes(blob)

    async def chunk_count(self, request_id: str) -> int:
        count: int = await self.conn.fetchval("SELECT count(*) FROM package_chunks WHERE request_id = $1", request_id)
        return count

    async def mark_destroyed(self, request_id: str, at: datetime, reason: str) -> None:
        await self.conn.execute("DELETE FROM package_chunks WHERE request_id = $1", request_id)
        await self.conn.execute(
            "UPDATE packages SET blob = NULL, destroyed_at = $2, destroyed_reason = $3 WHERE request_id = $1",
            request_id, at, reason,
        )  # fmt: skip

    async def expired(self, now: datetime, limit: int) -> list[str]:
        rows = await self.conn.fetch(
            "SELECT request_id FROM packages WHERE destroyed_at IS NULL AND expires_at <= $1"
            " ORDER BY expires_at LIMIT $2",
            now,
            limit,
        )
        return [r["request_id"] for r in rows]

    async def of_subject(self, subject_id: str | None, customer_numbers: Sequence[str]) -> list[str]:
        """Live packages of a subject (by pseudonymous subject id or a shared customer number),
        locked, in request_id order."""
        rows = await self.conn.fetch(
            "SELECT request_id FROM packages WHERE destroyed_at IS NULL"
            " AND (subject_id = $1 OR customer_numbers && $2::text[]) ORDER BY request_id FOR UPDATE",
            subject_id,
            list(customer_numbers),
        )
        return [r["request_id"] for r in rows]

    async def destroyed_for(self, reason: str) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.conn.fetch(
            "SELECT request_id, categories FROM packages WHERE destroyed_reason = $1 ORDER BY request_id", reason
        )
        return rows

    async def log(
        self, request_id: str, *, at: datetime, actor: str, action: str, outcome: str, detail: str | None = None
    ) -> None:
        await self.conn.execute(
            "INSERT INTO package_log (request_id, at, actor, action, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6)",
            request_id, at, actor, action, outcome, detail,
        )  # fmt: skip

    async def log_of(self, request_id: str) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.conn.fetch(
            "SELECT at, actor, action, outcome, detail FROM package_log WHERE request_id = $1 ORDER BY id", request_id
        )
        return rows


# -- the package's life -------------------------------------------------------------------------


def categories_of(files: Sequence[str]) -> list[str]:
    """The categories a package holds, from its files (``data/<category>.json``)."""
    return sorted({f[len("data/") : -len(".json")] for f in files if f.startswith("data/") and f.endswith(".json")})


async def register(
    conn: asyncpg.Connection, settings: DsarSettings, req: Any, files: Sequence[str], now: datetime
) -> datetime:
    """A package just stored: note whose it is and when it expires; returns ``expires_at``."""
    expires_at = now + timedelta(days=settings.package_ttl_days)
    await PackageStore(conn).register(
        req["request_id"],
        subject_id=req["subject_id"],
        customer_numbers=req["customer_numbers"] or [],
        categories=categories_of(files),
        expires_at=expires_at,
    )
    return expires_at


async def destroy(
    conn: asyncpg.Connection, keys: KeyRing, request_id: str, *, at: datetime, reason: str, actor: str = SYSTEM
) -> None:
    """Crypto-shred the package (its key) and delete its chunks; the address then answers 410."""
    await keys.destroy(conn, package_key(request_id))
    store = PackageStore(conn)
    await store.mark_destroyed(request_id, at, reason)
    await store.log(request_id, at=at, actor=actor, action="destroy", outcome="destroyed", detail=reason)


async def expire_due(pool: asyncpg.Pool, keys: KeyRing, now: Callable[[], datetime], limit: int = 500) -> int:
    """Destroy every package past its ``expires_at``; returns how many (the sweep's job)."""
    at = now()
    async with pool.acquire() as conn:
        due = await PackageStore(conn).expired(at, limit)
    for request_id in due:
        async with pool.acquire() as conn, conn.transaction():
            row = await PackageStore(conn).get(request_id, lock=True)
            if row is None or row["destroyed_at"] is not None or row["expires_at"] > at:
                continue
            await destroy(conn, keys, request_id, at=at, reason="expired")
    return len(due)


async def destroy_for_erasure(
    conn: asyncpg.Connection, keys: KeyRing, req: Any, now: datetime
) -> ParticipantResult | None:
    """The coordinator as a participant in an erasure, for its own copies: every package of the
    subject is destroyed at once. Its result (None when it never held one for this erasure):
    per category, how many packages holding it were destroyed; the effect counts the packages.
    Repeated (an erasure completed again after a retry), it reports the same."""
    store = PackageStore(conn)
    reason = f"erasure:{req['request_id']}"
    for request_id in await store.of_subject(req["subject_id"], req["customer_numbers"] or []):
        await destroy(conn, keys, request_id, at=now, reason=reason)
    destroyed = await store.destroyed_for(reason)
    if not destroyed:
        return None
    erased: dict[str, int] = {}
    for row in destroyed:
        for category in row["categories"]:
            erased[category] = erased.get(category, 0) + 1
    return ParticipantResult.model_validate(
        {
            "status": "done",
            "erased": erased,
            "effects": [{"action": "packages_destroyed", "items": len(destroyed), "at": now}],
        }
    )


# -- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Opened:
    """A package ready to be read: its facts and a reader of its plaintext chunks."""

    request_id: str
    sha256: str
    size: int
    kind: str
    chunks: Callable[[], AsyncIterator[bytes]]


async def open_package(
    pool: Callable[[], asyncpg.Pool],
    keys: KeyRing,
    request_id: str,
    *,
    caller: str,
    action: str,
    now: datetime,
    check_channel: bool = True,
    log_delivery: bool = True,
) -> Opened:
    """Check and audit one read of a package, in a transaction of its own that is committed
    whatever the answer (a refusal is recorded too): unknown request or no package
    (``unknown_request`` / ``no_package``), a caller that is neither the request's channel nor
    staff (``forbidden``), an expired or destroyed package (``gone``; an expired one is destroyed
    here and now). The chunks are read afterwards one at a time, each on a connection of its
    own, and decrypted one at a time: never the whole package in memory."""
    refusal: DsarError | None = None
    async with pool().acquire() as conn, conn.transaction():
        store = PackageStore(conn)
        row = await store.get(request_id, lock=True)
        cipher: FieldCipher | None = None
        if row is None:
            channel = await store.request_channel(request_id)
            if channel is None:
                refusal = UnknownRequest()
            elif check_channel and caller not in (channel, STAFF):
                refusal, outcome = NotYours(), "forbidden"
            else:
                refusal, outcome = NoPackage(), "not_found"
            if channel is not None:
                await store.log(request_id, at=now, actor=caller, action=action, outcome=outcome)
        elif check_channel and caller not in (row["channel"], STAFF):
            refusal = NotYours()
            await store.log(request_id, at=now, actor=caller, action=action, outcome="forbidden")
        else:
            if row["destroyed_at"] is None and row["expires_at"] is not None and row["expires_at"] <= now:
                await destroy(conn, keys, request_id, at=now, reason="expired")
                row = await store.get(request_id)
                assert row is not None
            if row["destroyed_at"] is None:
                try:
                    cipher = await keys.cipher(conn, package_key(request_id))
                except KeyDestroyed:
                    cipher = None
            if cipher is None:
                refusal = PackageGone(row["destroyed_at"], row["destroyed_reason"])
                await store.log(request_id, at=now, actor=caller, action=action, outcome="gone")
            elif log_delivery:
                await store.log(request_id, at=now, actor=caller, action=action, outcome="delivered")
        count = 0 if row is None or row["whole"] else await store.chunk_count(request_id)
    if refusal is not None:
        raise refusal
    assert row is not None and cipher is not None
    whole = bool(row["whole"])
    count = 1 if whole else count
    opened_with = cipher

    async def chunks() -> AsyncIterator[bytes]:
        for n in range(count):
            async with pool().acquire() as c:
                blob = await (PackageStore(c).whole(request_id) if whole else PackageStore(c).chunk(request_id, n))
            if blob is None:  # destroyed while being read: the read stops short
                raise PackageGone(None, None)
            yield opened_with.decrypt_bytes("package" if whole else f"package:{n}", blob) or b""

    return Opened(request_id, row["sha256"], row["size_bytes"], row["kind"], chunks)


# -- transfer to another controller (Art. 20(2)) ------------------------------------------------


def check_destination(settings: DsarSettings, to: str, country: str) -> str:
    """The receiving controller's address, if a transfer may go there: https only (plain http to
    a loopback address only when the setting allows it, for tests), no credentials in it, and a
    recipient in the EU/EEA (privacy statement §9). Returns the address as given."""
    parts = urlsplit(to)
    if parts.username or parts.password:
        raise TransferRefused("invalid", "to: an address with credentials in it is refused")
    if not parts.hostname:
        raise TransferRefused("invalid", "to: not an absolute https:// address")
    try:
        literal: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(parts.hostname)
    except ValueError:
        literal = None
    loopback = literal.is_loopback if literal is not None else parts.hostname == "localhost"
    test_loopback = loopback and settings.package_transfer_allow_loopback_http
    if parts.scheme != "https" and not (parts.scheme == "http" and test_loopback):
        raise TransferRefused("invalid", "to: only https:// addresses are accepted")
    if (loopback or (literal is not None and not literal.is_global)) and not test_loopback:
        # another controller is reached over the internet: not this host or an internal network
        raise TransferRefused("invalid", "to: a loopback or private network address is not another controller")
    code = country.upper()
    if code not in ISO_3166_ALPHA2:
        raise TransferRefused("invalid", "country: not an ISO 3166-1 alpha-2 code")
    if not is_eu_eea(code):
        raise TransferRefused(
            "outside_eu_eea",
            "country: the receiving controller is outside the EU/EEA; personal data is never transferred there"
            " (privacy statement §9)",
        )
    return to


@dataclass(frozen=True)
class Transfer:
    request_id: str
    to: str
    country: str
    at: datetime
    by: str
    outcome: str  # delivered | failed
    http_status: int | None
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "to": self.to,
            "country": self.country,
            "at": self.at.isoformat(),
            "by": self.by,
            "outcome": self.outcome,
            "http_status": self.http_status,
            "sha256": self.sha256,
        }


async def transfer(
    pool: Callable[[], asyncpg.Pool],
    keys: KeyRing,
    settings: DsarSettings,
    request_id: str,
    *,
    to: str,
    country: str,
    by: str,
    now: Callable[[], datetime],
    client: httpx.AsyncClient | None = None,
) -> Transfer:
    """Send a portability package to the receiving controller (``POST`` of the ZIP, streamed),
    at the subject's request, and record where it went, when, by whom and how it ended."""
    check_destination(settings, to, country)
    async with pool().acquire() as conn:
        kind = await conn.fetchval("SELECT kind FROM requests WHERE request_id = $1", request_id)
    if kind is not None and kind != "portability":
        raise TransferRefused("wrong_kind", "request_id: only a portability package is transferred (Art. 20(2))")
    opened = await open_package(
        pool, keys, request_id, caller=by, action="transfer", now=now(), check_channel=False, log_delivery=False
    )
    digest = base64.b64encode(bytes.fromhex(opened.sha256)).decode()
    headers = {
        "content-type": "application/zip",
        "content-length": str(opened.size),
        "content-digest": f"sha-256=:{digest}:",
        "content-disposition": f'attachment; filename="{request_id}.zip"',
    }
    own = client is None
    http = client or httpx.AsyncClient(timeout=settings.package_transfer_timeout_s, follow_redirects=False)
    status: int | None = None
    try:
        response = await http.post(to, content=opened.chunks(), headers=headers)
        status = response.status_code
    except (httpx.HTTPError, DsarError):
        status = None
    finally:
        if own:
            await http.aclose()
    outcome = "delivered" if status is not None and 200 <= status < 300 else "failed"
    at = now()
    detail = f"to {to} ({country.upper()}): " + (f"HTTP {status}" if status is not None else "no answer")
    async with pool().acquire() as conn:
        await PackageStore(conn).log(request_id, at=at, actor=by, action="transfer", outcome=outcome, detail=detail)
    return Transfer(request_id, to, country.upper(), at, by, outcome, status, opened.sha256)
