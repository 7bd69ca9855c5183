"""Errors of the recordings store. Each rejection carries the dead-letter reason it maps to.

Malformed base64, an oversize chunk and a chunk index out of range are refused by the contract
itself (``invalid_base64``, ``oversize_chunk``, ``chunk_out_of_range``); these are the rules
that need what is already stored.
"""

from __future__ import annotations

from lampo.messaging.consumer import Rejected


class RecordingsRejected(Rejected):
    """Root of the recordings store's rejections of well-formed events."""


class ChunkCountMismatch(RecordingsRejected):
    def __init__(self) -> None:
        super().__init__("chunk_count_mismatch", "data.chunk_count: differs from earlier chunks of this recording_id")


class RecordingCustomerMismatch(RecordingsRejected):
    def __init__(self) -> None:
        super().__init__(
            "recording_customer_mismatch",
            "data.customer_number: earlier chunks of this recording_id belong to another customer",
        )


class Sha256Mismatch(RecordingsRejected):
    def __init__(self) -> None:
        super().__init__("sha256_mismatch", "data.sha256: the reassembled audio does not have the announced SHA-256")


class InvalidSha256(RecordingsRejected):
    def __init__(self) -> None:
        super().__init__("invalid_sha256", "data.sha256: must be 64 lowercase hexadecimal characters")
