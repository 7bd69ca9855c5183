#!/usr/bin/env python3
"""docs/img/dashboard.png: the suite's dashboard with live figures, as Prometheus serves it.

Grafana is not installable here, so the picture is the dashboard's console twin
(deploy/prometheus/consoles/lampo.html: the same queries, written by deploy/tools/dashboard.py)
served by Debian's Prometheus server (deploy/local/prometheus.sh install) with the suite's alert
rules, scraping a suite of its own: every service started as in the system tests (tests/suite.py:
its own databases, consumer groups and free ports, on the shared Kafka and PostgreSQL), fed
synthetic customers and DSARs, then photographed with headless Chromium (Debian's `chromium`).

    .venv/bin/python deploy/tools/dashboard_screenshot.py [--out docs/img/dashboard.png]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from suite import SERVICES, Suite, free_port, launch  # noqa: E402 - the system tests' launcher

from lampo.contracts.catalog import DSAR_EVENTS  # noqa: E402
from lampo.synthetic import approve, new_customer, outcome, seed, submit, submitted  # noqa: E402
from lampo.testing import TopicReader  # noqa: E402

SCRAPE_S = 5


def prometheus_config(urls: dict[str, str]) -> str:
    targets = "\n".join(
        f'      - targets: ["{url.removeprefix("http://")}"]\n        labels: {{service: {name}}}'
        for name, url in urls.items()
    )
    return (
        f"global: {{scrape_interval: {SCRAPE_S}s, evaluation_interval: {SCRAPE_S}s}}\n"
        f"rule_files: [{REPO / 'deploy' / 'prometheus' / 'rules.yml'}]\n"
        f"scrape_configs:\n  - job_name: lampo\n    static_configs:\n{targets}\n"
    )


async def load(suite: Suite, customers: int) -> None:
    """Customers in every store; access requests answered and read back over the coordinator's
    API; an erasure approved and answered; one rejected and one left awaiting approval. In two
    rounds, so the second is counted as an increase of series the first one began."""
    people = [new_customer() for _ in range(customers)]
    portal = suite.as_caller("portal")
    async with TopicReader(DSAR_EVENTS) as events, httpx.AsyncClient(base_url=suite["dsar"].url) as api:
        for round_ in range(2):
            for person in people:
                if round_ == 0:
                    await seed(suite.urls, person)
                request_id = await submit(submitted("access", person.number))
                await outcome(events, request_id, "dsar.completed", timeout=180)
                for _ in range(3):
                    (await api.get(f"/v1/requests/{request_id}", headers=portal, timeout=30)).raise_for_status()
                await api.get(f"/v1/requests/{uuid.uuid4()}", headers=portal, timeout=30)  # 404
            erasure = await submit(submitted("erasure", people[-1].number))
            await outcome(events, erasure, "dsar.awaiting_approval")
            await approve(erasure)
            await outcome(events, erasure, "dsar.completed", timeout=180)
            await submit(submitted("access", people[0].number, verified=False))  # rejected: unverified
            if round_ == 0:
                await asyncio.sleep(4 * SCRAPE_S)
        await submit(submitted("erasure", people[0].number))  # left awaiting approval: its deadline runs


async def main(out: Path, customers: int, settle_s: float) -> None:
    chromium = shutil.which("chromium") or sys.exit("chromium not installed (apt-get install chromium)")
    prometheus = shutil.which("prometheus") or sys.exit("prometheus not installed (deploy/local/prometheus.sh install)")
    work = Path(tempfile.mkdtemp(prefix="lampo-dashboard-"))
    suite = await launch(SERVICES, work, ready_timeout=240)
    port = free_port()
    server = None
    try:
        (work / "prometheus.yml").write_text(prometheus_config(suite.urls), encoding="utf-8")
        server = await asyncio.create_subprocess_exec(
            prometheus, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.console.templates={REPO / 'deploy' / 'prometheus' / 'consoles'}",
            "--web.console.libraries=/etc/prometheus/console_libraries",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        started = time.monotonic()
        await load(suite, customers)
        await asyncio.sleep(max(0.0, settle_s - (time.monotonic() - started)))
        page = f"http://127.0.0.1:{port}/consoles/lampo.html"
        async with httpx.AsyncClient() as client:
            answer = await client.get(page, timeout=30)
            answer.raise_for_status()
        out.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(
            subprocess.run,
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={work / 'chromium'}", "--hide-scrollbars", "--window-size=1500,1900",
             f"--screenshot={out}", page],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        print(f"dashboard: {out} from {page}")
    finally:
        if server is not None:
            server.terminate()
            await asyncio.wait_for(server.wait(), timeout=30)
        await suite.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "dashboard.png")
    parser.add_argument("--customers", type=int, default=3)
    parser.add_argument("--settle", type=float, default=90.0, help="seconds of scrapes before the picture")
    args = parser.parse_args()
    asyncio.run(main(args.out, args.customers, args.settle))
