"""SQL spans: one CLIENT span per statement run through a pool's connections, under the span that
is active (an HTTP request, a record's ``process`` span); no active, sampled span, no SQL span
(the outbox relay's polling and the schedulers' sweeps would otherwise start a trace each).

A hand-made span, on purpose: OpenTelemetry's ``opentelemetry-instrumentation-asyncpg`` has no
release on the 0.66b2 line that goes with opentelemetry-sdk 1.45.2 (its newest, 0.66b1, pins
``opentelemetry-semantic-conventions==0.66b1`` where the sdk pins 0.66b2: pip cannot install
both), and it patches ``asyncpg.Connection`` for the whole process with one tracer provider,
where each runtime keeps its own. This is asyncpg's own extension point instead
(``connection_class``), with the same spans as that instrumentation and the current database
conventions (``db.system.name``, ``db.namespace``, ``db.operation.name``, ``db.query.text``).

Never personal data: ``db.query.text`` is the statement as written in the code, parameterised
(``$1``); the parameters are never recorded. A failed statement records the error's type only
(a database error's message may quote a row).

Not spans: ``BEGIN`` (a transaction's start says nothing its first statement does not; its
``COMMIT`` is kept, which is where the time of a write goes) and the reset a pool runs on every
connection it takes back (``Connection.reset``: one statement per acquire, under whatever span
happens to be current). Each was a span of its own in every trace, about a third of a privacy
request's SQL spans, with their export.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

_LEADING_COMMENT = re.compile(r"^\s*(/\*.*?\*/\s*)*", re.DOTALL)


def _operation(query: str) -> str:
    words = _LEADING_COMMENT.sub("", query, count=1).split(maxsplit=1)
    operation = words[0].rstrip(";").upper() if words else ""
    return operation or "SQL"


def traced_connection_class(tracer: Tracer) -> type[asyncpg.Connection]:
    """An ``asyncpg.Connection`` subclass whose statements are spans of ``tracer``."""

    class TracedConnection(asyncpg.Connection):  # type: ignore[misc]  # asyncpg's class is untyped
        async def _traced(self, method: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            if not trace.get_current_span().is_recording():
                return await method(query, *args, **kwargs)
            operation = _operation(query)
            if operation == "BEGIN":
                return await method(query, *args, **kwargs)
            params = getattr(self, "_params", None)
            database = getattr(params, "database", None)
            attributes: dict[str, str | int] = {
                "db.system.name": "postgresql",
                "db.operation.name": operation,
                "db.query.text": query,
            }
            if database:
                attributes["db.namespace"] = database
            address = getattr(self, "_addr", None)
            if isinstance(address, tuple) and len(address) >= 2:
                attributes["server.address"], attributes["server.port"] = str(address[0]), int(address[1])
            with tracer.start_as_current_span(
                operation,
                kind=SpanKind.CLIENT,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    return await method(query, *args, **kwargs)
                except Exception as e:
                    span.set_attribute("error.type", type(e).__qualname__)
                    span.set_status(Status(StatusCode.ERROR, type(e).__qualname__))
                    raise

        async def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
            return await self._traced(super().execute, query, *args, **kwargs)

        async def reset(self, *, timeout: float | None = None) -> None:
            with trace.use_span(trace.INVALID_SPAN):  # the pool's housekeeping: no span
                await super().reset(timeout=timeout)

        async def executemany(self, command: str, args: Any, **kwargs: Any) -> Any:
            return await self._traced(super().executemany, command, args, **kwargs)

        async def fetch(self, query: str, *args: Any, **kwargs: Any) -> Any:
            return await self._traced(super().fetch, query, *args, **kwargs)

        async def fetchval(self, query: str, *args: Any, **kwargs: Any) -> Any:
            return await self._traced(super().fetchval, query, *args, **kwargs)

        async def fetchrow(self, query: str, *args: Any, **kwargs: Any) -> Any:
            return await self._traced(super().fetchrow, query, *args, **kwargs)

        async def fetchmany(self, query: str, args: Any, **kwargs: Any) -> Any:
            return await self._traced(super().fetchmany, query, args, **kwargs)

    return TracedConnection
