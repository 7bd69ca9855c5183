"""Shared by the suite-level tests (system, faults, privacy): `suite.py` starts the services as
processes; every test under tests/ needs the real broker and database."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the tests import `suite`

from suite import Suite, installed, launch


@pytest.fixture(scope="session")
async def suite(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Suite]:
    """One suite of processes for the whole session, shared by the system and browser tests.
    Never two at once: both trust the same test signing keys and read the same topics, so a second
    suite's coordinator and participants would answer the first one's requests too. (The privacy,
    fault and plan tests start their own, module-scoped or in-process.)"""
    running = await launch(installed(), tmp_path_factory.mktemp("suite-logs"))
    try:
        yield running
    finally:
        await running.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)
    # The shared suite (the session fixture `suite` below) starts at the first test that asks for
    # it and runs to the session's end: every test that starts services of its own (the privacy
    # search, the plans, the services' own tests) runs before it, never beside it.
    items.sort(key=lambda item: "suite" in getattr(item, "fixturenames", ()))
