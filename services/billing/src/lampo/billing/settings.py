from __future__ import annotations

from typing import ClassVar

from lampo.settings import ServiceSettings


class BillingSettings(ServiceSettings):
    service: ClassVar[str] = "billing"
    default_http_port: ClassVar[int] = 8105
    # Name in the privacy protocol (tasks addressed to it are ours). Tests give each run its own,
    # so that another instance running at the same time never answers their tasks.
    participant_name: str = "billing"
