"""Background jobs of the staff console: work that can take more than a second (the audit chain
check, the accuracy report) runs as a task of the service, and its page shows the progress until
the result is there. Held in memory, owner only, for a limited time: a restart forgets them (the
user starts the check again)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from lampo.staff.errors import StaffError

log = logging.getLogger("lampo.staff.jobs")

KEEP = timedelta(minutes=30)
MAX_JOBS = 64


@dataclass
class Job:
    id: str
    kind: str
    owner: str
    started_at: datetime
    phase: str = "starting"
    done: int = 0
    total: int = 0
    result: Any = None
    error: str | None = None
    finished_at: datetime | None = None
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.finished_at is None

    @property
    def percent(self) -> int | None:
        """How far, in whole percent; None while the total is not known."""
        if not self.total:
            return None
        return min(100, self.done * 100 // self.total)

    def progress(self, phase: str, done: int, total: int) -> None:
        self.phase, self.done, self.total = phase, done, total


class Jobs:
    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self._jobs: dict[str, Job] = {}

    def start(self, kind: str, owner: str, work: Callable[[Job], Awaitable[Any]]) -> Job:
        """A new job running ``work``; the owner's job of this kind still running, if any (one
        at a time: a second click does not start a second check)."""
        self._forget_old()
        for job in self._jobs.values():
            if job.kind == kind and job.owner == owner and job.running:
                return job
        job = Job(secrets.token_urlsafe(12), kind, owner, self._now())
        self._jobs[job.id] = job

        async def run() -> None:
            try:
                job.result = await work(job)
            except StaffError as e:
                job.error = e.reason
            except Exception as e:  # the page says it failed; the log says why (no data in it)
                log.exception("job %s (%s) failed: %s", job.id, kind, type(e).__name__)
                job.error = "failed"
            finally:
                job.phase = "done"
                job.finished_at = self._now()

        job._task = asyncio.create_task(run(), name=f"staff-job-{kind}")
        return job

    def get(self, job_id: str, owner: str) -> Job | None:
        """The job, for its owner only."""
        job = self._jobs.get(job_id)
        return job if job is not None and job.owner == owner else None

    def _forget_old(self) -> None:
        now = self._now()
        for job_id, job in list(self._jobs.items()):
            if job.finished_at is not None and now - job.finished_at > KEEP:
                del self._jobs[job_id]
        while len(self._jobs) >= MAX_JOBS:
            finished = [j for j in self._jobs.values() if j.finished_at is not None]
            if not finished:
                break
            del self._jobs[min(finished, key=lambda j: j.started_at).id]
