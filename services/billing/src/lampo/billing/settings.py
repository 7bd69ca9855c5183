from __future__ import annotations

from typing import ClassVar

from lampo.settings import ServiceSettings


class BillingSettings(ServiceSettings):
    service: ClassVar[str] = "billing"
    default_http_port: ClassVar[int] = 8105
    # Name in the privacy protocol (tasks addressed to it are ours). Tests give each run its own,
    # so that another instance running at the same time never answers their tasks.
    participant_name: str = "billing"
    # Scheduled deletions (items kept for a statutory period after an erasure, deleted when it
    # ends): first run this long after start-up, then every interval. 0 turns it off (then
    # `lampo billing purge-due` is the way).
    purge_interval_s: float = 24 * 60 * 60
    purge_first_delay_s: float = 60.0
