"""`make bench`: runs every benchmark under bench/<name>/run.py in turn against the running
infrastructure, keeps each one's output in bench/out/<name>.txt and writes the results table to
bench/RESULTS.md. Benchmarks never run in `make test`; each prints its own figures, its baseline
measured in the same run, and the ratio, and one ``RESULT {json}`` line per figure for the table.

    .venv/bin/python bench/run.py [name ...]      # e.g. `bench/run.py ingest access`

With names, only those run, and RESULTS.md keeps the other benchmarks' rows from its last run.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
DATA = HERE / "results.json"  # the figures behind RESULTS.md, kept so one benchmark can be re-run alone


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or platform.machine(),
    )
    memory_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return f"{os.cpu_count()} cores ({model}), {memory_kb / 1024 / 1024:.0f} GiB, Linux {platform.release()}, Python {platform.python_version()}"


def commit() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False, cwd=HERE
    )
    return result.stdout.strip() or "?"


def results_of(output: str) -> list[dict[str, Any]]:
    return [json.loads(line[len("RESULT ") :]) for line in output.splitlines() if line.startswith("RESULT ")]


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(runs: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (bench/run.py); every figure is measured against the real broker and",
        "database. Each benchmark's full output, with its method, is in",
        "bench/out/<name>.txt after a run; the method is in the docstring of bench/<name>/run.py.",
        "Baseline: measured in the same run where the benchmark has one (ingest: plain aiokafka +",
        "COPY; access: straight database reads zipped; memory: the service idle after start-up);",
        "for erasure, retention and withdrawal, the figure before this round's changes (earlier runs",
        "of the same benchmark, recorded in the issues' notes).",
        "",
        "| benchmark | figure | value | unit | baseline | goal | met |",
        "| --- | --- | ---: | --- | ---: | --- | --- |",
    ]
    for name, run in sorted(runs.items()):
        if not run["results"]:
            lines.append(f"| {name} | (no figures: exit {run['exit']}, see bench/out/{name}.txt) | | | | | no |")
        for r in run["results"]:
            met = {True: "yes", False: "**no**", None: ""}[r.get("met")]
            unit, goal = r.get("unit", ""), r.get("goal") or ""
            lines.append(
                f"| {name} | {r['figure']} | {cell(r['value'])} | {unit} | {cell(r.get('baseline'))} | {goal} | {met} |"
            )
    lines += [
        "",
        "## Runs",
        "",
        "| benchmark | when (UTC) | commit | took | load average before | machine |",
        "| --- | --- | --- | ---: | --- | --- |",
    ]
    for name, run in sorted(runs.items()):
        lines.append(
            f"| {name} | {run['when']} | {run['commit']} | {run['took_s']:.0f} s | {run['load']} | {run['machine']} |"
        )
    missed = [name for name, run in sorted(runs.items()) if any(r.get("met") is False for r in run["results"])]
    if missed:
        lines += ["", "## Where a goal is missed: the profile, and what would close it"]
        for name in missed:
            profile = HERE / name / "PROFILE.md"
            text = profile.read_text().strip() if profile.exists() else f"(not written yet: bench/{name}/PROFILE.md)"
            lines += ["", f"### {name}", "", text]
    return "\n".join(lines) + "\n"


def main() -> int:
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    only = set(sys.argv[1:])
    runs: dict[str, dict[str, Any]] = json.loads(DATA.read_text()) if DATA.exists() and only else {}
    failures = 0
    about = machine()
    print(f"machine: {about}")
    for script in sorted(HERE.glob("*/run.py")):
        name = script.parent.name
        if only and name not in only:
            continue
        print(f"\n=== bench/{name} ===", flush=True)
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        started = time.monotonic()
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=False)
        took = time.monotonic() - started
        (out / f"{name}.txt").write_text(result.stdout + result.stderr)
        print(result.stdout.rstrip())
        if result.returncode != 0:
            failures += 1
            print(f"bench/{name} FAILED (exit {result.returncode}); stderr tail:\n{result.stderr[-2000:]}")
        print(f"(bench/{name} took {took:.0f} s; output kept in bench/out/{name}.txt)")
        runs[name] = {
            "results": results_of(result.stdout),
            "exit": result.returncode,
            "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
            "commit": commit(),
            "took_s": took,
            "load": load,
            "machine": about,
        }
        DATA.write_text(json.dumps(runs, indent=2))
        RESULTS.write_text(table(runs))
    print(f"\nresults table: {RESULTS.relative_to(HERE.parent)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
