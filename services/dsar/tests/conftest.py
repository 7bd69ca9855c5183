"""Fixtures of the coordinator's tests; helpers live in ``dsar_support`` (importable by name)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from dsar_support import StandInRegistry


@pytest.fixture
async def registry() -> AsyncIterator[StandInRegistry]:
    stand_in = StandInRegistry()
    await stand_in.start()
    yield stand_in
    await stand_in.stop()
