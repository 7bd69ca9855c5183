"""Configuration every service shares, from ``LAMPO_*`` environment variables.

Each service subclasses ``ServiceSettings`` to set its name, HTTP port and anything of its own;
the database defaults to ``lampo_<service>`` on the configured server.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lampo.crypto import parse_master_key
from lampo.db.pool import server_url_of


class ServiceSettings(BaseSettings):
    # hide_input_in_errors: a bad value (a key, a password in a URL) is never echoed in an error.
    model_config = SettingsConfigDict(env_prefix="LAMPO_", extra="ignore", hide_input_in_errors=True)

    service: ClassVar[str] = "lampo"
    default_http_port: ClassVar[int] = 8100

    kafka_bootstrap: str = "127.0.0.1:9092"
    # The PostgreSQL server (superuser or owner); the service's own database name is appended.
    pg_url: str = "postgresql://lampo:lampo@127.0.0.1:5432/postgres"
    database: str | None = None
    # base64 of 32 random bytes; wraps the per-subject data keys. Required: no built-in default.
    master_key: SecretStr | None = None
    http_host: str = "127.0.0.1"
    http_port: int | None = None
    consumer_batch: int = 500
    # Consumer group; defaults to lampo-<service>. Tests give each run its own.
    consumer_group: str | None = None

    @field_validator("master_key")
    @classmethod
    def _check_master_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_master_key(value.get_secret_value())
        return value

    @property
    def database_url(self) -> str:
        return server_url_of(self.pg_url, self.database or f"lampo_{self.service}")

    @property
    def port(self) -> int:
        return self.http_port or self.default_http_port

    def master_key_bytes(self) -> bytes:
        if self.master_key is None:
            raise RuntimeError(
                "LAMPO_MASTER_KEY is not set: give the service a base64 key of 32 random bytes "
                "(`lampo keygen` prints one; `make up` creates one in .run/master.key)"
            )
        return parse_master_key(self.master_key.get_secret_value())
