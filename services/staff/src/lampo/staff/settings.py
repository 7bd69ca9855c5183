"""Settings of the staff service (``LAMPO_*`` environment variables; lists as JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, Field

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
