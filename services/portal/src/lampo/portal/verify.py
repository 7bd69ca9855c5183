"""Identity verification, pluggable: each way of verifying is a ``Verifier`` in a module of its
own (``email_code``: a one-time code to the address the register holds; ``strong_id``: strong
electronic identification, Suomi.fi e-Identification in production, with a local stand-in).

A verifier contributes its pages (``router``, starting at ``path``) and ends, once it is sure who
the visitor is, with ``lampo.portal.session.set_subject``; until then nothing is submitted. The
verification page lists every enabled verifier with its ``title`` and ``description`` (msgids).
"""

from __future__ import annotations

from typing import Protocol

from fastapi import APIRouter

from lampo.portal.session import Method


class Verifier(Protocol):
    @property
    def method(self) -> Method: ...

    @property
    def title(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def path(self) -> str: ...

    def router(self) -> APIRouter: ...
