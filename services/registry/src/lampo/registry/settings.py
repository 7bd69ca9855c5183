from __future__ import annotations

from typing import ClassVar

from lampo.settings import ServiceSettings


class RegistrySettings(ServiceSettings):
    service: ClassVar[str] = "registry"
    default_http_port: ClassVar[int] = 8101
