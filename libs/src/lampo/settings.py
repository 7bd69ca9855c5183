"""Configuration every service shares, from ``LAMPO_*`` environment variables.

Each service subclasses ``ServiceSettings`` to set its name, HTTP port and anything of its own;
the database defaults to ``lampo_<service>`` on the configured server.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lampo.db.pool import SslMode, pg_ssl_context, server_url_of, with_credentials

if TYPE_CHECKING:  # imported where used: a command that only reads the database starts fast
    from faststream.security import BaseSecurity

    from lampo.crypto import KeyRing
    from lampo.signing import Signer, TrustedKeys


class MissingSetting(RuntimeError):
    """A setting the service (or an operator command) cannot do without is not configured; the
    message says which and how to give it."""


class ServiceSettings(BaseSettings):
    # hide_input_in_errors: a bad value (a key, a password in a URL) is never echoed in an error.
    model_config = SettingsConfigDict(env_prefix="LAMPO_", extra="ignore", hide_input_in_errors=True)

    service: ClassVar[str] = "lampo"
    default_http_port: ClassVar[int] = 8100
    # The name this service signs under (lampo.signing), unless LAMPO_SIGNER says otherwise.
    default_signer: ClassVar[str | None] = None

    kafka_bootstrap: str = "127.0.0.1:9092"
    # The PostgreSQL server (superuser or owner); the service's own database name is appended.
    pg_url: str = "postgresql://lampo:lampo@127.0.0.1:5432/postgres"
    database: str | None = None
    # The service's own role (``lampo db provision`` creates lampo_<service>, owner of its
    # database and nothing else): these credentials replace those in pg_url.
    pg_role: str | None = None
    pg_role_password: SecretStr | None = None
    # The per-subject keys' own database on the same server (e.g. lampo_<service>_keys), backed up
    # apart from the data (docs/KEYS-AND-BACKUPS.md). Unset: the keys live in the service's database.
    keys_database: str | None = None
    # base64 of 32 random bytes; wraps the per-subject data keys. Required: no built-in default.
    master_key: SecretStr | None = None
    # Rotation: the previous master keys (JSON list), read only to open subject keys that
    # `lampo keys rotate` has not re-wrapped yet. Empty once the rotation is done.
    master_keys_old: list[SecretStr] = []
    # The key that must outlive a master-key rotation: blind indexes (and the staff audit chain
    # when LAMPO_AUDIT_KEY is unset) are derived from it. Unset: from the master key, so set it
    # to the current master key before the first rotation (required while master_keys_old is set).
    stable_key: SecretStr | None = None
    http_port: int | None = None
    consumer_batch: int = 500
    # Inbox pruning (lampo.messaging.inbox.prune): how often, on the shared scheduler; 0 turns it
    # off. Rows go once no topic the service reads can deliver their event again.
    inbox_prune_interval_s: float = 60 * 60
    # Consumer group; defaults to lampo-<service>. Tests give each run its own.
    consumer_group: str | None = None

    # Loopback unless told otherwise (a container sets 0.0.0.0 and publishes no more than it must).
    http_host: str = "127.0.0.1"
    # Callers this service's HTTP API answers (caller name -> its token; JSON, e.g.
    # LAMPO_API_CLIENTS='{"staff": "...", "portal": "..."}'), and this service's own token for the
    # services it calls (LAMPO_API_TOKEN). No clients: every route but health and metrics answers 401.
    api_clients: dict[str, SecretStr] = Field(default_factory=dict)
    api_token: SecretStr | None = None

    # Authenticity of tasks, acks and approvals (lampo.signing, CONTRACTS.md "Authenticity").
    # base64 of this service's raw 32-byte Ed25519 private key (`lampo signing-keygen`);
    # unset: what it sends is unsigned, and receivers that verify refuse it.
    signing_key: SecretStr | None = None
    # The name it signs under; default: the service's (the DSAR service: ``coordinator``).
    signer: str | None = None
    # JSON: signer name -> list of base64 public keys (old and new while a key is rotated).
    # Unset: nothing signed is accepted (a participant obeys no task).
    trusted_keys: dict[str, list[str]] = Field(default_factory=dict)

    # Tracing to Zipkin's own API, e.g. http://127.0.0.1:9411/api/v2/spans (OTLP: OTEL_* variables).
    zipkin_endpoint: str | None = None
    # Traces of bulk ingest kept, from 0 to 1 (privacy flows and HTTP requests: always); lampo.tracing.
    trace_sample_ratio: float = Field(1.0, ge=0.0, le=1.0)

    # Kafka transport security. Off by default: the local broker listens in PLAINTEXT on loopback.
    # SSL: TLS (server verified against kafka_ca_file; client certificate optional).
    # SASL_SSL: TLS plus SCRAM-SHA-512 with kafka_username/kafka_password (one user per service).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None
    kafka_ca_file: str | None = None
    kafka_cert_file: str | None = None
    kafka_key_file: str | None = None
    kafka_key_password: SecretStr | None = None
    # Check the broker's host name against its certificate (turn off only for IP-addressed labs).
    kafka_check_hostname: bool = True

    # PostgreSQL TLS, libpq's sslmode meanings (verify-full: CA and host name checked).
    # Unset: no TLS context is passed (an sslmode in LAMPO_PG_URL still applies).
    pg_sslmode: SslMode | None = None
    pg_ca_file: str | None = None
    pg_cert_file: str | None = None
    pg_key_file: str | None = None

    # The signing key of the web pages' session cookies (lampo.web), hex of at least 32 bytes,
    # the same for every instance of a service. Unset: a random key per process (sessions then
    # neither survive a restart nor reach another instance; services.sh and compose set it).
    web_session_key: SecretStr | None = None

    @field_validator("master_key", "stable_key")
    @classmethod
    def _check_master_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from lampo.crypto import parse_master_key

            parse_master_key(value.get_secret_value())
        return value

    @field_validator("signing_key")
    @classmethod
    def _check_signing_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from lampo.signing import private_key

            private_key(value.get_secret_value())
        return value

    @field_validator("signer")
    @classmethod
    def _check_signer(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from lampo.signing import valid_name

        if not valid_name(value):
            raise ValueError("LAMPO_SIGNER: lower-case letters, digits, '_', '.', '-' (at most 64)")
        return value

    @field_validator("trusted_keys")
    @classmethod
    def _check_trusted_keys(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        if not value:
            return value
        from lampo.signing import TrustedKeys, valid_name

        for name in value:
            if not valid_name(name):
                raise ValueError("LAMPO_TRUSTED_KEYS: a signer name is lower-case letters, digits, '_', '.', '-'")
        TrustedKeys(value)  # every key parses
        return value

    @field_validator("master_keys_old")
    @classmethod
    def _check_old_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        if not value:
            return value
        from lampo.crypto import parse_master_key

        for key in value:
            parse_master_key(key.get_secret_value())
        return value

    @model_validator(mode="after")
    def _check_transport(self) -> ServiceSettings:
        if self.kafka_security_protocol == "SASL_SSL" and not (self.kafka_username and self.kafka_password):
            raise ValueError(
                "LAMPO_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs LAMPO_KAFKA_USERNAME and LAMPO_KAFKA_PASSWORD"
            )
        if bool(self.kafka_cert_file) != bool(self.kafka_key_file):
            raise ValueError("LAMPO_KAFKA_CERT_FILE and LAMPO_KAFKA_KEY_FILE go together")
        if self.master_keys_old and self.stable_key is None:
            raise ValueError(
                "LAMPO_MASTER_KEYS_OLD is set: set LAMPO_STABLE_KEY to the master key the blind indexes were "
                "made with (the first LAMPO_MASTER_KEY), so look-ups keep working after the rotation"
            )
        if self.pg_sslmode in ("verify-full", "verify-ca") and not self.pg_ca_file:
            raise ValueError(f"LAMPO_PG_SSLMODE={self.pg_sslmode} needs LAMPO_PG_CA_FILE")
        return self

    # -- transport security ----------------------------------------------------------------------

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        """TLS context for the Kafka clients; None for PLAINTEXT."""
        if self.kafka_security_protocol == "PLAINTEXT":
            return None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.kafka_ca_file)
        context.check_hostname = self.kafka_check_hostname
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.kafka_cert_file:
            password = self.kafka_key_password.get_secret_value() if self.kafka_key_password else None
            context.load_cert_chain(self.kafka_cert_file, self.kafka_key_file, password)
        return context

    def kafka_security(self) -> BaseSecurity | None:
        """FastStream's security object for ``KafkaBroker(security=...)``; None for PLAINTEXT."""
        from faststream.security import BaseSecurity, SASLScram512

        context = self.kafka_ssl_context()
        if self.kafka_security_protocol == "SASL_SSL":
            assert self.kafka_username and self.kafka_password  # checked by the validator
            return SASLScram512(
                self.kafka_username, self.kafka_password.get_secret_value(), ssl_context=context, use_ssl=True
            )
        if self.kafka_security_protocol == "SSL":
            return BaseSecurity(ssl_context=context, use_ssl=True)
        return None

    def kafka_client_options(self) -> dict[str, Any]:
        """Keyword arguments for plain aiokafka clients (admin, producer, consumer): empty for
        PLAINTEXT, so ``AIOKafkaAdminClient(bootstrap_servers=..., **options)`` works either way."""
        if self.kafka_security_protocol == "PLAINTEXT":
            return {}
        options: dict[str, Any] = {
            "security_protocol": self.kafka_security_protocol,
            "ssl_context": self.kafka_ssl_context(),
        }
        if self.kafka_security_protocol == "SASL_SSL":
            assert self.kafka_username and self.kafka_password
            options |= {
                "sasl_mechanism": self.kafka_sasl_mechanism,
                "sasl_plain_username": self.kafka_username,
                "sasl_plain_password": self.kafka_password.get_secret_value(),
            }
        return options

    def pg_ssl(self) -> ssl.SSLContext | None:
        """TLS context for ``asyncpg`` (``ssl=``); None when LAMPO_PG_SSLMODE is unset or disable."""
        return pg_ssl_context(self.pg_sslmode, self.pg_ca_file, self.pg_cert_file, self.pg_key_file)

    @property
    def signer_name(self) -> str:
        return self.signer or self.default_signer or self.service

    def signing(self) -> Signer | None:
        """This service's signer; None when LAMPO_SIGNING_KEY is unset."""
        if self.signing_key is None:
            return None
        from lampo.signing import Signer

        return Signer(self.signer_name, self.signing_key.get_secret_value())

    def trusted(self) -> TrustedKeys:
        from lampo.signing import TrustedKeys

        return TrustedKeys(self.trusted_keys)

    @property
    def database_url(self) -> str:
        url = server_url_of(self.pg_url, self.database or f"lampo_{self.service}")
        if self.pg_role is None:
            return url
        password = self.pg_role_password.get_secret_value() if self.pg_role_password else None
        return with_credentials(url, self.pg_role, password)

    @property
    def keys_database_url(self) -> str | None:
        if self.keys_database is None:
            return None
        return server_url_of(self.database_url, self.keys_database)

    @property
    def port(self) -> int:
        return self.http_port or self.default_http_port

    def stable_key_bytes(self) -> bytes:
        """The root of the keys that outlive a master-key rotation (LAMPO_STABLE_KEY, else the master key)."""
        from lampo.crypto import parse_master_key

        if self.stable_key is not None:
            return parse_master_key(self.stable_key.get_secret_value())
        return self.master_key_bytes()

    def key_ring(self) -> KeyRing:
        """The service's key ring: current master key, the old ones being rotated out, the stable key."""
        from lampo.crypto import KeyRing, parse_master_key

        return KeyRing(
            self.master_key_bytes(),
            old_master_keys=[parse_master_key(k.get_secret_value()) for k in self.master_keys_old],
            stable_key=self.stable_key_bytes(),
        )

    def web_session_key_bytes(self) -> bytes:
        """The session cookies' key (LAMPO_WEB_SESSION_KEY), or a random one for this process."""
        if self.web_session_key is None:
            import logging
            import secrets

            logging.getLogger("lampo.web").warning(
                "LAMPO_WEB_SESSION_KEY is not set: sessions last only as long as this process"
            )
            return secrets.token_bytes(32)
        try:
            key = bytes.fromhex(self.web_session_key.get_secret_value())
        except ValueError:
            raise MissingSetting("LAMPO_WEB_SESSION_KEY must be hex (`openssl rand -hex 32`)") from None
        if len(key) < 32:
            raise MissingSetting("LAMPO_WEB_SESSION_KEY must be at least 32 bytes (64 hex digits)")
        return key

    def master_key_bytes(self) -> bytes:
        if self.master_key is None:
            raise MissingSetting(
                "LAMPO_MASTER_KEY is not set: give the service a base64 key of 32 random bytes "
                "(`lampo keygen` prints one; `make up` creates one in .run/master.key)"
            )
        from lampo.crypto import parse_master_key

        return parse_master_key(self.master_key.get_secret_value())
