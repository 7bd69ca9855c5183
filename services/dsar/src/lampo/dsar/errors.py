"""Errors of the coordinator. Each carries a short ``reason`` code and a ``detail`` naming fields,
never their values: on Kafka it becomes the dead-letter reason, over HTTP and in the CLI the answer."""

from __future__ import annotations

from lampo.contracts.errors import Rejected


class DsarError(Rejected):
    """Root of the coordinator's refusals (of an event, an API call or an operator command)."""


class UnknownRequest(DsarError):
    def __init__(self) -> None:
        super().__init__("unknown_request", "request_id: no request with this id")


class NotAuthorised(DsarError):
    def __init__(self, field: str) -> None:
        super().__init__("not_authorised", f"{field}: not among the configured approvers")


class WrongState(DsarError):
    def __init__(self, action: str, status: str) -> None:
        super().__init__("wrong_state", f"cannot {action} a request that is {status}")


class UnknownTask(DsarError):
    def __init__(self, detail: str = "data.task_id: no task with this id") -> None:
        super().__init__("unknown_task", detail)


class NotRetriable(DsarError):
    def __init__(self, detail: str) -> None:
        super().__init__("not_retriable", detail)


class AlreadyExtended(DsarError):
    def __init__(self) -> None:
        super().__init__("already_extended", "due_at: a deadline is extended once only")


class ExtensionTooLate(DsarError):
    def __init__(self) -> None:
        super().__init__("extension_too_late", "due_at: an extension must be decided within the first month")


class NoPackage(DsarError):
    def __init__(self) -> None:
        super().__init__("no_package", "package: this request has no package (or it was deleted)")
