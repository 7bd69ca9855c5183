"""The running suite for the privacy leak search (see tests/suite.py): one suite for the module,
so its logs, spans and databases hold exactly what the demo-sized run left."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from suite import Suite, installed, launch


@pytest.fixture(scope="module")
async def privacy_suite(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Suite]:
    running = await launch(installed(), tmp_path_factory.mktemp("privacy-logs"), ready_timeout=180)
    try:
        yield running
    finally:
        await running.close()
