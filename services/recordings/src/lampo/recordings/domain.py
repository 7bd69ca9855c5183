"""The recordings store's rules, free of Kafka and SQL: how chunks become one recording."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from lampo.contracts.recordings import CallRecorded

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_EXTENSIONS = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "audio/ogg": "ogg",
    "audio/opus": "opus",
    "audio/flac": "flac",
    "audio/webm": "webm",
}


@dataclass(frozen=True)
class ChunkPosition:
    index: int
    count: int


def position_of(event: CallRecorded) -> ChunkPosition:
    """A call sent in one event is chunk 0 of 1 (the contract has already checked the range)."""
    if event.chunk_index is None or event.chunk_count is None:
        return ChunkPosition(0, 1)
    return ChunkPosition(event.chunk_index, event.chunk_count)


def is_sha256(value: object) -> bool:
    return isinstance(value, str) and bool(_SHA256.fullmatch(value))


def assemble(chunks: list[tuple[int, bytes]], count: int) -> bytes | None:
    """The recording's audio in chunk order, or None while chunks are missing."""
    by_index = dict(chunks)
    if sorted(by_index) != list(range(count)):
        return None
    return b"".join(by_index[i] for i in range(count))


def sha256_hex(audio: bytes) -> str:
    return hashlib.sha256(audio).hexdigest()


def file_name(recording_id: str, media_type: str) -> str:
    """Name of the audio file in an access package: ``recordings/<id>.<ext>``."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", recording_id)
    return f"recordings/{safe}.{_EXTENSIONS.get(media_type.split(';', maxsplit=1)[0].strip().lower(), 'bin')}"
