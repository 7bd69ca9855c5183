"""Base classes and small shared types of the event models.

Extra fields: CONTRACTS.md lets senders extend a contract with new optional fields, and a
reader on the previous version must not dead-letter such an event. So:

* ``InboundContract`` (``extra="ignore"``) is the base of every event published by systems
  outside the suite (``*.inbound.v1``, ``dsar.requests.v1``, ``privacy.acks.v1``) and of
  sub-models shared across families: unknown fields are dropped.
* ``OutboundContract`` (``extra="forbid"``) is the base of events this suite publishes
  (``registry.events.v1``, ``consent.events.v1``, ``dsar.events.v1``, ``privacy.tasks.v1``):
  constructing one with a misspelt field fails at once in the producer.
* Reading is tolerant for both: ``catalog.parse`` validates with ``extra="ignore"`` unless the
  caller asks for ``extra="forbid"`` (e.g. a contract test checking what a service publishes).

``hide_input_in_errors`` keeps values out of ``str(ValidationError)``, so a logged validation
error does not leak personal data.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, StringConstraints
from pydantic_core import PydanticCustomError


class InboundContract(BaseModel):
    """Data of an event other systems publish: tolerant of new optional fields."""

    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True, allow_inf_nan=False)


class OutboundContract(BaseModel):
    """Data of an event this suite publishes: strict when built, tolerant when parsed."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True, allow_inf_nan=False)


def _no_epoch_numbers(value: object) -> object:
    # pydantic would read a JSON number as Unix time; the contracts say RFC 3339 with a zone.
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise PydanticCustomError("datetime_type", "must be an RFC 3339 date-time with a time zone, not a number")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_no_epoch_numbers)]
"""An instant: RFC 3339 with a zone (``2026-11-28T10:00:00Z``). Naive times are refused."""

# Keys, references and codes: printable ASCII without spaces, so they are safe as Kafka keys,
# header values and log fields. Free text (names, summaries) uses ``Text``.
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[!-~]+$")]
Text = Annotated[str, StringConstraints(min_length=1)]

__all__ = ["Identifier", "InboundContract", "OutboundContract", "Text", "Timestamp"]
