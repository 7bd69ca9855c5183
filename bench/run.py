"""`make bench`: runs every benchmark under bench/<name>/run.py in turn against the running
infrastructure and keeps each one's output in bench/out/<name>.txt. Benchmarks never run in
`make test`; each prints its own figures, its baseline measured in the same run, and the ratio."""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    only = set(sys.argv[1:])
    failures = 0
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}")
    for script in sorted(HERE.glob("*/run.py")):
        name = script.parent.name
        if only and name not in only:
            continue
        print(f"\n=== bench/{name} ===", flush=True)
        started = time.monotonic()
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=False)
        (out / f"{name}.txt").write_text(result.stdout + result.stderr)
        print(result.stdout.rstrip())
        if result.returncode != 0:
            failures += 1
            print(f"bench/{name} FAILED (exit {result.returncode}); stderr tail:\n{result.stderr[-2000:]}")
        print(f"(bench/{name} took {time.monotonic() - started:.0f} s; output kept in bench/out/{name}.txt)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
