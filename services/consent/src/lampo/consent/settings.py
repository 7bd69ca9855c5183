from __future__ import annotations

from typing import ClassVar

from lampo.settings import ServiceSettings


class ConsentSettings(ServiceSettings):
    service: ClassVar[str] = "consent"
    default_http_port: ClassVar[int] = 8102
    # CloudEvents ``source`` of what this instance publishes; tests give each instance its own.
    event_source: str = "urn:lampo:consent"
    # Smaller batches than the platform's 500: a withdrawal must be announced at once (§5), and
    # a batch's records are committed and relayed together. Measured with bench/withdrawal at
    # 1,000 events/s: 500 gave p99 231 ms; 100 gave 165 and 210 ms in two runs; 50 was worse
    # (286, 944 ms: too little throughput). Goal: p99 < 200 ms.
    consumer_batch: int = 100
