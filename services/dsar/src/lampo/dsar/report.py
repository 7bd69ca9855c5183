"""The erasure report as a readable document (Markdown), from the stored dsar.completed data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def erasure_report(request: Mapping[str, Any], transitions: Sequence[Mapping[str, Any]]) -> str:
    completion: Mapping[str, Any] = request.get("completion") or {}
    lines = [
        f"# Erasure report: request {request['request_id']}",
        "",
        f"- Kind: {request['kind']}",
        f"- Status: {request['status']}",
        f"- Subject: {request.get('subject_id') or '-'} (customer numbers: {', '.join(request.get('customer_numbers') or []) or '-'})",
        f"- Received: {request['received_at']}",
        f"- Due: {request['due_at']}",
        f"- Completed: {completion.get('completed_at') or '-'}",
        f"- Approved by: {request.get('approved_by') or '-'}",
        f"- Trace: {completion.get('trace_id') or '-'}",
        "",
        "## What each participant erased",
        "",
        "| Participant | Status | Category | Items erased |",
        "|---|---|---|---|",
    ]
    results: Mapping[str, Any] = completion.get("results") or {}
    for participant, result in sorted(results.items()):
        erased = result.get("erased") or {}
        if not erased:
            lines.append(f"| {participant} | {result['status']} | - | 0 |")
        for category, count in sorted(erased.items()):
            lines.append(f"| {participant} | {result['status']} | {category} | {count} |")
    lines += [
        "",
        "## What was kept, under which law, until when",
        "",
        "| Participant | Category | Items | Legal basis | Until |",
        "|---|---|---|---|---|",
    ]
    kept = 0
    for participant, result in sorted(results.items()):
        for r in result.get("retained") or []:
            kept += 1
            until = r.get("until") or "while the case is open"
            lines.append(f"| {participant} | {r['category']} | {r['items']} | {r['legal_basis']} | {until} |")
    if not kept:
        lines.append("| - | - | - | nothing kept | - |")
    failed = {p: r for p, r in results.items() if r.get("status") == "failed"}
    if failed:
        lines += ["", "## Failed participants", ""]
        lines += [f"- **{p}**: {r.get('error') or 'no error given'}" for p, r in sorted(failed.items())]
    lines += ["", "## History", "", "| At | From | To | Actor | Detail |", "|---|---|---|---|---|"]
    for t in transitions:
        lines.append(
            f"| {t['at']} | {t['from_status'] or '-'} | {t['to_status']} | {t['actor']} | {t['detail'] or ''} |"
        )
    return "\n".join(lines) + "\n"
