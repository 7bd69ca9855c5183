"""The system tests' helpers (the suite of processes they share with the browser tests is
the session fixture `suite` of tests/conftest.py; see tests/suite.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from suite import installed


@pytest.fixture
def require() -> Iterator[Any]:
    def check(*names: str) -> None:
        missing = [n for n in names if n not in installed()]
        if missing:
            pytest.skip(f"service(s) not installed in this checkout: {', '.join(missing)}")

    yield check
