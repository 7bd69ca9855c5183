"""The running suite for the service-level fuzz test (see tests/suite.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from suite import Suite, installed, launch


@pytest.fixture(scope="module")
async def fuzz_suite(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Suite]:
    running = await launch(installed(), tmp_path_factory.mktemp("fuzz-logs"), ready_timeout=180)
    try:
        yield running
    finally:
        await running.close()
