"""``recordings.inbound.v1``: call recordings (audio inline, chunked) and archived e-mails."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Final, Self

from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from lampo.contracts._base import Identifier, InboundContract, Text, Timestamp
from lampo.contracts.errors import CHUNK_OUT_OF_RANGE, INVALID_BASE64, OVERSIZE_CHUNK

MAX_CHUNK_BYTES: Final = 700 * 1024
"""Most decoded audio bytes one ``call.recorded`` event may carry."""


def check_audio_base64(value: object) -> str:
    """Accept canonical base64 (RFC 4648 alphabet, padded, no whitespace) of 1..700 KiB.

    Returns the text unchanged; decode with :meth:`CallRecorded.audio`.
    """
    if not isinstance(value, str):
        raise PydanticCustomError(INVALID_BASE64, "must be a base64 string")
    if len(value) > 4 * ((MAX_CHUNK_BYTES + 2) // 3):
        # Cheaper than decoding: no valid encoding this long fits the limit.
        raise PydanticCustomError(OVERSIZE_CHUNK, "audio exceeds 700 KiB per event; send chunks")
    try:
        audio = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PydanticCustomError(INVALID_BASE64, "is not valid padded base64") from None
    if base64.b64encode(audio) != value.encode("ascii"):
        # The decoder tolerates surplus padding and stray bits; only the canonical form is base64.
        raise PydanticCustomError(INVALID_BASE64, "is not valid padded base64")
    if not audio:
        raise PydanticCustomError(INVALID_BASE64, "holds no audio")
    if len(audio) > MAX_CHUNK_BYTES:
        raise PydanticCustomError(OVERSIZE_CHUNK, "audio exceeds 700 KiB per event; send chunks")
    return value


AudioBase64 = Annotated[
    str,
    BeforeValidator(check_audio_base64),
    WithJsonSchema(
        {
            "type": "string",
            "contentEncoding": "base64",
            "maxLength": 4 * ((MAX_CHUNK_BYTES + 2) // 3),
            "description": "Audio, base64, at most 700 KiB decoded",
        }
    ),
]


class CallRecorded(InboundContract):
    """``call.recorded``. A longer call arrives as several events with the same
    ``recording_id``, ``chunk_index`` 0..``chunk_count``-1; a short one may omit both."""

    customer_number: Identifier
    recording_id: Identifier
    started_at: Timestamp
    duration_s: float = Field(ge=0)
    media_type: Text
    audio_base64: AudioBase64
    chunk_index: int | None = None
    chunk_count: int | None = None

    def audio(self) -> bytes:
        """The decoded audio of this event (one chunk of the call)."""
        return base64.b64decode(self.audio_base64, validate=True)

    @model_validator(mode="after")
    def _chunk_in_range(self) -> Self:
        index, count = self.chunk_index, self.chunk_count
        if index is None and count is None:
            return self
        if index is None or count is None:
            raise PydanticCustomError(CHUNK_OUT_OF_RANGE, "chunk_index and chunk_count come together")
        if not 0 <= index < count:
            raise PydanticCustomError(CHUNK_OUT_OF_RANGE, "chunk_index must satisfy 0 <= chunk_index < chunk_count")
        return self


class EmailArchived(InboundContract):
    """``email.archived``: ``message_id`` is the RFC 5322 Message-ID."""

    customer_number: Identifier
    message_id: Text
    at: Timestamp
    subject: str
    body_text: str
