"""Settings of the DSAR coordinator (``LAMPO_*`` environment variables; lists and maps as JSON)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from lampo.contracts.categories import DEFAULT_PARTICIPANT_CATEGORIES
from lampo.contracts.kinds import DsarKind, TaskKind  # not .dsar/.privacy: no models built for settings
from lampo.settings import ServiceSettings

# The data map: which categories each participant holds (a store that keeps a copy of another's
# data, such as billing's invoice addressee or consent's contact for receipts, lists that
# category too, so a rectification reaches it), and which task kinds apply to it. A request goes
# to a participant only where its kind applies to a category in scope the participant holds,
# and the task names those categories. The first category of each is where its data is filed
# in an access package. A participant missing from a map holds every category / takes every kind.
# DEFAULT_PARTICIPANT_CATEGORIES lives in lampo.contracts.categories: the privacy statement
# (lampo.statement) names the systems that keep each category from the same map.
_EVERY_KIND: list[TaskKind] = ["access", "erasure", "rectification", "restriction", "objection"]
# An objection is recorded in the consent ledger and acted on by the register (profiling and
# marketing audiences live there); other stores take it only when configured to.
DEFAULT_PARTICIPANT_KINDS: dict[str, list[TaskKind]] = {
    "registry": list(_EVERY_KIND),
    "billing": ["access", "erasure", "rectification", "restriction"],
    "recordings": ["access", "erasure", "rectification", "restriction"],
    "consent": list(_EVERY_KIND),
}


def _erasure_only() -> list[DsarKind]:
    return ["erasure"]


class DsarSettings(ServiceSettings):
    service: ClassVar[str] = "dsar"
    default_http_port: ClassVar[int] = 8103
    default_signer: ClassVar[str | None] = "coordinator"  # the name its tasks are signed under

    source: str = "urn:lampo:dsar"
    # The participants a request may go to, and the data map (above) that picks among them.
    participants: list[str] = Field(default_factory=lambda: ["registry", "billing", "recordings", "consent"])
    participant_categories: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_PARTICIPANT_CATEGORIES))
    participant_kinds: dict[str, list[TaskKind]] = Field(default_factory=lambda: dict(DEFAULT_PARTICIPANT_KINDS))

    # Identity: the registry resolves identifiers to a subject. ``customer_number`` maps a
    # customer number straight to a subject without asking anyone: for benchmarks only.
    identity_resolver: Literal["registry", "customer_number"] = "registry"
    registry_url: str = "http://127.0.0.1:8101"
    # A subject the registry does not know may still be a customer of another store: these are
    # asked in turn (POST /v1/resolve {"customer_number"}, with the internal token) after the
    # registry's no_match. Empty: the registry alone.
    store_resolve_urls: dict[str, str] = Field(
        default_factory=lambda: {
            "billing": "http://127.0.0.1:8105",
            "recordings": "http://127.0.0.1:8106",
            "consent": "http://127.0.0.1:8102",
        }
    )
    resolve_timeout_s: float = 5.0
    resolve_backoff_s: float = 1.0
    resolve_backoff_max_s: float = 60.0
    resolve_concurrency: int = 8

    # Participant tasks: a task not answered within its timeout is sent again (same task_id,
    # attempt + 1, the timeout doubling each time); after the last attempt it fails.
    task_timeout_s: float = 120.0
    task_max_attempts: int = 3

    # Approval: these kinds wait for dsar.approved / dsar.denied, unless listed in auto_approve.
    approval_required: list[DsarKind] = Field(default_factory=_erasure_only)
    auto_approve: list[DsarKind] = Field(default_factory=list)
    # Names allowed to approve or deny (the managing director leads erasure handling);
    # empty: any named approver (until authentication lands).
    approvers: list[str] = Field(default_factory=list)

    # The checker: resolution retries, task timeouts, overdue requests.
    check_interval_s: float = 2.0

    # Packages (lampo.dsar.packages): fetched at ``<public_url>/v1/packages/<request_id>`` by the
    # request's channel (its own credential, LAMPO_API_CLIENTS) or staff until they expire,
    # ``package_ttl_days`` after completion; the sweep destroys expired ones (0: never runs).
    public_url: str = "http://127.0.0.1:8103"
    package_ttl_days: int = Field(default=30, ge=1)
    package_sweep_interval_s: float = 300.0
    # Portability transfers (Art. 20(2)) go to https:// addresses only; plain http to a loopback
    # address only when this is on (tests).
    package_transfer_allow_loopback_http: bool = False
    package_transfer_timeout_s: float = 60.0
