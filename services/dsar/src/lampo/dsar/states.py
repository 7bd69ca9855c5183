"""The states of a request and of a task, as plain constants with no pydantic model behind
them: the store and the read view (``lampo dsar status``) use them without building the domain's
models. :mod:`lampo.dsar.domain`, where the state machine moves between them, re-exports them."""

from __future__ import annotations

from typing import Final

RECEIVED: Final = "received"
AWAITING_APPROVAL: Final = "awaiting_approval"
ACCEPTED: Final = "accepted"
IN_PROGRESS: Final = "in_progress"
COMPLETED: Final = "completed"
COMPLETED_WITH_RETENTION: Final = "completed_with_retention"
FAILED: Final = "failed"
REJECTED: Final = "rejected"
CANCELLED: Final = "cancelled"

OPEN_STATUSES: Final = (RECEIVED, AWAITING_APPROVAL, ACCEPTED, IN_PROGRESS)
# Not answered in full: a failed request still owes the subject an answer, so its deadline
# still runs (an operator retries the failed participant).
UNANSWERED_STATUSES: Final = (*OPEN_STATUSES, FAILED)
FINAL_STATUSES: Final = (COMPLETED, COMPLETED_WITH_RETENTION, REJECTED, CANCELLED)

# Task states.
TASK_OPEN: Final = "open"
TASK_DONE: Final = "done"
TASK_FAILED: Final = "failed"
TASK_SUPERSEDED: Final = "superseded"
TASK_CANCELLED: Final = "cancelled"
