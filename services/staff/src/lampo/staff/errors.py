"""The staff service's errors: one root, each with the reason an HTTP answer or CLI message names."""

from __future__ import annotations


class StaffError(Exception):
    status = 400
    reason = "invalid"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ConfigurationRefused(StaffError):
    """The service must not start with this configuration (roles file, a non-EU/EEA recipient)."""

    reason = "configuration_refused"


class Unauthorised(StaffError):
    status = 401
    reason = "unauthorised"


class InvalidCredentials(StaffError):
    status = 401
    reason = "invalid_credentials"


class AccountLocked(StaffError):
    """No longer answered at login (a locked account gets ``InvalidCredentials``, like an
    unknown name); kept for callers that name it."""

    status = 423
    reason = "account_locked"


class Throttled(StaffError):
    """Too many failed logins from one address: refused before any account is tried."""

    status = 429
    reason = "throttled"

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class ConfidentialityCommitmentMissing(StaffError):
    """§8: no customer data before the user's confidentiality commitment is recorded."""

    status = 403
    reason = "confidentiality_commitment_missing"


class Forbidden(StaffError):
    status = 403
    reason = "forbidden"


class CategoryNotPermitted(Forbidden):
    reason = "category_not_permitted"


class WeakPassword(StaffError):
    status = 422
    reason = "weak_password"


class InvalidInput(StaffError):
    status = 422
    reason = "invalid"


class UnknownRole(StaffError):
    status = 422
    reason = "unknown_role"


class UnknownUser(StaffError):
    status = 404
    reason = "unknown_user"


class UserExists(StaffError):
    status = 409
    reason = "user_exists"


class GrantNotFound(StaffError):
    status = 404
    reason = "grant_not_found"


class LastAdministrator(StaffError):
    status = 409
    reason = "last_administrator"


class AdministratorExists(StaffError):
    status = 409
    reason = "administrator_exists"


class NoMatch(StaffError):
    status = 404
    reason = "no_match"


class UpstreamUnavailable(StaffError):
    status = 503
    reason = "upstream_unavailable"
