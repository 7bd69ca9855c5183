"""The kinds of data subject request and participant task as plain ``Literal`` types, with no
pydantic model behind them: settings and read-only commands name them without building the
contracts. :mod:`lampo.contracts.dsar` and :mod:`lampo.contracts.privacy` re-export them."""

from __future__ import annotations

from typing import Literal

DsarKind = Literal["access", "portability", "erasure", "rectification", "restriction", "objection"]
TaskKind = Literal["access", "erasure", "rectification", "restriction", "purge", "objection"]

__all__ = ["DsarKind", "TaskKind"]
