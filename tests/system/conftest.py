"""One suite of processes for the whole system-test session (see tests/suite.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from suite import Suite, installed, launch


@pytest.fixture(scope="session")
async def suite(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Suite]:
    running = await launch(installed(), tmp_path_factory.mktemp("suite-logs"))
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
def require() -> Iterator[Any]:
    def check(*names: str) -> None:
        missing = [n for n in names if n not in installed()]
        if missing:
            pytest.skip(f"service(s) not installed in this checkout: {', '.join(missing)}")

    yield check
