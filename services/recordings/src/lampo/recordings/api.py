"""The recordings store's read routes for the staff service (``lampo.store_read``), category
``customer_relationship``: the customer's call recordings (metadata) and archived e-mails, and
each recording's audio for playback.

An item: ``{"kind": "recording", "recording_id", "started_at", "duration_s", "media_type",
"size_bytes", "origin", "legal_basis"}`` or ``{"kind": "email", "at", "subject", "body_text",
"origin", "legal_basis"}``.

``GET /v1/customers/{customer_number}/recordings/{recording_id}/audio`` (``staff``): the audio as
stored (its media type, e.g. ``audio/wav``), checked against its SHA-256 first. 404
``{"error": "no_match"}`` unless the recording is the customer's; 409 ``{"error": "withheld"}``
while the customer is restricted, unless ``purpose=legal_claims``; 500 ``{"error":
"integrity_check_failed"}`` when the audio does not match its hash.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import Response

from lampo.contracts.categories import Category
from lampo.recordings.domain import sha256_hex
from lampo.recordings.handlers import PROVENANCE
from lampo.recordings.store import RecordingsStore, audio_field
from lampo.service import Runtime
from lampo.store_read import CUSTOMER_NUMBER, Held, Scope, error, purpose_of, store_read_api

CATEGORY = Category.CUSTOMER_RELATIONSHIP.value


async def read(conn: asyncpg.Connection, runtime: Runtime, customer_number: str, scope: Scope) -> Held | None:
    store = RecordingsStore(conn, runtime.keys)
    known, restricted_at = await store.restricted_at(customer_number)
    if not known:
        return None
    items: list[dict[str, Any]] = []
    if scope != "status":
        for r in await store.recordings_listed(customer_number):
            items.append(
                {
                    "kind": "recording",
                    "recording_id": r["recording_id"],
                    "started_at": r["started_at"],
                    "duration_s": r["duration_s"],
                    "media_type": r["media_type"],
                    "size_bytes": r["size_bytes"],
                    **PROVENANCE,
                }
            )
        cipher = await store.cipher(customer_number)
        for e in await store.emails_of(customer_number) if cipher is not None else []:
            assert cipher is not None
            field = bytes(e["message_key"]).hex()
            items.append(
                {
                    "kind": "email",
                    "at": e["at"],
                    "subject": cipher.decrypt(f"subject:{field}", bytes(e["subject"])),
                    "body_text": cipher.decrypt(f"body:{field}", bytes(e["body"])),
                    **PROVENANCE,
                }
            )
    return Held(restricted_at is not None, {CATEGORY: items})


def customers_api(runtime: Runtime | Callable[[], Runtime]) -> FastAPI:
    read_api = store_read_api("recordings", runtime, read)
    api = read_api.api

    @api.get(
        "/v1/customers/{customer_number}/recordings/{recording_id}/audio",
        dependencies=[read_api.guard],
        response_class=Response,
        responses={
            200: {"description": "the audio, in its stored media type", "content": {"audio/wav": {}}},
            400: {"description": "invalid customer number, recording id or purpose"},
            401: {"description": "no valid credential"},
            403: {"description": "not the staff service"},
            404: {"description": "no such recording of this customer"},
            409: {"description": "withheld: the customer is restricted"},
        },
    )
    async def audio(customer_number: str, recording_id: str, request: Request) -> Response:
        for field, value in (("customer_number", customer_number), ("recording_id", recording_id)):
            if not CUSTOMER_NUMBER.fullmatch(value):
                return error(400, f"invalid_{field}", field)
        legal_claims, refused = purpose_of(request)
        if refused is not None:
            return refused
        rt = read_api.current()
        async with rt.pool.acquire() as conn:
            store = RecordingsStore(conn, rt.keys)
            row = await store.recording_of(customer_number, recording_id)
            cipher = await store.cipher(customer_number) if row is not None else None
            if row is None or cipher is None:
                return error(404, "no_match")
            _, restricted_at = await store.restricted_at(customer_number)
            if restricted_at is not None and not legal_claims:
                return error(409, "withheld")
        sound = cipher.decrypt_bytes(audio_field(recording_id), bytes(row["audio"])) or b""
        if sha256_hex(sound) != row["sha256"]:
            return error(500, "integrity_check_failed")
        return Response(sound, media_type=row["media_type"], headers={"cache-control": "no-store"})

    return api
