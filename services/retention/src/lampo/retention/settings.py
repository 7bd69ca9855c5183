from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from lampo.settings import ServiceSettings

DEFAULT_DATAMAP = Path(__file__).resolve().parents[3] / "datamap.toml"


class RetentionSettings(ServiceSettings):
    service: ClassVar[str] = "retention"
    default_http_port: ClassVar[int] = 8104

    # The data map: one validated file, read at start; an invalid one stops the service.
    datamap: Path = DEFAULT_DATAMAP
    # The daily sweep: first run this long after start-up, then every interval. 0 turns it off.
    sweep_interval_s: float = 24 * 60 * 60
    sweep_first_delay_s: float = 60.0
    # Subjects per sweep transaction, and a pause between transactions so live traffic
    # (consumers of this and other services on the same database) is not starved.
    sweep_batch: int = 1000
    sweep_pause_s: float = 0.0
    # Sweep batches in flight at once (one connection each). One keeps the database's share for
    # live traffic: bench/retention on 2 cores, 1 M subjects, 10 % due: 1 worker 34.8 s with the
    # registry's ingest at 0.85 of idle; 2 workers 26.5 s at 0.54 (the sweep's backends took a core).
    sweep_workers: int = 1
    # How long a participant has to answer a purge task.
    purge_deadline_days: int = 7
