"""The CloudEvents 1.0 envelope every record value carries (structured JSON mode)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError
from pydantic_core import to_jsonable_python

from lampo.contracts._base import Timestamp
from lampo.contracts.errors import (
    INVALID_JSON,
    ContractViolation,
    violation_from_validation_error,
)

CONTENT_TYPE: Final = "application/cloudevents+json"
"""Value of the Kafka ``content-type`` header for every record."""

JSON_DATA: Final = "application/json"

_NonEmpty = Annotated[str, StringConstraints(min_length=1)]


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event whose ``data`` is a JSON object.

    Extension attributes (other top-level keys, e.g. ``subject``) are kept in ``model_extra``
    as the CloudEvents spec asks receivers to tolerate them.
    """

    model_config = ConfigDict(frozen=True, extra="allow", hide_input_in_errors=True)

    specversion: Literal["1.0"] = "1.0"
    id: _NonEmpty
    source: _NonEmpty
    type: _NonEmpty
    time: Timestamp
    datacontenttype: Annotated[str, StringConstraints(pattern=r"^application/json\s*(;.*)?$")] = JSON_DATA
    data: dict[str, Any]

    @classmethod
    def new(
        cls,
        type: str,  # the CloudEvents attribute names
        source: str,
        data: BaseModel | dict[str, Any],
        *,
        id: str | None = None,
        time: datetime | None = None,
    ) -> Self:
        """Wrap ``data`` in a new event with a fresh uuid4 ``id`` and the current UTC time."""
        if isinstance(data, BaseModel):
            payload = data.model_dump(mode="json", exclude_none=False)
        else:
            payload = to_jsonable_python(data)
        return cls(
            id=id if id is not None else str(uuid.uuid4()),
            source=source,
            type=type,
            time=time if time is not None else datetime.now(UTC),
            data=payload,
        )

    def to_bytes(self) -> bytes:
        """Compact JSON in UTF-8: the Kafka record value."""
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Self:
        """Read an envelope (its ``data`` unchecked); raise :class:`ContractViolation`."""
        obj = load_json_object(raw)
        try:
            return cls.model_validate(obj)
        except ValidationError as exc:
            raise violation_from_validation_error(exc, prefix="", known_names=cls.model_fields) from None


class _NotJsonConstant(ValueError):
    """NaN, Infinity or -Infinity: Python's json reads them, JSON has no such values."""


def _refuse_constant(name: str) -> Any:
    raise _NotJsonConstant(name)


def load_json_object(raw: bytes) -> dict[str, Any]:
    """Decode a record value as a UTF-8 JSON object or raise ``ContractViolation(invalid_json)``.

    The detail says what is wrong and where, never quoting the bytes.
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise ContractViolation(INVALID_JSON, "record value is not bytes")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContractViolation(INVALID_JSON, f"not UTF-8 at byte {exc.start}") from None
    try:
        obj = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise ContractViolation(INVALID_JSON, f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except _NotJsonConstant:
        raise ContractViolation(INVALID_JSON, "NaN and Infinity are not JSON") from None
    except ValueError:  # an integer past Python's limit on digits (sys.get_int_max_str_digits)
        raise ContractViolation(INVALID_JSON, "a number has too many digits") from None
    except RecursionError:
        raise ContractViolation(INVALID_JSON, "nested too deeply") from None
    if not isinstance(obj, dict):
        raise ContractViolation(INVALID_JSON, "not a JSON object")
    return obj
