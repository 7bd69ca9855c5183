"""Start-up time of the `lampo` CLI (issue 19: `lampo --help` and `lampo dsar status` in < 0.5 s).

Runs each command N times as a new process (as an operator's shell does), after one warm-up run,
and prints the median and the fastest against `python -c pass` measured in the same run (the
interpreter's own start-up, which no CLI can beat). `dsar status` runs without a master key and
against a database that does not exist, so it measures start-up and the first answer, with no
service needed. Figures only: no assertion (the machine may be busy).

    .venv/bin/python bench/cli/run.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

LAMPO = str(Path(sys.executable).parent / "lampo")
GOAL_S = 0.5

COMMANDS: dict[str, list[str]] = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "lampo --help": [LAMPO, "--help"],
    "lampo dsar --help": [LAMPO, "dsar", "--help"],
    "lampo dsar status <id>": [LAMPO, "dsar", "status", "req-bench"],
    "lampo registry accuracy --help": [LAMPO, "registry", "accuracy", "--help"],
}


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def result(figure: str, value: float, baseline: float, met: bool | None) -> None:
    line = {"bench": "cli", "figure": figure, "value": round(value, 3), "unit": "s", "baseline": round(baseline, 3)}
    print("RESULT " + json.dumps({**line, "goal": f"< {GOAL_S} s" if met is not None else None, "met": met}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMPO_")}
    env |= {"LAMPO_STATE_DIR": "/nonexistent", "LAMPO_DATABASE": "lampo_bench_no_such_database"}
    medians: dict[str, float] = {}
    print(f"{'command':<34} {'median':>8} {'fastest':>8}   ({runs} runs each)")
    for name, argv in COMMANDS.items():
        timed(argv, env)  # warm the file cache
        times = [timed(argv, env) for _ in range(runs)]
        medians[name] = statistics.median(times)
        print(f"{name:<34} {medians[name]:>7.3f}s {min(times):>7.3f}s")
    baseline = medians["python -c pass (baseline)"]
    for name, median in medians.items():
        if name.startswith("python"):
            continue
        goal = name in {"lampo --help", "lampo dsar status <id>"}
        result(name, median, baseline, median < GOAL_S if goal else None)


if __name__ == "__main__":
    main()
