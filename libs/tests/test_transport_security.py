"""Secured transport from configuration: Kafka TLS/SCRAM and PostgreSQL TLS objects built from
LAMPO_* settings. No server needed: the certificates are made here with `cryptography`."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLScram512
from pydantic import ValidationError

from lampo.db.pool import pg_ssl_context
from lampo.service import make_broker
from lampo.settings import ServiceSettings


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA and a client certificate signed by it, as PEM files."""
    root = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("test-ca"))
        .issuer_name(name("test-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("registry"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    files = {"ca": root / "ca.crt", "cert": root / "client.crt", "key": root / "client.key"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return {k: str(v) for k, v in files.items()}


def ca_subjects(context: ssl.SSLContext) -> list[str]:
    return [dict(item[0] for item in c["subject"])["commonName"] for c in context.get_ca_certs()]


def test_plaintext_is_the_default_and_adds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("LAMPO_KAFKA_SECURITY_PROTOCOL", "LAMPO_PG_SSLMODE"):
        monkeypatch.delenv(var, raising=False)
    settings = ServiceSettings()
    assert settings.kafka_security_protocol == "PLAINTEXT"
    assert settings.kafka_security() is None
    assert settings.kafka_client_options() == {}
    assert settings.pg_ssl() is None
    assert "security_protocol" not in consumer_options(make_broker(settings, "t"))


def test_sasl_ssl_from_the_environment_gives_scram_512_over_verified_tls(
    monkeypatch: pytest.MonkeyPatch, pki: dict[str, str]
) -> None:
    monkeypatch.setenv("LAMPO_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("LAMPO_KAFKA_USERNAME", "registry")
    monkeypatch.setenv("LAMPO_KAFKA_PASSWORD", "s3cret")
    monkeypatch.setenv("LAMPO_KAFKA_CA_FILE", pki["ca"])
    settings = ServiceSettings()

    security = settings.kafka_security()
    assert isinstance(security, SASLScram512)
    assert (security.username, security.password, security.use_ssl) == ("registry", "s3cret", True)
    context = security.ssl_context
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert ca_subjects(context) == ["test-ca"]
    assert parse_security(security) | {"ssl_context": None} == {
        "security_protocol": "SASL_SSL",
        "ssl_context": None,
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "registry",
        "sasl_plain_password": "s3cret",
    }
    options = settings.kafka_client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("registry", "s3cret")
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert "s3cret" not in repr(settings)  # the password is a secret in reprs and errors


def consumer_options(broker: object) -> dict[str, object]:
    """The keyword arguments FastStream gives every aiokafka consumer it builds."""
    return dict(broker.config.broker_config.builder.keywords)  # type: ignore[attr-defined]


def test_the_broker_is_built_with_the_configured_security(pki: dict[str, str]) -> None:
    settings = ServiceSettings(
        kafka_security_protocol="SASL_SSL", kafka_username="dsar", kafka_password="pw", kafka_ca_file=pki["ca"]
    )
    options = consumer_options(make_broker(settings, "lampo-dsar"))
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("dsar", "pw")
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_ssl_with_a_client_certificate(pki: dict[str, str]) -> None:
    settings = ServiceSettings(
        kafka_security_protocol="SSL",
        kafka_ca_file=pki["ca"],
        kafka_cert_file=pki["cert"],
        kafka_key_file=pki["key"],
    )
    security = settings.kafka_security()
    assert type(security) is BaseSecurity
    assert security.use_ssl and security.ssl_context is not None
    assert parse_security(security)["security_protocol"] == "SSL"
    assert "sasl_mechanism" not in settings.kafka_client_options()


def test_inconsistent_kafka_settings_are_refused_without_echoing_secrets(pki: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="LAMPO_KAFKA_USERNAME") as error:
        ServiceSettings(kafka_security_protocol="SASL_SSL", kafka_password="do-not-print")
    assert "do-not-print" not in str(error.value)
    with pytest.raises(ValidationError, match="go together"):
        ServiceSettings(kafka_security_protocol="SSL", kafka_cert_file=pki["cert"])
    with pytest.raises(ValidationError):
        ServiceSettings(kafka_security_protocol="SASL_PLAINTEXT")  # only PLAINTEXT, SSL, SASL_SSL


def test_postgres_verify_full_checks_the_ca_and_the_host_name(
    monkeypatch: pytest.MonkeyPatch, pki: dict[str, str]
) -> None:
    monkeypatch.setenv("LAMPO_PG_SSLMODE", "verify-full")
    monkeypatch.setenv("LAMPO_PG_CA_FILE", pki["ca"])
    context = ServiceSettings().pg_ssl()
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ca_subjects(context) == ["test-ca"]


def test_postgres_other_modes(pki: dict[str, str]) -> None:
    verify_ca = pg_ssl_context("verify-ca", pki["ca"])
    assert verify_ca is not None and verify_ca.verify_mode == ssl.CERT_REQUIRED and not verify_ca.check_hostname
    require = pg_ssl_context("require")
    assert require is not None and require.verify_mode == ssl.CERT_NONE
    assert pg_ssl_context("disable") is None and pg_ssl_context(None) is None
    with_client_cert = pg_ssl_context("verify-full", pki["ca"], pki["cert"], pki["key"])
    assert with_client_cert is not None
    with pytest.raises(ValidationError, match="LAMPO_PG_CA_FILE"):
        ServiceSettings(pg_sslmode="verify-full")
    with pytest.raises(FileNotFoundError):
        pg_ssl_context("verify-full", str(Path(pki["ca"]).with_name("missing.crt")))
