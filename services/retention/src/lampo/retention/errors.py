"""Errors of the retention service: one root, specific subclasses."""

from __future__ import annotations

from lampo.datamap import DataMapError as _DataMapError
from lampo.messaging.consumer import Rejected


class RetentionError(Exception):
    """Root of the retention service's own errors."""


# The data map is shared (lampo.datamap: retention applies it, staff and the portal publish it).
DataMapError = _DataMapError


class UnknownHold(Rejected):
    """A release names a hold that was never placed (on that customer)."""

    def __init__(self, detail: str) -> None:
        super().__init__("unknown_hold", detail)


class HoldConflict(Rejected):
    """A hold id already placed with different content."""

    def __init__(self, detail: str) -> None:
        super().__init__("hold_conflict", detail)
