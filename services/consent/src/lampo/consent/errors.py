"""Errors of the consent service. Each rejection carries the dead-letter reason it maps to."""

from __future__ import annotations

from lampo.messaging.consumer import Rejected


class ConsentRejected(Rejected):
    """Root of the consent service's rejections of well-formed events."""


class UnknownPurpose(ConsentRejected):
    def __init__(self) -> None:
        # The purpose string is input: name the field and the rule, do not echo it.
        super().__init__("unknown_purpose", "data.purpose: not a declared purpose (see the purposes table)")


class UnknownScope(ConsentRejected):
    def __init__(self) -> None:
        super().__init__("unknown_scope", "data.scope: no declared purpose is covered by this objection scope")
