"""Traces last: Zipkin keeps them in MariaDB (deploy/local/mariadb.sh), so a DSAR's trace link
still opens after Zipkin restarts, and the daily retention event deletes a trace only once it is
older than LAMPO_TRACE_RETENTION_DAYS.

A MariaDB and a Zipkin of this module's own (free ports, a temporary state directory), started
and stopped with the project's scripts: the shared ones of `make infra` are never touched."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
LOCAL = REPO / "deploy" / "local"
MARIADBD = Path("/usr/sbin/mariadbd")
RETENTION_DAYS = 30
DAY_US = 86_400 * 1_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def script(env: dict[str, str], name: str, command: str) -> None:
    done = subprocess.run(
        [str(LOCAL / name), command], check=False, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{name} {command} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def storage() -> Iterator[dict[str, str]]:
    if not MARIADBD.exists():
        pytest.skip("MariaDB is not installed (deploy/local/mariadb.sh install; make infra and .ci/run install it)")
    # below /tmp, where the server's 'mysql' OS user can reach it when we run as root
    state = Path(tempfile.mkdtemp(prefix="lampo-trace-storage-"))
    state.chmod(0o755)
    env = {
        **os.environ,
        "LAMPO_STATE_DIR": str(state),
        "LAMPO_MARIADB_PORT": str(free_port()),
        "LAMPO_ZIPKIN_PORT": str(free_port()),
        "LAMPO_TRACE_RETENTION_DAYS": str(RETENTION_DAYS),
    }
    try:
        script(env, "mariadb.sh", "start")
        yield env
    finally:
        subprocess.run([str(LOCAL / "zipkin.sh"), "stop"], check=False, env=env, capture_output=True, timeout=120)
        subprocess.run([str(LOCAL / "mariadb.sh"), "stop"], check=False, env=env, capture_output=True, timeout=120)
        shutil.rmtree(state, ignore_errors=True)


def sql(env: dict[str, str], statement: str) -> list[list[str]]:
    done = subprocess.run(
        ["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", env["LAMPO_MARIADB_PORT"], "-u", "zipkin", "zipkin",
         "--batch", "--skip-column-names", "-e", statement],
        check=False, env={**env, "MYSQL_PWD": "zipkin"}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [line.split("\t") for line in done.stdout.splitlines()]


def zipkin(env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{env['LAMPO_ZIPKIN_PORT']}"


def fetch_trace(env: dict[str, str], trace_id: str, timeout: float = 20) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(f"{zipkin(env)}/api/v2/trace/{trace_id}", timeout=5)
        if response.status_code == 200:
            spans: list[dict[str, object]] = response.json()
            return spans
        assert time.monotonic() < deadline, f"trace {trace_id}: {response.status_code} {response.text}"
        time.sleep(0.5)


def test_a_trace_survives_a_zipkin_restart(storage: dict[str, str]) -> None:
    script(storage, "zipkin.sh", "start")
    assert "MySQLStorage" in httpx.get(f"{zipkin(storage)}/health", timeout=5).text
    trace_id, span_id = f"{random.getrandbits(128):032x}", f"{random.getrandbits(64):016x}"
    span = {
        "traceId": trace_id, "id": span_id, "name": "dsar.process", "kind": "CONSUMER",
        "timestamp": time.time_ns() // 1000, "duration": 1500, "localEndpoint": {"serviceName": "lampo-dsar"},
    }  # fmt: skip
    accepted = httpx.post(f"{zipkin(storage)}/api/v2/spans", json=[span], timeout=5)
    assert accepted.status_code == 202
    assert [s["id"] for s in fetch_trace(storage, trace_id)] == [span_id]

    script(storage, "zipkin.sh", "stop")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{zipkin(storage)}/health", timeout=2)
    script(storage, "zipkin.sh", "start")

    found = fetch_trace(storage, trace_id, timeout=5)
    assert [(s["id"], s["name"]) for s in found] == [(span_id, "dsar.process")]


def test_pruning_deletes_traces_older_than_the_period_and_keeps_newer_ones(storage: dict[str, str]) -> None:
    assert sql(storage, "SELECT days FROM lampo_trace_retention") == [[str(RETENTION_DAYS)]]
    now_us = time.time_ns() // 1000
    old, recent, mixed = (random.getrandbits(62) for _ in range(3))
    spans = [  # trace, span, age in days
        (old, 1, RETENTION_DAYS + 1),
        (old, 2, RETENTION_DAYS + 2),
        (recent, 1, RETENTION_DAYS - 1),
        (mixed, 1, RETENTION_DAYS + 10),  # a trace that still got a span within the period stays whole
        (mixed, 2, 1),
    ]
    for trace, span, age in spans:
        start = now_us - age * DAY_US
        sql(storage, f"INSERT INTO zipkin_spans (trace_id_high, trace_id, id, name, start_ts, duration) "
                     f"VALUES (7, {trace}, {span}, 'dsar.process', {start}, 1000)")  # fmt: skip
        sql(storage, f"INSERT INTO zipkin_annotations (trace_id_high, trace_id, span_id, a_key, a_type, a_timestamp, "
                     f"endpoint_service_name) VALUES (7, {trace}, {span}, 'lc', 6, {start}, 'lampo-dsar')")  # fmt: skip

    def count(table: str, trace: int) -> int:
        return int(sql(storage, f"SELECT COUNT(*) FROM {table} WHERE trace_id_high = 7 AND trace_id = {trace}")[0][0])

    sql(storage, "CALL lampo_prune_traces()")  # what the daily event runs

    assert (count("zipkin_spans", old), count("zipkin_annotations", old)) == (0, 0)
    assert (count("zipkin_spans", recent), count("zipkin_annotations", recent)) == (1, 1)
    assert (count("zipkin_spans", mixed), count("zipkin_annotations", mixed)) == (2, 2)


def test_the_server_runs_the_pruning_daily_by_itself(storage: dict[str, str]) -> None:
    assert sql(storage, "SELECT @@event_scheduler") == [["ON"]]
    events = sql(storage, "SELECT status, interval_value, interval_field, event_definition, last_executed IS NOT NULL "
                          "FROM information_schema.events WHERE event_schema = 'zipkin'")  # fmt: skip
    assert events == [["ENABLED", "1", "DAY", "CALL lampo_prune_traces()", "1"]]
