"""The portal's calls to the suite, as its ``portal`` caller (LAMPO_API_TOKEN): the registry's
e-mail look-up (where a one-time code goes) and the coordinator's request API and packages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import httpx


class Unavailable(Exception):
    """The other service did not answer as it should (down, refused the portal's credential)."""


class Registry:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def email_of(self, customer_number: str) -> str | None:
        """The e-mail address the register holds, or None (no such customer, or no address)."""
        try:
            answer = await self.client.get(f"/v1/subjects/{quote(customer_number, safe='')}/email")
        except httpx.HTTPError as e:
            raise Unavailable(f"registry: {type(e).__name__}") from None
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise Unavailable(f"registry: HTTP {answer.status_code}")
        email = answer.json().get("email")
        return email if isinstance(email, str) and email else None


class Dsar:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def submit(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """``POST /v1/requests``: the status code and the answer (the request's view, or an error)."""
        try:
            answer = await self.client.post("/v1/requests", json=body)
        except httpx.HTTPError as e:
            raise Unavailable(f"dsar: {type(e).__name__}") from None
        if answer.status_code >= 500 or answer.status_code in (401, 403):
            raise Unavailable(f"dsar: HTTP {answer.status_code}")
        data = answer.json()
        return answer.status_code, data if isinstance(data, dict) else {}

    async def request(self, request_id: str) -> dict[str, Any] | None:
        """``GET /v1/requests/{id}``: the request's view, or None when the coordinator does not
        know it (or it is not the portal's)."""
        try:
            answer = await self.client.get(f"/v1/requests/{quote(request_id, safe='')}")
        except httpx.HTTPError as e:
            raise Unavailable(f"dsar: {type(e).__name__}") from None
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise Unavailable(f"dsar: HTTP {answer.status_code}")
        data = answer.json()
        return data if isinstance(data, dict) else None

    @asynccontextmanager
    async def package(self, request_id: str) -> AsyncIterator[httpx.Response]:
        """``GET /v1/packages/{id}``, streamed: the open response (its status says whether a
        package is there: 200, 404, 410 once expired or destroyed)."""
        try:
            async with self.client.stream("GET", f"/v1/packages/{quote(request_id, safe='')}") as answer:
                yield answer
        except httpx.HTTPError as e:
            raise Unavailable(f"dsar: {type(e).__name__}") from None
