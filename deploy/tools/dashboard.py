#!/usr/bin/env python3
"""The suite's dashboard, written from one list of panels to both of its forms:

- deploy/grafana/dashboards/lampo.json: the Grafana dashboard (provisioned by docker-compose.yml);
- deploy/prometheus/consoles/lampo.html: the same queries as a Prometheus console template, served
  by Prometheus itself at /consoles/lampo.html (where no Grafana runs; docs/img's screenshot).

    deploy/tools/dashboard.py            # check: exit 1 when a file differs from what this writes
    deploy/tools/dashboard.py --write    # write both

deploy/tools/metrics_check.py holds every metric the panels name to what the services export.
"""

from __future__ import annotations

import argparse
import difflib
import html
import json
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "deploy" / "grafana" / "dashboards" / "lampo.json"
CONSOLE = REPO / "deploy" / "prometheus" / "consoles" / "lampo.html"
DATASOURCE = {"type": "prometheus", "uid": "lampo-prometheus"}  # deploy/grafana/provisioning/datasources
RATE = "$__rate_interval"  # Grafana's; the console reads the same over 5m


@dataclass(frozen=True)
class Panel:
    title: str
    exprs: tuple[tuple[str, str], ...]  # (query, legend)
    unit: str = "short"
    kind: str = "timeseries"  # or "stat"
    description: str = ""


# Gauges read from a database (dsar_*) are the same in every instance: max, not sum.
# fmt: off
ROWS: list[tuple[str, list[Panel]]] = [
    ("Privacy requests (DSAR)", [
        Panel("DSARs past their deadline", (("max(lampo_dsar_overdue)", "overdue"),), kind="stat",
              description="Requests past their GDPR deadline unanswered (alert DsarPastDeadline)"),
        Panel("Nearest deadline, by kind", (("min by (kind) (lampo_dsar_next_deadline_seconds)", "{{kind}}"),),
              unit="s", kind="stat", description="Time left before the nearest deadline of a request not yet answered (alert DsarNearDeadline below 7 days)"),
        Panel("Failed tasks, by participant", (("max by (participant) (lampo_dsar_tasks_failed)", "{{participant}}"),),
              kind="stat", description="Tasks that ended failed and wait for a retry (alert DsarParticipantFailing)"),
        Panel("DSARs by kind and state", (("max by (kind, state) (lampo_dsar_requests)", "{{kind}} {{state}}"),)),
        Panel("Time to completion (p50, p95), by kind", (
            (f"histogram_quantile(0.5, sum by (le, kind) (rate(lampo_dsar_duration_seconds_bucket[{RATE}])))", "p50 {{kind}}"),
            (f"histogram_quantile(0.95, sum by (le, kind) (rate(lampo_dsar_duration_seconds_bucket[{RATE}])))", "p95 {{kind}}"),
        ), unit="s"),
        Panel("Completed, by kind and outcome", (
            (f"sum by (kind, status) (increase(lampo_dsar_duration_seconds_count[{RATE}]))", "{{kind}} {{status}}"),
        )),
        Panel("Task attempts retried, by participant", (("max by (participant) (lampo_dsar_task_retries)", "{{participant}}"),)),
    ]),
    ("Kafka consumers and outbox", [
        Panel("Dead-lettered records, by topic and reason", (
            (f"sum by (topic, reason) (increase(lampo_consumer_dead_lettered_total[{RATE}]))", "{{topic}} {{reason}}"),
        ), description="Alert DeadLettersArriving"),
        Panel("Consumer lag, by group and topic", (("sum by (group, topic) (lampo_consumer_lag)", "{{group}} {{topic}}"),),
              description="Alert ConsumerLagGrowing"),
        Panel("Events processed per second, by topic", (
            (f"sum by (topic) (rate(lampo_consumer_processed_total[{RATE}]))", "{{topic}}"),
        ), unit="ops"),
        Panel("Consumer batch duration (p95), by consumer", (
            (f"histogram_quantile(0.95, sum by (le, consumer) (rate(lampo_consumer_batch_duration_seconds_bucket[{RATE}])))", "{{consumer}}"),
        ), unit="s"),
        Panel("Outbox backlog, by service", (
            ("sum by (service) (lampo_outbox_backlog)", "{{service}} rows"),
        ), description="Rows committed but not yet sent to Kafka"),
        Panel("Oldest unsent outbox row, by service", (("max by (service) (lampo_outbox_oldest_age_seconds)", "{{service}}"),),
              unit="s", description="Alert OutboxBacklog above 5 minutes"),
    ]),
    ("HTTP and staff", [
        Panel("HTTP request duration (p95), by route", (
            (f"histogram_quantile(0.95, sum by (le, http_route) (rate(http_server_request_duration_seconds_bucket[{RATE}])))", "{{http_route}}"),
        ), unit="s"),
        Panel("HTTP requests per second, by status", (
            (f"sum by (http_response_status_code) (rate(http_server_request_duration_seconds_count[{RATE}]))", "{{http_response_status_code}}"),
        ), unit="reqps"),
        Panel("Staff lockouts (last hour)", (("sum(increase(lampo_staff_lockouts_total[1h]))", "lockouts"),), kind="stat",
              description="Alert StaffLockouts"),
        Panel("Audit chain intact", (("min(lampo_staff_audit_chain_intact)", "intact"),), kind="stat",
              description="The staff service's periodic check: 1 intact, 0 broken (alert AuditChainBroken)"),
    ]),
    ("Processes", [
        Panel("Resident memory, by service", (("sum by (service) (process_resident_memory_bytes)", "{{service}}"),), unit="bytes"),
        Panel("CPU, by service", ((f"sum by (service) (rate(process_cpu_seconds_total[{RATE}]))", "{{service}}"),), unit="percentunit"),
        Panel("Garbage collections per second, by generation", (
            (f"sum by (generation) (rate(python_gc_collections_total[{RATE}]))", "gen {{generation}}"),
        )),
        Panel("Open file descriptors, by service", (("sum by (service) (process_open_fds)", "{{service}}"),)),
    ]),
]
# fmt: on


def grafana() -> str:
    panels: list[dict[str, object]] = []
    y, next_id = 0, 1
    for row, row_panels in ROWS:
        panels.append({"id": next_id, "type": "row", "title": row, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})  # fmt: skip
        next_id, y, x = next_id + 1, y + 1, 0
        for p in row_panels:
            w, h = (6, 5) if p.kind == "stat" else (12, 8)
            if x + w > 24:
                x, y = 0, y + 8
            panel: dict[str, object] = {
                "id": next_id, "type": p.kind, "title": p.title, "datasource": DATASOURCE,
                "gridPos": {"h": h, "w": w, "x": x, "y": y},
                "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
                "targets": [
                    {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
                    for i, (expr, legend) in enumerate(p.exprs)
                ],
            }  # fmt: skip
            if p.description:
                panel["description"] = p.description
            panels.append(panel)
            next_id, x = next_id + 1, x + w
        y += 8
    dashboard = {
        "uid": "lampo-suite", "title": "Muuramen Lämpö privacy suite", "tags": ["lampo"],
        "timezone": "browser", "schemaVersion": 39, "version": 1, "editable": False,
        "refresh": "30s", "time": {"from": "now-6h", "to": "now"}, "panels": panels,
        "annotations": {"list": []}, "templating": {"list": []},
    }  # fmt: skip
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def console() -> str:
    out = [
        "{{/* The suite's dashboard as a Prometheus console (/consoles/lampo.html): the panels of",
        "     deploy/grafana/dashboards/lampo.json, same queries (rates over 5m), as tables of their",
        "     current values. Written by deploy/tools/dashboard.py --write; do not edit by hand. */}}",
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Muuramen Lämpö privacy suite</title>',
        "<style>body{font-family:sans-serif;margin:16px;background:#111217;color:#ccccdc}"
        "h1{font-size:20px}h2{font-size:16px;border-bottom:1px solid #333;margin-top:18px}"
        ".grid{display:flex;flex-wrap:wrap;gap:10px}.panel{background:#181b1f;border:1px solid #2c3235;"
        "padding:8px 10px;min-width:260px;max-width:560px}.panel h3{font-size:13px;margin:0 0 6px}"
        "td{font-size:12px;padding:1px 8px 1px 0}td.v{text-align:right;font-weight:bold;color:#73bf69}"
        ".none{color:#777;font-size:12px}</style></head><body>",
        '<h1>Muuramen Lämpö privacy suite <span class="none">{{ with query "time()" }}{{ . | first | value | humanizeTimestamp }}{{ end }}</span></h1>',
    ]
    for row, row_panels in ROWS:
        out.append(f'<h2>{html.escape(row)}</h2><div class="grid">')
        for p in row_panels:
            out.append(f'<div class="panel"><h3>{html.escape(p.title)}</h3><table>')
            for expr, legend in p.exprs:
                query = expr.replace(RATE, "5m").replace('"', '\\"')
                prefix = html.escape(legend.split("{{")[0]) if legend.startswith(("p50", "p95")) else ""
                value = "humanizeDuration" if p.unit == "s" else ("humanize1024" if p.unit == "bytes" else "humanize")
                out.append(
                    f'{{{{ range query "{query}" }}}}<tr><td>{prefix}{{{{ range $k, $v := .Labels }}}}{{{{ $v }}}} '
                    f'{{{{ end }}}}</td><td class="v">{{{{ .Value | {value} }}}}</td></tr>'
                    f'{{{{ else }}}}<tr><td class="none">no data</td></tr>{{{{ end }}}}'
                )
            out.append("</table></div>")
        out.append("</div>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    drift = False
    for path, text in ((GRAFANA, grafana()), (CONSOLE, console())):
        if args.write:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            continue
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            drift = True
            rel = str(path.relative_to(REPO))
            sys.stdout.writelines(
                difflib.unified_diff(current.splitlines(True), text.splitlines(True), rel, rel + " (generated)")
            )
    if drift:
        print("dashboard: run `deploy/tools/dashboard.py --write`", file=sys.stderr)
    return 1 if drift else 0


if __name__ == "__main__":
    sys.exit(main())
