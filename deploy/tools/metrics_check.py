#!/usr/bin/env python3
"""Every metric an alert rule (deploy/prometheus/rules.yml) or a dashboard panel
(deploy/grafana/dashboards/*.json, and the Prometheus console deploy/prometheus/consoles/*.html)
names must be one the services export: exit 1 naming each unknown one and where it is used.

    deploy/tools/metrics_check.py          # check (`make lint`)
    deploy/tools/metrics_check.py --list   # print the exported names, one a line

The exported names are not a list kept by hand: each service's app is built as
``faststream run --factory`` would (``create_app()``, connecting to nothing, in a clean
environment as deploy/tools/apidocs.py builds it), and every runtime's
``ServiceMetrics.exported_names()`` is read: the name of each instrument created on its meter
provider (whether or not it has a value yet) and the names of the process, platform and GC
collectors on its registry.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from apidocs import REPO, environment, services  # the same discovery and environment

RULES = REPO / "deploy" / "prometheus" / "rules.yml"
DASHBOARDS = sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json"))
CONSOLES = sorted((REPO / "deploy" / "prometheus" / "consoles").glob("*.html"))

_PROBE = """
import importlib, json, sys
from lampo.metrics import CREATED
apps = [importlib.import_module(f"lampo.{name}.app").create_app() for name in sys.argv[1:]]
names = set()
for metrics in list(CREATED):
    names |= metrics.exported_names()
json.dump(sorted(names), sys.stdout)
"""

# Series names Prometheus itself adds to every target it scrapes.
SCRAPE_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
                 "scrape_series_added"}  # fmt: skip

_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
             "offset", "inf", "nan", "le"}  # fmt: skip


def exported(names: list[str]) -> set[str]:
    """Every service built in one process (one interpreter start-up)."""
    env = environment(names[0])
    env["PYTHONPATH"] = os.pathsep.join([*(str(REPO / "services" / n / "src") for n in names), env["PYTHONPATH"]])
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed program
        [sys.executable, "-c", _PROBE, *names], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"metrics_check: building the services failed:\n{done.stderr[-2000:]}")
    return set(json.loads(done.stdout))


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label matchers, grouping labels, ranges,
    strings and functions left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", text):
        word = match.group(1)
        if word.lower() not in _KEYWORDS:
            names.add(word)
    return names


def used() -> dict[str, set[str]]:
    """Metric name -> where it is used."""
    import yaml

    where: dict[str, set[str]] = {}

    def add(expr: str, place: str) -> None:
        for name in metric_names(expr):
            where.setdefault(name, set()).add(place)

    for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]:
        for rule in group["rules"]:
            add(rule["expr"], f"{RULES.relative_to(REPO)}: {rule.get('alert') or rule.get('record')}")
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]:
            for target in panel.get("targets", []):
                add(target["expr"], f"{path.relative_to(REPO)}: panel {panel['title']!r}")
    for path in CONSOLES:
        # The console's queries: the second argument of each prom_query_drilldown / query call.
        for expr in re.findall(
            r'(?:query|prom_query_drilldown)\s+"((?:[^"\\]|\\.)*)"', path.read_text(encoding="utf-8")
        ):
            add(expr.replace('\\"', '"'), f"{path.relative_to(REPO)}")
    return where


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="print the names the services export")
    args = parser.parse_args()
    names = exported(services())
    if args.list:
        print("\n".join(sorted(names)))
        return 0
    unknown = {name: places for name, places in used().items() if name not in names | SCRAPE_SERIES}
    for name, places in sorted(unknown.items()):
        print(f"metrics_check: {name} is exported by no service; used in {', '.join(sorted(places))}", file=sys.stderr)
    return 1 if unknown else 0


if __name__ == "__main__":
    sys.exit(main())
