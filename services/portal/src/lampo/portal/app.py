"""Composition root of the privacy centre: ``create_app()`` for ``faststream run --factory``.

The pages are one FastAPI app (lampo.web: session, CSRF, catalogues) served at the site's root
beside the platform's /health/* and /metrics: the runtime mounts it under each of its top-level
paths, and at ``/`` exactly. The mail about requests comes from a consumer of dsar.events.v1
(lampo.portal.notify) and a sender on the runtime's scheduler.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI
from faststream.asgi import AsgiFastStream
from opentelemetry.sdk.trace import SpanProcessor

from lampo.clock import Clock
from lampo.contracts.catalog import DSAR_EVENTS
from lampo.http_auth import credential_headers
from lampo.mail import Mailer
from lampo.portal import store
from lampo.portal.clients import Dsar, Registry
from lampo.portal.email_code import EmailCodes, EmailCodeVerifier
from lampo.portal.notify import events_handler, send_due_mail
from lampo.portal.settings import PortalSettings
from lampo.portal.strong_id import StandInIdentification
from lampo.portal.verify import Verifier
from lampo.service import Runtime, serve
from lampo.web import Site

MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"
# Pages other modules add to the portal (each exposes ``router: APIRouter``), when present.
OPTIONAL_PAGES = ("lampo.portal.consent_pages", "lampo.portal.statement_pages")
PLATFORM_PATHS = frozenset({"/health", "/metrics"})


@dataclass
class Portal:
    runtime: Runtime
    settings: PortalSettings
    site: Site
    pages: FastAPI
    registry: httpx.AsyncClient
    dsar: httpx.AsyncClient
    mailer: Mailer
    verifiers: list[Verifier]
    registry_api: Registry = field(init=False)
    dsar_api: Dsar = field(init=False)
    codes: EmailCodes = field(init=False)

    def __post_init__(self) -> None:
        self.registry_api = Registry(self.registry)
        self.dsar_api = Dsar(self.dsar)
        self.codes = EmailCodes(self)


def optional_routers() -> list[APIRouter]:
    routers = []
    for name in OPTIONAL_PAGES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        routers.append(module.router)
    return routers


def verifiers_of(settings: PortalSettings) -> list[Verifier]:
    """The ways a visitor may verify: the e-mail code always; the stand-in of strong electronic
    identification only when LAMPO_STRONG_ID_STANDIN says so."""
    verifiers: list[Verifier] = [EmailCodeVerifier()]
    if settings.strong_id_standin:
        verifiers.append(StandInIdentification())
    return verifiers


class _Pages:
    """The pages app as a plain ASGI app (one object per mount: the runtime instruments each)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    def openapi_operations(self) -> dict[str, Any]:
        """No API operations: pages for people (their session is the credential), not callers."""
        return {}


def route_paths(routes: Sequence[Any], prefix: str = "") -> list[str]:
    """Every route's path, through included routers: FastAPI keeps an ``include_router`` as one
    entry (its ``original_router`` and ``include_context.prefix``), not as the router's routes."""
    paths: list[str] = []
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            paths += route_paths(included.routes, prefix + str(getattr(context, "prefix", "") or ""))
        else:
            paths.append(prefix + str(getattr(route, "path", "")))
    return paths


def page_mounts(app: FastAPI) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """(mounts, routes) for the runtime: every top-level path of ``app`` as a prefix mount, and
    ``/`` as an exact route (a prefix ``/`` would take /health and /metrics too)."""
    prefixes: set[str] = set()
    root = False
    for path in route_paths(app.routes):
        first = "/" + (path or "/").lstrip("/").split("/", 1)[0]
        if first == "/":
            root = True
        elif first not in PLATFORM_PATHS:
            prefixes.add(first)
    mounts: list[tuple[str, Any]] = [(prefix, _Pages(app)) for prefix in sorted(prefixes)]
    return mounts, ([("/", _Pages(app))] if root else [])


def build(
    settings: PortalSettings | None = None,
    *,
    span_processors: Sequence[SpanProcessor] = (),
    clock: Clock | None = None,
    registry_transport: httpx.AsyncBaseTransport | None = None,
    dsar_transport: httpx.AsyncBaseTransport | None = None,
    mailer: Mailer | None = None,
) -> Portal:
    """The privacy centre. The transports let a test put the registry's and the coordinator's
    real ASGI apps behind the clients instead of a network port."""
    from lampo.portal.pages import create_pages

    settings = settings or PortalSettings()
    # The portal calls the registry and the coordinator as itself (LAMPO_API_TOKEN): the ``portal`` caller.
    timeout, credential = httpx.Timeout(settings.upstream_timeout_s), credential_headers(settings)
    registry = httpx.AsyncClient(
        base_url=settings.registry_url, transport=registry_transport, timeout=timeout, headers=credential
    )
    dsar = httpx.AsyncClient(base_url=settings.dsar_url, transport=dsar_transport, timeout=timeout, headers=credential)
    site = Site(package="lampo.portal", idle_s=settings.verified_ttl_s)
    verifiers = verifiers_of(settings)
    holder: list[Portal] = []
    pages = create_pages(lambda: holder[0], site, settings, verifiers, optional_routers())
    mounts, routes = page_mounts(pages)
    runtime = Runtime(
        settings, migrations=MIGRATIONS, span_processors=span_processors, clock=clock, mounts=mounts, routes=routes
    )
    portal = Portal(runtime, settings, site, pages, registry, dsar, mailer or Mailer(settings), verifiers)
    holder.append(portal)
    pages.state.settings = settings
    pages.state.clock = runtime.clock
    pages.state.portal = portal

    # Mail about the portal's requests: queued from dsar.events.v1 (one per event), sent apart.
    runtime.consume(DSAR_EVENTS, events_handler(portal), name="portal:dsar-events")
    runtime.every("mail", lambda: send_due_mail(portal), interval_s=settings.mail_interval_s,
                  first_delay_s=settings.mail_interval_s)  # fmt: skip

    async def prune_codes() -> int:
        async with runtime.pool.acquire() as conn:
            # kept a day past expiry: the per-number send limit counts them
            return await store.prune_codes(conn, runtime.clock.now() - timedelta(days=1))

    runtime.every("code pruning", prune_codes, interval_s=3600.0, first_delay_s=60.0)

    async def close_clients() -> None:
        await portal.codes.drain()
        await registry.aclose()
        await dsar.aclose()

    runtime.app.on_shutdown(close_clients)
    return portal


def create_app() -> AsgiFastStream:
    return build().runtime.app


def main() -> None:
    serve(build().runtime)
