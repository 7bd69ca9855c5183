"""`launch` refuses to start a suite beside the one `make up` runs on the same broker: both read the
same topics, so the other suite's coordinator and participants answer this one's requests too (a
system test once failed on a package checksum: make up's dsar had built the package)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from suite import launch, make_up_running


async def test_a_suite_is_not_launched_beside_a_running_make_up(tmp_path: Path, monkeypatch) -> None:
    services = tmp_path / "services"
    services.mkdir()
    monkeypatch.setenv("LAMPO_STATE_DIR", str(tmp_path))
    gone = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await gone.wait()
    (services / "billing.pid").write_text(f"{gone.pid}\n")  # a pid file left by a killed instance
    assert make_up_running() == []
    started = await launch(["billing"], tmp_path / "logs-1", ready_timeout=60)  # nothing else runs
    await started.close()
    standing = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(60)")
    try:
        (services / "dsar.1.pid").write_text(f"{standing.pid}\n")
        assert make_up_running() == ["dsar.1"]
        with pytest.raises(RuntimeError, match=r"`make up` is running \(dsar\.1\).*make down"):
            await launch(["billing"], tmp_path / "logs-2")
    finally:
        standing.kill()
        await standing.wait()
