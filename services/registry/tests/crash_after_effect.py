"""The registry, killed with SIGKILL right after a batch's transaction committed and before its
offsets were committed: the worst moment for "nothing lost, nothing doubled". Configured from
LAMPO_* variables like the real service; run by test_crash.py as a separate process."""

from __future__ import annotations

import asyncio
import os
import signal

from lampo.messaging.consumer import Incoming
from lampo.registry.app import build
from lampo.registry.settings import RegistrySettings

# The broker is shared with other suites: die after the batch holding the test's own event only.
TARGET = os.environ.get("LAMPO_TEST_KILL_AFTER_EVENT")


def kill_after_effect(_consumer: str, handled: list[Incoming]) -> None:
    if any(TARGET is None or item.id == TARGET for item in handled):
        os.kill(os.getpid(), signal.SIGKILL)


async def main() -> None:
    runtime = build(RegistrySettings(), observers=[kill_after_effect])
    await runtime.app.start()
    await asyncio.sleep(300)


if __name__ == "__main__":
    asyncio.run(main())
