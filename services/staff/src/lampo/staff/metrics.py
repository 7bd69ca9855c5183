"""The staff service's own metrics on /metrics: accounts locked (``lampo_staff_lockouts_total``)
and the audit chain's last check (``lampo_staff_audit_chain_intact``: 1 intact, 0 broken; absent
until the first check). The service checks the whole chain every ``audit_verify_interval_s``
against the last head it published itself, as ``lampo audit verify`` does against the topic's.
No labels: no user names, no row contents."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Observation

from lampo.service import Runtime
from lampo.staff.access import Access
from lampo.staff.domain import AuditHead
from lampo.staff.settings import StaffSettings

log = logging.getLogger("lampo.staff.metrics")


def register_metrics(
    runtime: Runtime, access: Access, settings: StaffSettings, last_published: Callable[[], AuditHead | None]
) -> None:
    lockouts = runtime.meter.create_counter(
        "lampo.staff.lockouts", unit="{account}", description="Accounts locked after repeated failed logins"
    )
    lockouts.add(0)  # on /metrics from the start, at 0
    access.on_lockout = lambda: lockouts.add(1)
    intact: list[int] = []  # the last check's result; empty until the first

    async def verify() -> None:
        report = await access.verify_audit(last_published(), require_head=False)
        intact[:] = [1 if report.ok else 0]
        if not report.ok:
            log.error("audit chain broken at row %s: %s", report.first_broken, report.reason)

    def chain(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(value) for value in intact]

    runtime.meter.create_observable_gauge(
        "lampo.staff.audit.chain_intact",
        [chain],
        description="The audit chain's last check by the service: 1 intact, 0 broken",
    )
    runtime.every(
        "audit-verify", verify, interval_s=settings.audit_verify_interval_s,
        first_delay_s=min(10.0, settings.audit_verify_interval_s),
    )  # fmt: skip
