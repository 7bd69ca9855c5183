"""Accounts, sessions, rights and monitoring: what the HTTP API and the CLI both do.

Every effect and its audit row commit in one transaction: no login, grant or read without its
record. Passwords are hashed with argon2id (off the event loop) and never logged or stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from lampo.clock import Clock
from lampo.staff.domain import (
    ACCURACY_FINDINGS,
    ACCURACY_OUTCOMES,
    ADMINISTRATOR,
    CUSTOMER_NUMBER,
    USERNAME,
    AuditEntry,
    AuditHead,
    AuditRow,
    ChainReport,
    Rights,
    Role,
    check_password,
    check_username,
    rights_of,
    verify_chain,
)
from lampo.staff.errors import (
    AdministratorExists,
    ConfidentialityCommitmentMissing,
    GrantNotFound,
    InvalidCredentials,
    InvalidInput,
    LastAdministrator,
    Throttled,
    Unauthorised,
    UnknownRole,
    UnknownUser,
    UserExists,
)
from lampo.staff.settings import StaffSettings
from lampo.staff.store import StaffStore

log = logging.getLogger("lampo.staff")

# Told of a chain check's progress: (phase "reading" | "checking", rows done, rows in the chain).
Progress = Callable[[str, int, int], None]
AUDIT_PAGE = 50

# Verified against when the username is unknown, so a miss costs as much time as a wrong password.
# argon2id with OWASP's parameters (Password Storage Cheat Sheet: m=19 MiB, t=2, p=1), not
# argon2-cffi's default RFC 9106 low-memory profile (m=64 MiB, t=3, p=4): every hash and every
# verification holds its memory at once, and 64 MiB of it set the staff service's peak RSS
# (166 MB under a benchmark's load; the goal is 150). A hash made with other parameters still
# verifies with its own, and is rehashed with these at the user's next login (check_needs_rehash).
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_DUMMY_HASH = _HASHER.hash("not-a-real-password-0")


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def address_digest(address: str | None) -> str:
    """The client's address as a short digest: enough to count failures per place."""
    return hashlib.sha256(f"address:{address or 'unknown'}".encode()).hexdigest()[:16]


def username_digest(username: str) -> str:
    """A short digest standing for an unknown login name (it may be a mistyped password)."""
    return hashlib.sha256(username.encode(errors="replace")).hexdigest()[:16]


@dataclass(frozen=True)
class Session:
    token: str
    expires_at: datetime


class Access:
    def __init__(
        self,
        settings: StaffSettings,
        roles: Mapping[str, Role],
        pool: Callable[[], asyncpg.Pool],
        clock: Clock,
        hasher: PasswordHasher = _HASHER,
    ) -> None:
        self.settings = settings
        self.roles = roles
        self._pool = pool
        self.clock = clock
        self.hasher = hasher
        self.audit_key = settings.audit_key_bytes()
        self.on_lockout: Callable[[], None] | None = None  # told of each account locked (a metric)

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool()

    def _store(self, conn: asyncpg.Connection) -> StaffStore:
        return StaffStore(conn, self.audit_key)

    # --- login ------------------------------------------------------------------------------------

    async def login(
        self, username: str, password: str, *, interface: str = "http", address: str | None = None
    ) -> Session:
        """A session for the right password. Every failure gets the same answer, whether the name
        is unknown, the password wrong or the account locked (as costly: a password is always
        verified), so the answer tells nobody which accounts exist. An address with too many
        recent failures is refused before any account is tried (``Throttled``)."""
        now = self.clock.now()
        place = address_digest(address)
        async with self.pool.acquire() as conn, conn.transaction():
            store = self._store(conn)
            window = now - timedelta(seconds=self.settings.address_throttle_window_s)
            if await store.count_failures(window, address=place) >= self.settings.address_throttle_after:
                await store.append_audit(
                    AuditEntry("unknown", "login_throttled", interface, "throttled", detail={"address": place}), now
                )
                throttled = True
            else:
                throttled = False
        if throttled:
            raise Throttled(
                "too many failed logins from this address: try again later",
                retry_after_s=self.settings.address_throttle_window_s,
            )
        async with self.pool.acquire() as conn, conn.transaction():
            store = self._store(conn)
            # A name no account can have is not looked up (it may hold anything, a NUL byte included).
            user = await store.user(username, for_update=True) if USERNAME.fullmatch(username) else None
            if user is None:
                await self._verify(_DUMMY_HASH, password)
                await store.append_audit(
                    AuditEntry(
                        "unknown",
                        "login_failed",
                        interface,
                        "unknown_user",
                        detail={"name_digest": username_digest(username), "address": place},
                    ),
                    now,
                )
            elif user["locked_at"] is not None:
                await self._verify(_DUMMY_HASH, password)
                await store.append_audit(
                    AuditEntry(username, "login_failed", interface, "locked", detail={"address": place}), now
                )
            elif not await self._verify(user["password_hash"], password):
                locks = user["failed_attempts"] + 1 >= self.settings.lockout_after
                attempts = await store.record_failure(username, now if locks else None)
                await store.append_audit(
                    AuditEntry(
                        username,
                        "login_failed",
                        interface,
                        "wrong_password",
                        detail={"attempts": attempts, "address": place},
                    ),
                    now,
                )
                if locks:
                    await store.append_audit(AuditEntry(username, "account_locked", interface, "locked"), now)
                    await store.end_sessions_of(username, now)
                    await self._alert(store, "lockout", username, now, {"attempts": attempts})
                    if self.on_lockout is not None:
                        self.on_lockout()
            else:
                if self.hasher.check_needs_rehash(user["password_hash"]):
                    await store.set_password_hash(username, await asyncio.to_thread(self.hasher.hash, password))
                await store.reset_failures(username)
                token = secrets.token_urlsafe(32)
                expires = now + timedelta(seconds=self.settings.session_ttl_s)
                await store.create_session(token_digest(token), username, now, expires)
                await store.append_audit(AuditEntry(username, "login_succeeded", interface), now)
                return Session(token, expires)
            await store.record_login_failure(now, place)
            await self._failure_alert(store, now)
        # Raised after the commit: the failure, its audit row and any lock are stored. One answer
        # for all: a locked account is told apart only in the audit log and by an administrator.
        raise InvalidCredentials("username or password is wrong")

    async def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return await asyncio.to_thread(self.hasher.verify, password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def logout(self, token: str, *, interface: str = "http") -> None:
        now = self.clock.now()
        async with self.pool.acquire() as conn, conn.transaction():
            store = self._store(conn)
            username = await store.session_user(token_digest(token), now)
            await store.end_session(token_digest(token), now)
            if username:
                await store.append_audit(AuditEntry(username, "logout", interface), now)

    async def authenticate(self, token: str | None) -> Rights:
        if not token:
            raise Unauthorised("a bearer token is required (POST /v1/login)")
        async with self.pool.acquire() as conn:
            store = self._store(conn)
            username = await store.session_user(token_digest(token), self.clock.now())
            if username is None:
                raise Unauthorised("the token is unknown, expired or ended")
            return rights_of(username, await store.roles_of(username), self.roles)

    # --- users and grants ----------------------------------------------------------------------------

    def _known_roles(self, roles: list[str]) -> None:
        unknown = sorted(set(roles) - set(self.roles))
        if unknown:
            raise UnknownRole(f"roles: unknown role {unknown[0]!r} (known: {', '.join(sorted(self.roles))})")

    async def create_user(
        self,
        actor: str,
        username: str,
        password: str,
        roles: list[str],
        *,
        interface: str = "http",
        first_admin: bool = False,
    ) -> list[str]:
        check_username(username)
        self._known_roles(roles)
        check_password(username, password)
        password_hash = await asyncio.to_thread(self.hasher.hash, password)
        now = self.clock.now()
        async with self.pool.acquire() as conn, conn.transaction():
            store = self._store(conn)
            if first_admin:
                await conn.execute("LOCK TABLE grants IN EXCLUSIVE MODE")
                if await store.holders_of(ADMINISTRATOR):
                    raise AdministratorExists("an administrator exists: users are created by an administrator")
            if not await store.create_user(username, password_hash, actor, now):
                raise UserExists(f"username: {username!r} is taken")
            for role in roles:
                await store.grant(username, role, actor, now)
            await store.append_audit(
                AuditEntry(
                    actor, "user_created", interface, detail={"username": username, "roles": ",".join(sorted(roles))}
                ),
                now,
            )
        return sorted(set(roles))

    def _known_user_name(self, username: str) -> None:
        if not USERNAME.fullmatch(username):
            raise UnknownUser("username: no such user")

    async def grant(self, actor: str, username: str, role: str, *, interface: str = "http") -> list[str]:
        self._known_user_name(username)
        self._known_roles([role])
        now = self.clock.now()
        async with self.pool.acquire() as conn, conn.transaction():
            store = self._store(conn)
            if await store.user(username) is None:
                raise UnknownUser(f"username: no user {username!r}")
            if await store.grant(username, role, actor, now):
                await store.append_audit(
                    AuditEntry(actor, "role_granted", interface, detail={"username": username, "role": role}), now
                )
            return await store.roles_of(username)

    async def revoke(self, actor: str, username: str, role: str, *, interface: str = "http") -> list[str]:
        self._known_user_name(username)
        if role not in self.roles:
            raise GrantNotFound("role: no such role")
        now = self.clock.now()
        async with self.pool.acquire() as conn, conn.transaction():
            store = self._store(conn)
            if await store.user(username) is None:
                raise UnknownUser(f"username: no user {username!r}")
            if role == ADMINISTRATOR and await store.holders_of(ADMINISTRATOR) == [username]:
                raise LastAdministrator("the last administrator keeps the role (grant it to another user first)")
            if not await store.revoke(username, role):
                raise GrantNotFound(f"role: {username!r} does not hold {role!r}")
            await store.append_audit(
                AuditEntry(actor, "role_revoked", interface, detail={"username": username, "role": role}), now
            )
            return await store.roles_of(username)

    async def unlock(self, actor: str, username: str, *, interface: str = "http") -> None:
        self._known_user_name(username)
        now = self.clock.now()
        async with self.pool.acquire() as conn, conn.transaction():
            store = self._store(conn)
            if not await store.unlock(username):
                raise UnknownUser(f"username: no user {username!r}")
            await store.append_audit(
                AuditEntry(actor, "account_unlocked", interface, detail={"username": username}), now
            )

    async def users(self) -> list[dict[str, object]]:
        async with self.pool.acquire() as conn:
            rows = await self._store(conn).users()
        return [
            {"username": r["username"], "roles": list(r["roles"]), "locked": r["locked_at"] is not None,
             "failed_attempts": r["failed_attempts"]}
            for r in rows
        ]  # fmt: skip

    # --- monitoring ------------------------------------------------------------------------------------

    async def audit(self, entry: AuditEntry, *, check_reads: bool = False) -> None:
        """Record one event; a subject read also checks the user's read volume."""
        now = self.clock.now()
        async with self.pool.acquire() as conn, conn.transaction():
            store = self._store(conn)
            await store.append_audit(entry, now)
            if check_reads:
                window = timedelta(seconds=self.settings.read_alert_window_s)
                reads = await store.count_audit(entry.action, now - window, actor=entry.actor)
                if reads > self.settings.read_alert_threshold and not await store.alerted_since(
                    "read_volume", entry.actor, now - window
                ):
                    await self._alert(
                        store, "read_volume", entry.actor, now, {"reads": reads, "window_s": window.seconds}
                    )

    async def _failure_alert(self, store: StaffStore, now: datetime) -> None:
        window = timedelta(seconds=self.settings.failure_alert_window_s)
        failures = await store.count_failures(now - window)
        if failures >= self.settings.failure_alert_threshold and not await store.alerted_since(
            "repeated_failures", None, now - window
        ):
            await self._alert(store, "repeated_failures", None, now, {"failures": failures, "window_s": window.seconds})

    async def _alert(
        self, store: StaffStore, kind: str, username: str | None, now: datetime, detail: dict[str, int | str]
    ) -> None:
        alert_id = await store.add_alert(kind, username, now, detail)
        # Ids and counts only: the user is in the alerts table, readable by the operators.
        log.warning("staff alert %d: %s %s", alert_id, kind, " ".join(f"{k}={v}" for k, v in sorted(detail.items())))

    async def verify_audit(
        self, head: AuditHead | None, *, require_head: bool = True, progress: Progress | None = None
    ) -> ChainReport:
        """The chain checked with the audit key and against ``head``, the last one published
        (``lampo.staff.audit_head.last_head``). ``progress`` is told of the rows read, then of the
        rows checked (the check runs off the event loop when someone watches it)."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            store = self._store(conn)
            last = await store.audit_head()
            total = last[0] if last else 0
            rows: list[AuditRow] = []
            async for r in store.audit_rows():
                rows.append(r)
                if progress is not None and len(rows) % 1000 == 0:
                    progress("reading", len(rows), total)
        if progress is None:
            return verify_chain(
                rows, self.audit_key, head=head, head_name=self.settings.audit_head_key, require_head=require_head
            )
        report = progress

        def counted() -> Iterator[AuditRow]:
            for done, row in enumerate(rows, 1):
                if done % 1000 == 0:
                    report("checking", done, len(rows))
                yield row

        report("checking", 0, len(rows))
        return await asyncio.to_thread(
            verify_chain, counted(), self.audit_key, head=head, head_name=self.settings.audit_head_key,
            require_head=require_head,
        )  # fmt: skip

    async def audit_head(self) -> AuditHead | None:
        """The chain's current head, MAC'd for publication; None while the log is empty."""
        async with self.pool.acquire() as conn:
            last = await self._store(conn).audit_head()
        if last is None:
            return None
        return AuditHead.sign(self.audit_key, self.settings.audit_head_key, last[0], last[1], self.clock.now())

    # --- the staff console's administrative pages -----------------------------------------------------

    async def recent_alerts(self, limit: int = 100) -> list[dict[str, object]]:
        """The latest alerts (repeated failures, lockouts, read volumes), newest first."""
        async with self.pool.acquire() as conn:
            rows = await self._store(conn).recent_alerts(limit)
        return [{"id": r["id"], "kind": r["kind"], "username": r["username"], "at": r["at"],
                 "detail": json.loads(r["detail"])} for r in rows]  # fmt: skip

    async def search_audit(
        self,
        searcher: str,
        *,
        customer_number: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_seq: int | None = None,
        limit: int = AUDIT_PAGE,
        interface: str = "console",
    ) -> tuple[list[dict[str, object]], int | None]:
        """A page of the audit log, newest first, and the seq to pass as ``before_seq`` for the
        next page (None on the last). The customer number is matched as the log stores it, never
        looked up in the register. The search itself is audited (who searched for whom)."""
        if customer_number is not None and not CUSTOMER_NUMBER.fullmatch(customer_number):
            raise InvalidInput("customer_number: 1-128 printable ASCII characters")
        if actor is not None and not 1 <= len(actor) <= 128:
            raise InvalidInput("actor: 1-128 characters")
        if since is not None and until is not None and until <= since:
            raise InvalidInput("until: must be after since")
        async with self.pool.acquire() as conn, conn.transaction():
            store = self._store(conn)
            rows = await store.search_audit(
                customer_number=customer_number, actor=actor, since=since, until=until, before_seq=before_seq,
                limit=limit + 1,
            )  # fmt: skip
            await store.append_audit(
                AuditEntry(searcher, "audit_searched", interface, customer_number=customer_number,
                           detail={"actor": actor, "since": since.isoformat() if since else None,
                                   "until": until.isoformat() if until else None}),
                self.clock.now(),
            )  # fmt: skip
        page = [
            {"seq": r["seq"], "at": r["at"], "actor": r["actor"], "action": r["action"], "interface": r["interface"],
             "customer_number": r["customer_number"], "categories": list(r["categories"]), "outcome": r["outcome"],
             "detail": json.loads(r["detail"])}
            for r in rows[:limit]
        ]  # fmt: skip
        next_before: int | None = rows[limit - 1]["seq"] if len(rows) > limit else None
        return page, next_before

    async def record_followup(
        self, username: str, customer_number: str, finding: str, outcome: str, *, interface: str = "console"
    ) -> int:
        """The follow-up of one finding of the accuracy report (§12), with its audit row."""
        if not CUSTOMER_NUMBER.fullmatch(customer_number):
            raise InvalidInput("customer_number: 1-128 printable ASCII characters")
        if finding not in ACCURACY_FINDINGS:
            raise InvalidInput(f"finding: one of {', '.join(ACCURACY_FINDINGS)}")
        if outcome not in ACCURACY_OUTCOMES:
            raise InvalidInput(f"outcome: one of {', '.join(ACCURACY_OUTCOMES)}")
        now = self.clock.now()
        async with self.pool.acquire() as conn, conn.transaction():
            store = self._store(conn)
            followup_id = await store.add_followup(now, username, customer_number, finding, outcome)
            await store.append_audit(
                AuditEntry(username, "accuracy_followup", interface, customer_number=customer_number,
                           detail={"finding": finding, "outcome": outcome}),
                now,
            )  # fmt: skip
        return followup_id

    async def followups(self, limit: int = 200) -> list[dict[str, object]]:
        """The latest follow-ups of the accuracy report, newest first."""
        async with self.pool.acquire() as conn:
            rows = await self._store(conn).followups(limit)
        return [dict(r) for r in rows]

    # --- §8: confidentiality first ---------------------------------------------------------------

    async def commit_confidentiality(self, username: str, text_version: str, *, interface: str = "http") -> datetime:
        """Record that ``username`` committed to the confidentiality text ``text_version``."""
        if text_version != self.settings.confidentiality_text_version:
            raise InvalidInput(
                f"text_version: the text in force is version {self.settings.confidentiality_text_version!r}"
            )
        now = self.clock.now()
        async with self.pool.acquire() as conn, conn.transaction():
            store = self._store(conn)
            if await store.add_commitment(username, text_version, now):
                await store.append_audit(
                    AuditEntry(username, "confidentiality_committed", interface, detail={"text_version": text_version}),
                    now,
                )
            committed = await store.commitment_at(username, text_version)
        assert committed is not None
        return committed

    async def require_commitment(self, username: str) -> None:
        """ConfidentialityCommitmentMissing until the user committed to the text in force."""
        async with self.pool.acquire() as conn:
            at = await self._store(conn).commitment_at(username, self.settings.confidentiality_text_version)
        if at is None:
            raise ConfidentialityCommitmentMissing(
                "record your confidentiality commitment first (POST /v1/me/confidentiality, text version "
                f"{self.settings.confidentiality_text_version!r})"
            )

    async def commitments(self) -> list[dict[str, object]]:
        """Who holds a commitment, to which text version and since when (for the record of processing)."""
        async with self.pool.acquire() as conn:
            rows = await self._store(conn).commitments()
        return [
            {"username": r["username"], "text_version": r["text_version"], "committed_at": r["committed_at"]}
            for r in rows
        ]
