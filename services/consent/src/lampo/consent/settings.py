from __future__ import annotations

from typing import ClassVar

from lampo.settings import ServiceSettings


class ConsentSettings(ServiceSettings):
    service: ClassVar[str] = "consent"
    default_http_port: ClassVar[int] = 8102
    # CloudEvents ``source`` of what this instance publishes; tests give each instance its own.
    event_source: str = "urn:lampo:consent"
