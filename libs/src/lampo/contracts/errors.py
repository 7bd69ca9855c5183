"""The one error of the contracts library and the reason codes it carries.

A record that cannot be accepted goes to ``<topic>.dlq`` with the headers ``error.reason`` and
``error.detail`` (CONTRACTS.md). :class:`ContractViolation` carries exactly those two values;
``detail`` names the field and the rule, never the offending value (it may be personal data).
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Final

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from pydantic_core.core_schema import ErrorType

if TYPE_CHECKING:
    from lampo.contracts.envelope import CloudEvent

ERROR_REASON_HEADER: Final = "error.reason"
ERROR_DETAIL_HEADER: Final = "error.detail"

# Reasons raised by parse() itself.
INVALID_JSON: Final = "invalid_json"
SCHEMA: Final = "schema"
UNKNOWN_TYPE: Final = "unknown_type"

# Reasons raised by field validators (pydantic_core.PydanticCustomError types).
INVALID_PERSONAL_IDENTITY_CODE: Final = "invalid_personal_identity_code"
INVALID_BUSINESS_ID: Final = "invalid_business_id"
INVALID_POSTAL_CODE: Final = "invalid_postal_code"
INVALID_PHONE: Final = "invalid_phone"
INVALID_EMAIL: Final = "invalid_email"
INVALID_LANGUAGE: Final = "invalid_language"
INVALID_DECIMAL: Final = "invalid_decimal"
INVALID_COUNTRY: Final = "invalid_country"
INVALID_BASE64: Final = "invalid_base64"
OVERSIZE_CHUNK: Final = "oversize_chunk"
CHUNK_OUT_OF_RANGE: Final = "chunk_out_of_range"

FIELD_REASONS: Final = frozenset(
    {
        INVALID_PERSONAL_IDENTITY_CODE,
        INVALID_BUSINESS_ID,
        INVALID_POSTAL_CODE,
        INVALID_PHONE,
        INVALID_EMAIL,
        INVALID_LANGUAGE,
        INVALID_DECIMAL,
        INVALID_COUNTRY,
        INVALID_BASE64,
        OVERSIZE_CHUNK,
        CHUNK_OUT_OF_RANGE,
    }
)
REASONS: Final = FIELD_REASONS | {INVALID_JSON, SCHEMA, UNKNOWN_TYPE}
"""Every reason code this library produces."""

_BUILTIN_ERROR_TYPES: Final = frozenset(typing.get_args(ErrorType))
_MAX_LISTED_ERRORS: Final = 3
_REDACTED: Final = "<redacted>"
_UNNAMED_KEY: Final = "<key>"


class ContractViolation(Exception):
    """A record breaks its public contract: dead-letter it with ``reason`` and ``detail``.

    ``envelope`` is the parsed CloudEvent when only the data was wrong (or its type unknown), so
    a consumer can still answer the sender (e.g. ``dsar.rejected`` with reason ``invalid``).
    """

    def __init__(self, reason: str, detail: str, *, envelope: CloudEvent | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.envelope = envelope

    def headers(self) -> dict[str, str]:
        """The dead-letter headers ``error.reason`` and ``error.detail``."""
        return {ERROR_REASON_HEADER: self.reason, ERROR_DETAIL_HEADER: self.detail}


class Rejected(Exception):
    """A record that is well-formed but cannot be accepted (unknown customer, unknown purpose...):
    dead-lettered with ``reason``. ``detail`` names fields and rules, never the personal data
    itself. Here, not in the consumer, so that a service's rules can raise it without importing
    the transport (``lampo.messaging.consumer`` re-exports it)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def is_custom_reason(error_type: str) -> bool:
    """True for an error type raised by this library's validators rather than by pydantic."""
    return error_type not in _BUILTIN_ERROR_TYPES and error_type != SCHEMA


def violation_from_validation_error(
    exc: ValidationError,
    *,
    prefix: str,
    known_names: Iterable[str],
    envelope: CloudEvent | None = None,
) -> ContractViolation:
    """Translate a pydantic error into a :class:`ContractViolation` that leaks no input.

    The reason is the first custom (field-rule) error type, else ``schema``. The detail lists
    that error first, then up to two more, as ``path: message``. Paths keep only names declared
    by the contracts (dict keys and unknown fields come from the input and are shown as
    ``<key>``); messages are pydantic's or ours, with the input blanked should one quote it.
    """
    errors = exc.errors(include_url=False)
    first_custom = next((e for e in errors if is_custom_reason(e["type"])), None)
    reason = first_custom["type"] if first_custom is not None else SCHEMA
    ordered = [first_custom] if first_custom is not None else []
    ordered += [e for e in errors if e is not first_custom]
    names = frozenset(known_names)
    parts = [_describe(e, prefix, names) for e in ordered[:_MAX_LISTED_ERRORS]]
    if len(ordered) > _MAX_LISTED_ERRORS:
        parts.append(f"and {len(ordered) - _MAX_LISTED_ERRORS} more")
    return ContractViolation(reason, "; ".join(parts), envelope=envelope)


def field_path(loc: Sequence[int | str], prefix: str, known_names: frozenset[str]) -> str:
    """``('person', 'contact', 0)`` under ``data`` -> ``data.person.contact[0]``."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
            continue
        name = part if part in known_names else _UNNAMED_KEY
        path = f"{path}.{name}" if path else name
    return path or "(root)"


def _describe(error: ErrorDetails, prefix: str, known_names: frozenset[str]) -> str:
    message = error["msg"]
    value = error.get("input")
    if isinstance(value, str) and len(value) >= 3 and value in message:
        # Pydantic's own messages quote expected values, not the input; should one ever quote
        # the input (or a custom message carry it by mistake), blank it.
        message = message.replace(value, _REDACTED)
    return f"{field_path(error['loc'], prefix, known_names)}: {message}"
