"""The rules of staff access: roles as data, rights, the password policy, the audit chain and the
EU/EEA check of recipients. No SQL, no HTTP: tested in microseconds."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from lampo.contracts.categories import ALL_CATEGORIES
from lampo.contracts.identifiers import ISO_3166_ALPHA2, is_eu_eea
from lampo.staff.errors import ConfigurationRefused, InvalidInput, WeakPassword

CATEGORIES: Final = tuple(str(c) for c in ALL_CATEGORIES)
FUNCTIONS: Final = ("manage_users", "handle_dsar", "read_audit", "approve_erasure")
REQUIRED_ROLES: Final = ("administrator", "customer_service", "billing_clerk", "data_protection_officer", "auditor")
ADMINISTRATOR: Final = "administrator"

USERNAME = re.compile(r"[a-z][a-z0-9._-]{2,63}")
CUSTOMER_NUMBER = re.compile(r"(?!\.{1,2}$)[!-~]{1,128}")  # "." and ".." would be path steps upstream


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    read: frozenset[str]
    change: frozenset[str]
    functions: frozenset[str]


def load_roles(path: Path) -> dict[str, Role]:
    """The roles file, validated: every required role, known categories and functions only."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigurationRefused(f"roles file {path}: {e}") from e
    return parse_roles(raw, str(path))


def parse_roles(raw: Mapping[str, Any], where: str = "roles") -> dict[str, Role]:
    table = raw.get("roles")
    if not isinstance(table, dict) or set(raw) != {"roles"}:
        raise ConfigurationRefused(f"{where}: expected only a [roles.<name>] table")
    roles: dict[str, Role] = {}
    for name, spec in table.items():
        if not isinstance(spec, dict) or set(spec) - {"description", "read", "change", "functions"}:
            raise ConfigurationRefused(f"{where}: roles.{name}: unknown keys or not a table")
        lists: dict[str, frozenset[str]] = {}
        for key, allowed in (("read", CATEGORIES), ("change", CATEGORIES), ("functions", FUNCTIONS)):
            value = spec.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigurationRefused(f"{where}: roles.{name}.{key}: must be a list of strings")
            unknown = sorted(set(value) - set(allowed))
            if unknown:
                raise ConfigurationRefused(f"{where}: roles.{name}.{key}: unknown {', '.join(unknown)}")
            lists[key] = frozenset(value)
        if not lists["change"] <= lists["read"]:
            raise ConfigurationRefused(f"{where}: roles.{name}: a role may change only categories it may read")
        roles[name] = Role(name, str(spec.get("description", "")), lists["read"], lists["change"], lists["functions"])
    missing = [r for r in REQUIRED_ROLES if r not in roles]
    if missing:
        raise ConfigurationRefused(f"{where}: missing roles {', '.join(missing)}")
    if "manage_users" not in roles[ADMINISTRATOR].functions:
        raise ConfigurationRefused(f"{where}: the administrator role must have manage_users")
    return roles


@dataclass(frozen=True)
class Rights:
    """What a user may do: the union of the roles granted to them, nothing more."""

    username: str
    roles: frozenset[str]
    read: frozenset[str]
    change: frozenset[str]
    functions: frozenset[str]


def rights_of(username: str, granted: Iterable[str], roles: Mapping[str, Role]) -> Rights:
    # A grant of a role that is no longer defined gives nothing.
    held = [roles[r] for r in granted if r in roles]
    return Rights(
        username,
        frozenset(r.name for r in held),
        frozenset().union(*(r.read for r in held)),
        frozenset().union(*(r.change for r in held)),
        frozenset().union(*(r.functions for r in held)),
    )


def parse_categories(value: str | None) -> list[str] | None:
    """``basic,contact`` -> ["basic", "contact"] in the privacy statement's order; None if not given."""
    if value is None or not value.strip():
        return None
    asked = {p.strip() for p in value.split(",") if p.strip()}
    unknown = asked - set(CATEGORIES)
    if unknown or not asked:
        raise InvalidInput("categories: unknown category (expected a comma-separated list of §6 categories)")
    return [c for c in CATEGORIES if c in asked]


# --- passwords --------------------------------------------------------------------------------

MIN_LENGTH: Final = 12
MAX_LENGTH: Final = 256
# The most common passwords and the obvious local ones; a full breach list belongs in a deployment.
COMMON_PASSWORDS: Final = frozenset(
    {
        "123456789012",
        "1234567890123",
        "password1234",
        "password12345",
        "passwordpassword",
        "qwertyuiop12",
        "qwerty123456",
        "qwertyuiopasdf",
        "iloveyou1234",
        "letmein12345",
        "welcome12345",
        "administrator",
        "adminadmin12",
        "salasana1234",
        "salasana12345",
        "salasanasalasana",
        "kesakuu2024!",
        "muuramenlampo",
        "muuramenlampo1",
        "muuramenlämpö",
        "changeme1234",
        "aaaaaaaaaaaa",
        "000000000000",
        "111111111111",
        "abc123abc123",
        "trustno1trustno1",
        "football1234",
        "monkey123456",
        "dragon123456",
    }
)


def check_password(username: str, password: str) -> None:
    """The policy: 12..256 characters, not containing the username, not a common password.
    WeakPassword names the rule broken, never the password."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"password: at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"password: at most {MAX_LENGTH} characters")
    if username and username.casefold() in password.casefold():
        raise WeakPassword("password: must not contain the username")
    if password.casefold() in COMMON_PASSWORDS or len(set(password)) < 4:
        raise WeakPassword("password: too common or too simple")


def check_username(username: str) -> str:
    if not USERNAME.fullmatch(username):
        raise InvalidInput(
            "username: 3-64 characters, lower-case letters, digits, '.', '_' or '-', starting with a letter"
        )
    return username


# --- the audit chain ----------------------------------------------------------------------------

GENESIS: Final = "0" * 64


@dataclass(frozen=True)
class AuditEntry:
    """One audited event: who, what, through which interface, which subject and categories."""

    actor: str
    action: str
    interface: str
    outcome: str = "ok"
    customer_number: str | None = None
    categories: tuple[str, ...] = ()
    detail: Mapping[str, str | int | bool | None] | None = None


def canonical(seq: int, at: datetime, entry: AuditEntry) -> bytes:
    """The row's content as canonical JSON (sorted keys, no spaces, UTC microsecond time)."""
    body = {
        "seq": seq,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": entry.actor,
        "action": entry.action,
        "interface": entry.interface,
        "outcome": entry.outcome,
        "customer_number": entry.customer_number,
        "categories": list(entry.categories),
        "detail": dict(entry.detail or {}),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(prev_hash: str, seq: int, at: datetime, entry: AuditEntry) -> str:
    """The old, unkeyed scheme (``sha256``): anyone with write access can recompute it. Kept to
    verify the rows written before the keyed chain; a keyed row after them seals them."""
    return hashlib.sha256(prev_hash.encode() + canonical(seq, at, entry)).hexdigest()


SHA256: Final = "sha256"
HMAC_SHA256: Final = "hmac-sha256"


def chain_mac(key: bytes, prev_hash: str, seq: int, at: datetime, entry: AuditEntry) -> str:
    """HMAC-SHA256 over the previous row's value and this row's content, under the audit key
    (LAMPO_AUDIT_KEY), which the database never holds: whoever can write the table cannot
    recompute the chain."""
    return hmac.new(key, prev_hash.encode() + canonical(seq, at, entry), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class AuditHead:
    """The chain's last row (seq and its MAC) as published outside the database, itself MAC'd
    so a head written to the topic by someone without the key is refused."""

    seq: int
    hash: str
    at: datetime
    mac: str

    @staticmethod
    def sign(key: bytes, name: str, seq: int, hash: str, at: datetime) -> AuditHead:
        return AuditHead(seq, hash, at, _head_mac(key, name, seq, hash, at))

    def valid(self, key: bytes, name: str) -> bool:
        return hmac.compare_digest(self.mac, _head_mac(key, name, self.seq, self.hash, self.at))

    def to_json(self) -> dict[str, str | int]:
        return {"seq": self.seq, "hash": self.hash, "at": self.at.astimezone(UTC).isoformat(), "mac": self.mac}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> AuditHead:
        return AuditHead(int(data["seq"]), str(data["hash"]), datetime.fromisoformat(str(data["at"])), str(data["mac"]))


def _head_mac(key: bytes, name: str, seq: int, hash: str, at: datetime) -> str:
    body = f"audit-head:{name}:{seq}:{hash}:{at.astimezone(UTC).isoformat()}".encode()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    rows: int
    first_broken: int | None = None
    reason: str | None = None
    head_seq: int | None = None


AuditRow = tuple[int, datetime, AuditEntry, str, str, str]  # seq, at, entry, scheme, prev_hash, hash


def verify_chain(
    rows: Iterable[AuditRow], key: bytes, *, head: AuditHead | None, head_name: str, require_head: bool = True
) -> ChainReport:
    """Rows (seq, at, entry, scheme, prev_hash, hash) in seq order, checked with the audit key and
    against the last published head. Broken: a gap in seq (a deleted row), a prev_hash that is not
    the previous row's value, a value that does not match the row's content under the key (an
    edited row, or one rehashed without the key), an unkeyed row after a keyed one, a head not
    MAC'd with the key, a log shorter than the published head (its tail cut) or a row that
    differs from the published head (the chain recomputed)."""
    count, at_head, broken = _check_rows(rows, key, head.seq if head else None)
    if broken is not None:
        return broken
    if head is None:
        missing = require_head and count > 0
        reason = f"no published head for {head_name!r}: cannot tell a cut tail" if missing else None
        return ChainReport(not missing, count, None, reason)
    if not head.valid(key, head_name):
        return ChainReport(False, count, None, "the published head is not MAC'd with the audit key")
    if head.seq > count:
        return ChainReport(
            False, count, count + 1, f"the log ends at row {count} but row {head.seq} was published: its tail was cut"
        )
    if at_head is None or not hmac.compare_digest(at_head, head.hash):
        return ChainReport(False, count, head.seq, f"row {head.seq} differs from the published head")
    return ChainReport(True, count, head_seq=head.seq)


def _check_rows(
    rows: Iterable[AuditRow], key: bytes, head_seq: int | None
) -> tuple[int, str | None, ChainReport | None]:
    """(rows read, the stored value at ``head_seq``, the first break or None)."""
    expected_seq, prev, count = 1, GENESIS, 0
    keyed = False
    at_head: str | None = None
    for seq, at, entry, scheme, prev_hash, stored in rows:
        count += 1
        reason: str | None = None
        if seq != expected_seq:
            reason = f"row {expected_seq} is missing"
        elif prev_hash != prev:
            reason = "prev_hash does not match the previous row"
        elif scheme == HMAC_SHA256:
            keyed = True
            if not hmac.compare_digest(chain_mac(key, prev_hash, seq, at, entry), stored):
                reason = "content does not match its MAC under the audit key"
        elif scheme == SHA256 and not keyed:
            if chain_hash(prev_hash, seq, at, entry) != stored:
                reason = "content does not match its hash"
        else:
            reason = f"scheme {scheme!r} is not allowed here (only before keyed rows)"
        if reason is not None:
            return count, at_head, ChainReport(False, count, seq, reason)
        if seq == head_seq:
            at_head = stored
        prev, expected_seq = stored, seq + 1
    return count, at_head, None


# --- the accuracy report's follow-up (§12) ---------------------------------------------------------

# What the report found (its three sections) and what the check of one customer came to.
ACCURACY_FINDINGS: Final = ("invalid_or_missing", "duplicate_identity_code", "unconfirmed_contact")
ACCURACY_OUTCOMES: Final = ("confirmed_correct", "corrected", "customer_contacted", "duplicate_resolved")


# --- §9: recipients inside the EU/EEA ---------------------------------------------------------------


def check_recipients(recipients: Iterable[tuple[str, str, str]]) -> None:
    """(name, country, where configured) for each recipient or processor; ConfigurationRefused
    names every one outside the EU/EEA."""
    refused = []
    for name, country, where in recipients:
        if country not in ISO_3166_ALPHA2:
            refused.append(f"{name!r} ({where}): country {country!r} is not an ISO 3166-1 alpha-2 code")
        elif not is_eu_eea(country):
            refused.append(f"{name!r} ({where}): country {country} is outside the EU/EEA")
    if refused:
        raise ConfigurationRefused(
            "refusing to start: personal data must not be transferred or disclosed outside the EU/EEA "
            "(privacy statement §9); remove or replace these recipients: " + "; ".join(refused)
        )


def datamap_recipients(path: Path) -> list[tuple[str, str, str]]:
    """The recipients of every category in the retention data map (``[categories.X] recipients``)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigurationRefused(f"data map {path}: {e}") from e
    found = []
    for category, spec in (raw.get("categories") or {}).items():
        for r in spec.get("recipients", []) if isinstance(spec, dict) else []:
            if not isinstance(r, dict):
                continue
            found.append((str(r.get("name", "?")), str(r.get("country", "")), f"{path.name}: {category}"))
    return found
