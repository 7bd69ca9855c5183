"""Settings of the staff service (``LAMPO_*`` environment variables; lists as JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, Field, SecretStr, field_validator

from lampo.crypto import derive_key, parse_master_key
from lampo.settings import ServiceSettings

ROLES_FILE = Path(__file__).with_name("roles.toml")
# The suite's data map (categories, retention, recipients), when the service runs from the repo.
DATAMAP_FILE = Path(__file__).resolve().parents[4] / "retention" / "datamap.toml"


class Recipient(BaseModel):
    """A recipient or processor of personal data, with the country the data goes to."""

    name: str
    country: str
    role: str = "processor"


def _default_recipients() -> list[Recipient]:
    # Where the staff service's own data (accounts, audit log) lives: the company's data centre.
    return [Recipient(name="Example Hosting Oy (data centre)", country="FI")]


class StaffSettings(ServiceSettings):
    service: ClassVar[str] = "staff"
    default_http_port: ClassVar[int] = 8080

    # The services the staff API reads from and forwards to, as the ``staff`` caller (LAMPO_API_TOKEN).
    registry_url: str = "http://127.0.0.1:8101"
    dsar_url: str = "http://127.0.0.1:8103"
    # The stores the console and the JSON API read a customer from, by category (customer_view.py).
    billing_url: str = "http://127.0.0.1:8105"
    recordings_url: str = "http://127.0.0.1:8106"
    consent_url: str = "http://127.0.0.1:8102"
    upstream_timeout_s: float = 10.0

    roles_file: Path = ROLES_FILE
    # §9: every recipient and processor, with its country; one outside the EU/EEA stops start-up.
    recipients: list[Recipient] = Field(default_factory=_default_recipients)
    # The data map's recipients are checked too (unset, or the file absent: only ``recipients``).
    datamap_file: Path | None = DATAMAP_FILE

    session_ttl_s: int = 900
    lockout_after: int = 5
    # Alerts: this many failed logins (any user) within the window, or more subject reads by one
    # user than the threshold within the window.
    failure_alert_threshold: int = 10
    failure_alert_window_s: int = 600
    read_alert_threshold: int = 100
    read_alert_window_s: int = 600

    # Per-address throttle: this many failed logins from one address within the window, and the
    # address is refused (429) without any account being tried, so one place cannot lock every
    # account by guessing five times at each.
    address_throttle_after: int = 10
    address_throttle_window_s: int = 900

    # The audit chain's key (base64 of 32 random bytes), held by the service, never by the
    # database. Unset: derived from LAMPO_STABLE_KEY (else LAMPO_MASTER_KEY), which outlives a
    # master-key rotation.
    audit_key: SecretStr | None = None
    # The chain head (last seq and its MAC) is published to the compacted topic
    # staff.audit-heads.v1 under this key, every audit_head_interval_s seconds (0: never).
    audit_head_key: str = "staff-audit"
    audit_head_interval_s: float = 60.0
    # The service checks the whole chain (against the last head it published) this often and
    # reports the result on /metrics (lampo_staff_audit_chain_intact; 0: never checks).
    audit_verify_interval_s: float = 900.0

    # §8: the version of the confidentiality commitment in force; an account sees no customer
    # data until it has recorded its commitment to this version.
    confidentiality_text_version: str = "2026-1"

    # The tracing UI a request's page links to (LAMPO_TRACING_UI): Zipkin's, ``<base>/traces/<trace id>``.
    tracing_ui: str = "http://127.0.0.1:9411/zipkin"

    @field_validator("audit_key")
    @classmethod
    def _check_audit_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                parse_master_key(value.get_secret_value())
            except ValueError as e:
                raise ValueError(str(e).replace("master key", "audit key")) from None
        return value

    def audit_key_bytes(self) -> bytes:
        if self.audit_key is not None:
            return parse_master_key(self.audit_key.get_secret_value())
        if self.master_key is not None or self.stable_key is not None:
            return derive_key(self.stable_key_bytes(), b"staff-audit-chain")
        raise RuntimeError(
            "LAMPO_AUDIT_KEY is not set: give the staff service a base64 key of 32 random bytes "
            "(`lampo keygen` prints one) for its audit chain"
        )
