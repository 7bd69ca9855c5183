"""The record of processing activities (GDPR Art. 30(1)), generated from the data map, so the
record and the rules the sweeps apply cannot drift apart."""

from __future__ import annotations

from typing import Any

from lampo.datamap import DataMap

_TRIGGER_TEXT = {
    "relationship_ended": "after the customer relationship ended",
    "last_activity": "after the last activity (prospects: no relationship, never invoiced)",
    "financial_year_end": "after the end of the financial year of the latest invoice",
    "recording_made": "after the recording was made",
    "consent_withdrawn": "after the consent was withdrawn",
}


def record_of_processing(datamap: DataMap) -> dict[str, Any]:
    """The Art. 30(1) record as a JSON-able structure."""
    c = datamap.controller
    categories = []
    recipients: dict[tuple[str, str, str], None] = {}
    for name, entry in datamap.categories.items():
        for r in entry.recipients:
            recipients[(r.name, r.country, r.role)] = None
        categories.append(
            {
                "category": name,
                "description": entry.description,
                "purposes": list(entry.purposes),
                "legal_bases": list(entry.legal_bases),
                "sources": list(entry.sources),
                "recipients": [{"name": r.name, "country": r.country, "role": r.role} for r in entry.recipients],
                "retention": [
                    {
                        "rule": rule.rule,
                        "period": rule.period.model_dump(),
                        "period_text": str(rule.period),
                        "trigger": rule.trigger,
                        "reason": rule.reason,
                        "law": rule.law,
                        "held_by": rule.participant,
                    }
                    for rule in entry.retention
                ],
            }
        )
    purposes = list(dict.fromkeys(p for entry in datamap.categories.values() for p in entry.purposes))
    return {
        "title": "Record of processing activities (GDPR Art. 30(1))",
        "controller": {
            "name": c.name,
            "business_id": c.business_id,
            "address": c.address,
            "contact": c.contact,
            "data_protection_contact": c.data_protection_contact,
        },
        "purposes": purposes,
        "categories_of_data_subjects": list(datamap.subject_categories),
        "categories_of_personal_data": categories,
        "recipients": [{"name": n, "country": k, "role": r} for n, k, r in recipients],
        "transfers_outside_eu_eea": [],
        "transfers_statement": "None. Data is never transferred or disclosed outside the EU/EEA; every recipient is checked at start-up.",
        "systems": list(datamap.participants),
        "security_measures": list(datamap.security_measures),
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(datamap: DataMap) -> str:
    record = record_of_processing(datamap)
    c = record["controller"]
    lines = [
        f"# {record['title']}",
        "",
        "## Controller",
        "",
        f"- **Name:** {c['name']}",
        f"- **Business ID:** {c['business_id']}",
        f"- **Address:** {c['address']}",
        f"- **Contact:** {c['contact']}",
        f"- **Data protection contact:** {c['data_protection_contact']}",
        "",
        "## Purposes of the processing",
        "",
        *[f"- {p}" for p in record["purposes"]],
        "",
        "## Categories of data subjects",
        "",
        *[f"- {s}" for s in record["categories_of_data_subjects"]],
        "",
        "## Categories of personal data",
        "",
        "| Category | Data | Purposes | Legal basis | Sources | Recipients |",
        "|---|---|---|---|---|---|",
    ]
    for cat in record["categories_of_personal_data"]:
        recips = "; ".join(f"{r['name']} ({r['country']})" for r in cat["recipients"]) or "none"
        lines.append(
            f"| `{cat['category']}` | {_cell(cat['description'])} | {_cell('; '.join(cat['purposes']))}"
            f" | {', '.join(cat['legal_bases'])} | {', '.join(cat['sources'])} | {_cell(recips)} |"
        )
    lines += ["", "## Recipients", ""]
    lines += [f"- {r['name']}, {r['country']} ({r['role']})" for r in record["recipients"]]
    lines += [
        "",
        "## Transfers to third countries",
        "",
        record["transfers_statement"],
        "",
        "## Retention periods (time limits for erasure)",
        "",
        "| Category | Rule | Kept | Held by | Reason |",
        "|---|---|---|---|---|",
    ]
    for cat in record["categories_of_personal_data"]:
        for r in cat["retention"]:
            reason = r["reason"] + (f" ({r['law']})" if r["law"] else "")
            kept = f"{r['period_text']} {_TRIGGER_TEXT[r['trigger']]}"
            lines.append(f"| `{cat['category']}` | {r['rule']} | {kept} | {r['held_by']} | {_cell(reason)} |")
    lines += [
        "",
        "Legal holds placed by an authority's case suspend deletion of the held data until released.",
        "",
        "## Technical and organisational security measures",
        "",
        *[f"- {m}" for m in record["security_measures"]],
        "",
    ]
    return "\n".join(lines)
