"""Streamed access results (lampo.participant): a large result is sealed part by part as it is
read, each part on its own, and opened part by part; a small one stays one sealed document.
No broker or database: the sealing and opening themselves."""

from __future__ import annotations

import base64
import json
import os
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag

from lampo.crypto import new_request_keypair, unseal
from lampo.participant import (
    STREAM_PART_BYTES,
    Attachment,
    Items,
    Piece,
    SealedParts,
    is_streamed,
    materialise,
    open_part,
    open_result,
    seal_stream,
    stream_run,
)


def reading(i: int) -> dict[str, Any]:
    return {
        "customer_number": "100234",
        "kind": "consumption_report",
        "data": {"metering_point": f"MUL-{i % 50:02d}", "period_start": "2020-01-01", "energy_mwh": f"{i / 1000:.3f}"},
        "origin": "third_party",
        "legal_basis": "contract",
    }


async def heavy(rows: int, clips: list[bytes], page: int = 2000) -> AsyncIterator[Piece]:
    yield Items(("basic",), [{"section": "person", "data": {"last_name": "Meikäläinen"}}])
    yield Items(("consumption",), [])
    for low in range(0, rows, page):
        yield Items(("consumption",), [reading(i) for i in range(low, min(rows, low + page))])
    for n, clip in enumerate(clips):
        yield Attachment(("customer_relationship", "recordings"), {"recording_id": f"r{n}"}, clip)


async def pieces(source: AsyncIterator[Piece]) -> list[Piece]:
    return [p async for p in source]


def parts_of(sealed: SealedParts) -> dict[int, str]:
    with sealed:
        return dict(sealed.parts())


async def test_a_small_result_stays_one_sealed_json_document_with_audio_as_base64() -> None:
    private, public = new_request_keypair()
    sealed = await seal_stream(public, heavy(10, [b"RIFF small"]))
    assert isinstance(sealed, str) and not is_streamed(sealed)
    result = json.loads(unseal(private, sealed))
    assert result == json.loads(json.dumps(materialise(await pieces(heavy(10, [b"RIFF small"])))))
    assert len(result["consumption"]) == 10
    assert base64.b64decode(result["customer_relationship"]["recordings"][0]["audio_base64"]) == b"RIFF small"


async def test_a_large_result_is_sealed_in_parts_each_opened_on_its_own_and_whole_again() -> None:
    private, public = new_request_keypair()
    clips = [os.urandom(900_000), os.urandom(10), os.urandom(2 * STREAM_PART_BYTES + 5)]  # one spans 3+ parts
    sealed = await seal_stream(public, heavy(30_000, clips))
    assert isinstance(sealed, SealedParts)
    parts = parts_of(sealed)
    assert sorted(parts) == list(range(len(parts))) and len(parts) > 5
    assert len({stream_run(p) for p in parts.values()}) == 1
    # every part fits a record with room to spare, and opens alone (sealed to the request only)
    assert all(len(p) < 1024 * 1024 - 4096 for p in parts.values())
    assert sum(len(f.items or []) for p in parts.values() for f in open_part(private, p)) == 30_001
    other, _ = new_request_keypair()
    with pytest.raises(InvalidTag):  # not sealed to that key
        list(open_part(other, parts[0]))
    result = open_result(private, parts, len(parts))
    assert result == json.loads(json.dumps(materialise(await pieces(heavy(30_000, clips)))))
    got = [base64.b64decode(r["audio_base64"]) for r in result["customer_relationship"]["recordings"]]
    assert got == clips
    # audio travels raw inside the seal: about 4/3 of its size once base64'd, not 16/9
    assert sum(len(p) for p in parts.values()) < sum(map(len, clips)) * 4 / 3 * 1.05 + 2_000_000


async def test_parts_of_items_take_several_times_more_but_one_that_would_not_deflate_to_fit_is_split() -> None:
    private, public = new_request_keypair()

    async def items(texts: list[str]) -> AsyncIterator[Piece]:
        for low in range(0, len(texts), 100):
            yield Items(("basic",), [{"note": t} for t in texts[low : low + 100]])

    readable = [f"reading {i % 50}" for i in range(20_000)]  # deflates well: parts of items fill up
    parts = parts_of(await seal_stream(public, items(readable), part_bytes=64 * 1024))
    assert len(parts) <= 4  # two of 64 KiB (the first leave early), then of 256 KiB; not 7
    assert [r["note"] for r in open_result(private, parts, len(parts))["basic"]] == readable
    noise = [base64.b64encode(os.urandom(300)).decode() for _ in range(2_000)]  # hardly deflates
    parts = parts_of(await seal_stream(public, items(noise), part_bytes=64 * 1024))
    assert len(parts) > 8 and all(len(p) < 64 * 1024 * 4 / 3 + 1024 for p in parts.values())
    assert [r["note"] for r in open_result(private, parts, len(parts))["basic"]] == noise


async def test_with_emit_every_part_but_the_last_leaves_as_soon_as_the_next_begins() -> None:
    private, public = new_request_keypair()
    emitted: list[tuple[int, str]] = []

    async def emit(n: int, part: str) -> None:
        emitted.append((n, part))

    sealed = await seal_stream(public, heavy(30_000, [os.urandom(1_500_000)]), emit=emit)
    assert isinstance(sealed, SealedParts)
    rest = parts_of(sealed)
    assert [n for n, _ in emitted] == list(range(len(emitted))) and len(emitted) >= 3
    assert sorted(rest) == list(range(len(emitted), sealed.total)) and len(rest) == 1  # the last, with the task
    everything = dict(emitted) | rest
    assert len(open_result(private, everything, sealed.total)["consumption"]) == 30_000


async def test_sealing_holds_one_part_in_memory_not_the_result() -> None:
    _, public = new_request_keypair()
    rows = 50_000  # ~8 MB of JSON: the whole result in memory would show as tens of MB

    async def emit(n: int, part: str) -> None:
        return None

    tracemalloc.start()
    try:
        sealed = await seal_stream(public, heavy(rows, [os.urandom(300_000)] * 5), emit=emit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(sealed, SealedParts)
    sealed.close()
    assert peak < 12 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB while sealing"
