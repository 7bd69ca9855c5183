#!/usr/bin/env python3
"""Keep docs/asyncapi/<service>.json equal to what ``faststream docs gen`` makes of each service.

    deploy/tools/asyncapi_check.py            # check: exit 1 with a unified diff on drift
    deploy/tools/asyncapi_check.py --write    # regenerate the documents (``make asyncapi``)
    deploy/tools/asyncapi_check.py registry   # only the named services

A service is documented when ``services/<name>/src/lampo/<name>/app.py`` defines ``create_app``
(run with ``--factory``). Generation connects to nothing; it runs with a clean ``LAMPO_*`` and
``OTEL_*`` environment and a throw-away master key, so the documents do not depend on the
machine. Documents are AsyncAPI 3.0 JSON, re-indented with two spaces, UTF-8.

The services take raw record batches and parse them against the public contracts themselves, so
FastStream documents every subscription with an empty payload. For a channel on a public topic
the payload is filled in from ``lampo.contracts.catalog``: one of the topic's CloudEvents, each
with its ``type`` and its ``data`` schema (the pydantic models the services validate with).
"""

from __future__ import annotations

import argparse
import base64
import difflib
import json
import os
import secrets
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "asyncapi"
FASTSTREAM = Path(sys.executable).with_name("faststream")


def services() -> list[str]:
    found = []
    for app in sorted(REPO.glob("services/*/src/lampo/*/app.py")):
        name = app.parent.name
        if app.parents[3].name == name and "def create_app" in app.read_text(encoding="utf-8"):
            found.append(name)
    return found


def environment(name: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMPO_", "OTEL_", "FASTSTREAM_"))}
    env["LAMPO_MASTER_KEY"] = base64.b64encode(secrets.token_bytes(32)).decode()
    # The service's own sources first, so a service that is not (yet) installed is documented too.
    paths = [str(REPO / "services" / name / "src"), str(REPO / "libs" / "src")]
    env["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


REF = "#/components/schemas/{model}"


def with_payloads(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the payload of each channel on a public topic: one of its events."""
    from pydantic import BaseModel
    from pydantic.json_schema import models_json_schema

    from lampo.contracts.catalog import EVENT_TYPES
    from lampo.contracts.envelope import CloudEvent

    components = document.setdefault("components", {})
    messages, schemas = components.get("messages", {}), components.setdefault("schemas", {})
    used: dict[str, dict[str, type[BaseModel]]] = {}
    for channel in document.get("channels", {}).values():
        types = EVENT_TYPES.get(channel.get("address", ""))
        if not types:
            continue
        used[channel["address"]] = types
        for ref in channel.get("messages", {}).values():
            message = messages[ref["$ref"].rsplit("/", 1)[1]]
            message["contentType"] = "application/cloudevents+json"
            message["payload"] = {
                "oneOf": [{"$ref": REF.format(model=f"{m.__name__}Event")} for _, m in sorted(types.items())]
            }
    if not used:
        return document
    models = sorted({m for types in used.values() for m in types.values()} | {CloudEvent}, key=lambda m: m.__name__)
    _, top = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    schemas.update(top.get("$defs", {}))
    for types in used.values():
        for event_type, model in types.items():
            schemas[f"{model.__name__}Event"] = {
                "title": f"{event_type} (CloudEvents 1.0)",
                "allOf": [{"$ref": REF.format(model="CloudEvent")}],
                "properties": {"type": {"const": event_type}, "data": {"$ref": REF.format(model=model.__name__)}},
                "required": ["type", "data"],
            }
    if not any(m.get("payload", {}).get("$ref", "").endswith("/EmptyPayload") for m in messages.values()):
        schemas.pop("EmptyPayload", None)
    return document


def render(document: object) -> str:
    # Keys sorted: FastStream lists a service's channels in an order that differs between runs.
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def generate(name: str) -> tuple[str, str | None, str]:
    """(name, document text or None, error output)."""
    with tempfile.TemporaryDirectory(prefix=f"asyncapi-{name}-") as tmp:
        out = Path(tmp) / f"{name}.json"
        command = [str(FASTSTREAM), "docs", "gen", "--factory", "-o", str(out), f"lampo.{name}.app:create_app"]
        done = subprocess.run(  # noqa: S603 - our own venv's faststream, fixed arguments
            command, cwd=tmp, env=environment(name), capture_output=True, text=True, timeout=180, check=False
        )
        if done.returncode != 0 or not out.exists():
            return name, None, (done.stdout + done.stderr).strip()
        return name, render(with_payloads(json.loads(out.read_text(encoding="utf-8")))), ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="regenerate docs/asyncapi/*.json")
    parser.add_argument("names", nargs="*", help="services to check (default: every service with an app)")
    args = parser.parse_args()

    available = services()
    names = args.names or available
    unknown = sorted(set(names) - set(available))
    if unknown:
        print(f"[asyncapi] no app with create_app for: {', '.join(unknown)}", file=sys.stderr)
        return 2
    with ThreadPoolExecutor(max_workers=min(4, len(names) or 1)) as pool:
        results = list(pool.map(generate, names))

    failed = drift = 0
    for name, text, error in results:
        target = DOCS / f"{name}.json"
        if text is None:
            failed += 1
            print(f"[asyncapi] {name}: faststream docs gen failed:\n{error}", file=sys.stderr)
            continue
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current == text:
            continue
        if args.write:
            DOCS.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            print(f"[asyncapi] wrote {target.relative_to(REPO)}")
            continue
        drift += 1
        diff = difflib.unified_diff(
            current.splitlines(keepends=True),
            text.splitlines(keepends=True),
            fromfile=f"{target.relative_to(REPO)} (committed)",
            tofile=f"{target.relative_to(REPO)} (generated)",
        )
        sys.stdout.writelines(diff)
    if not args.names:  # documents of services that no longer have an app
        for stale in sorted(DOCS.glob("*.json")):
            if stale.stem not in available:
                if args.write:
                    stale.unlink()
                    print(f"[asyncapi] removed {stale.relative_to(REPO)} (no such service)")
                else:
                    drift += 1
                    print(
                        f"[asyncapi] {stale.relative_to(REPO)}: no service '{stale.stem}' has an app", file=sys.stderr
                    )
    if failed or drift:
        if drift:
            print(f"[asyncapi] {drift} document(s) out of date: run `make asyncapi`", file=sys.stderr)
        return 1
    if not args.write:
        print(f"[asyncapi] {len(names)} document(s) up to date: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
