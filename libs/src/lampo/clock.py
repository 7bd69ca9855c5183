"""Injectable clocks: production reads the system clock, tests move time by hand; and the legal
time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final, Protocol
from zoneinfo import ZoneInfo

# Legal time is Finnish time: statutory periods run by the Finnish calendar (an invoice issued
# at 23:30 UTC on 31 December belongs to the next financial year).
FINNISH_TIME: Final = ZoneInfo("Europe/Helsinki")


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("a clock's time carries a zone")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, when: datetime) -> None:
        self._now = when
