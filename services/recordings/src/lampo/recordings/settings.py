from __future__ import annotations

from typing import ClassVar

from lampo.settings import ServiceSettings


class RecordingsSettings(ServiceSettings):
    service: ClassVar[str] = "recordings"
    default_http_port: ClassVar[int] = 8106
    # Name in the privacy protocol (tasks addressed to it are ours). Tests give each run its own,
    # so that another instance running at the same time never answers their tasks.
    participant_name: str = "recordings"
