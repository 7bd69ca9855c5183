from __future__ import annotations

import json
import ssl
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
from opentelemetry.trace import Tracer

from lampo.db.tracing import traced_connection_class


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in and out as Python objects, so no service hand-codes JSON for its columns.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10, **kwargs: Any) -> asyncpg.Pool:
    """A pool whose connections speak jsonb as Python objects. ``tracer=`` (an OpenTelemetry
    ``Tracer``): each statement run under an active span is a span of its own
    (``lampo.db.tracing``). Other keywords go to ``asyncpg.create_pool``."""
    tracer: Tracer | None = kwargs.pop("tracer", None)
    if tracer is not None:
        kwargs["connection_class"] = traced_connection_class(tracer)
    pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, init=_init_connection, **kwargs)
    assert pool is not None
    return pool


SslMode = Literal["disable", "require", "verify-ca", "verify-full"]


def pg_ssl_context(
    sslmode: SslMode | None,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
) -> ssl.SSLContext | None:
    """The TLS context for ``asyncpg`` (``ssl=``), with libpq's ``sslmode`` meanings:
    ``verify-full`` checks the server certificate against ``ca_file`` and the host name,
    ``verify-ca`` only the certificate, ``require`` encrypts without checking. ``None`` or
    ``disable``: no context (the URL's own ``sslmode`` query, if any, still applies).
    ``cert_file``/``key_file`` add a client certificate."""
    if sslmode is None or sslmode == "disable":
        return None
    if sslmode in ("verify-full", "verify-ca"):
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
        context.check_hostname = sslmode == "verify-full"
        context.verify_mode = ssl.CERT_REQUIRED
    else:  # require: encrypted, the certificate is not verified (libpq's meaning)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context


def server_url_of(url: str, database: str = "postgres") -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def with_credentials(url: str, user: str, password: str | None) -> str:
    """The same server and database, another user (and password)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    login = quote(user, safe="") + (f":{quote(password, safe='')}" if password is not None else "")
    return urlunsplit((parts.scheme, f"{login}@{host}", parts.path, parts.query, parts.fragment))


def database_name_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


async def ensure_database(url: str, *, ssl_context: ssl.SSLContext | None = None) -> bool:
    """Create the database named in ``url`` if it does not exist; True when it was created."""
    name = database_name_of(url)
    extra: dict[str, Any] = {"ssl": ssl_context} if ssl_context is not None else {}
    conn = await asyncpg.connect(server_url_of(url), **extra)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.DuplicateDatabaseError:
            return False
        return True
    finally:
        await conn.close()
