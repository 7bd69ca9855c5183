#!/usr/bin/env python3
"""Keep docs/asyncapi/<service>.json and docs/openapi/<service>.json equal to what each service's
app says, and check that they are valid AsyncAPI 3.0 and OpenAPI 3.1 documents.

    deploy/tools/apidocs.py                 # check: exit 1 with a unified diff on drift
    deploy/tools/apidocs.py --write         # regenerate the documents (``make apidocs``)
    deploy/tools/apidocs.py registry        # only the named services
    deploy/tools/apidocs.py --docs DIR      # check (or write) the documents under DIR instead of docs/

A service is documented when ``services/<name>/src/lampo/<name>/app.py`` defines ``create_app``.
Each is built (``build()``, as its ``create_app`` does) in a process of its own that connects to
nothing, with a clean ``LAMPO_*``/``OTEL_*`` environment and a throw-away master key, so the
documents do not depend on the machine. JSON, keys sorted, two-space indent, UTF-8.

AsyncAPI: FastStream's own document of the app (``faststream docs gen``): a ``receive`` operation
per consumer and a ``send`` operation per topic the service declares it writes to
(``lampo.messaging.asyncapi.sends``: the payload is the CloudEvents envelope with the event's
model as ``data``), plus a ``send`` to ``<topic>.dlq`` for each consumer of a topic that has a
dead-letter topic (``lampo.messaging.consumer`` copies rejected records there). The consumers parse
raw record batches themselves, so FastStream sees no payload for them: a consumer's payload is
filled in here from the events its topic carries (``lampo.contracts.catalog``; an internal
topic's from the service that sends it). Each message gets its record headers and key (Kafka
binding); its ``correlationId`` is the CloudEvents ``id`` in the payload (no record carries
FastStream's ``correlation_id`` header).

OpenAPI: ``Runtime.openapi()`` (the mounted FastAPI apps and guarded routes, each operation with
its callers under ``x-lampo-callers`` and the bearer scheme of ``lampo.http_auth``), plus the open
``/health/live``, ``/health/ready`` and ``/metrics``.

The schemas the documents are checked against are in deploy/tools/schemas/ (see its README).
"""

from __future__ import annotations

import argparse
import base64
import copy
import difflib
import functools
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
KINDS = ("asyncapi", "openapi")
SCHEMAS = Path(__file__).resolve().with_name("schemas")
SCHEMA_FILES = {"asyncapi": SCHEMAS / "asyncapi-3.0.0.json", "openapi": SCHEMAS / "openapi-3.1.json"}
REF = "#/components/schemas/"
KAFKA_BINDING = "0.4.0"


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


# -- in the service's own process (``--emit NAME``) -------------------------------------------------


def _headers(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, **({"required": sorted(required)} if required else {})}


TRACEPARENT_HEADER = {"type": "string", "description": "W3C trace context of the work that wrote the record"}
SIGNATURE_HEADERS = {
    "signature": {
        "type": "string",
        "description": "base64 Ed25519 signature of the value by the signer (lampo.signing)",
    },
    "signer": {"type": "string", "description": "the signer's name, e.g. coordinator, staff, or a participant"},
}
CORRELATION_ID = {
    "location": "$message.payload#/id",
    "description": "the CloudEvents id: unique per event; receivers deduplicate on it",
}
DEAD_LETTER_HEADERS = {
    "error.reason": {"type": "string", "description": "why: invalid_json, schema, unknown_type, unauthenticated, ..."},
    "error.detail": {"type": "string", "description": "what failed, naming the field, never quoting the value"},
    "error.topic": {"type": "string", "description": "the topic the record was read from"},
    "error.partition": {"type": "string", "description": "its partition"},
    "error.offset": {"type": "string", "description": "its offset"},
    "error.consumer": {"type": "string", "description": "the consumer that rejected it"},
}


def _topic_text(spec: Any) -> str:
    kept = f"kept {spec.retention_text()}" + (", compacted" if spec.compact else "")
    return f"{spec.purpose} ({kept}{'; personal data' if spec.personal_data else ''})"


def _key_binding(description: str) -> dict[str, Any]:
    return {"kafka": {"bindingVersion": KAFKA_BINDING, "key": {"type": "string", "description": description}}}


def _envelope_schemas(document: dict[str, Any], events: dict[str, Any]) -> dict[str, Any]:
    """The payload of a channel carrying ``events``: each event's envelope model, in components."""
    from pydantic.json_schema import models_json_schema

    from lampo.messaging.asyncapi import envelope_model

    models = [envelope_model(t, m) for t, m in sorted(events.items())]
    _, top = models_json_schema([(m, "validation") for m in models], ref_template=REF + "{model}")
    document["components"].setdefault("schemas", {}).update(top.get("$defs", {}))
    refs = [{"$ref": REF + m.__name__} for m in models]
    if len(refs) == 1:
        return refs[0]
    return {"oneOf": refs, "discriminator": "type"}  # AsyncAPI's discriminator: the property's name


def asyncapi_of(runtime: Any) -> dict[str, Any]:
    from lampo.contracts.catalog import EVENT_TYPES
    from lampo.contracts.envelope import CONTENT_TYPE
    from lampo.messaging.asyncapi import SPEC_KEY, Sends
    from lampo.messaging.topics import TOPIC_NAMES, TOPICS, dlq
    from lampo.signing import SIGNED_TOPICS

    name = runtime.name
    dead_letters: dict[str, str] = {}  # dead-letter topic -> the topic it takes the rejects of
    for consumer in runtime.consumers:
        if dlq(consumer.topic) in TOPIC_NAMES and dlq(consumer.topic) not in dead_letters:
            dead_letters[dlq(consumer.topic)] = consumer.topic
            runtime.broker.publisher(
                dlq(consumer.topic),
                title=f"{name}:{dlq(consumer.topic)}:send",
                include_in_schema=True,
            )
    declared: dict[str, Sends] = {
        f"{name}:{spec.topic}:send": spec
        for spec in (getattr(p, SPEC_KEY, None) for p in runtime.broker.publishers)
        if spec is not None
    }
    verifying = {c.topic for c in runtime.consumers if getattr(c, "_verify", None) is not None}
    groups = {c.name: c.group_id for c in runtime.consumers}
    specs = {t.name: t for t in TOPICS}

    document: dict[str, Any] = runtime.app.schema.to_specification().to_jsonable()
    components = document.setdefault("components", {})
    messages = components.setdefault("messages", {})
    actions = {op["channel"]["$ref"].rsplit("/", 1)[1]: op["action"] for op in document.get("operations", {}).values()}
    for operation in document.get("operations", {}).values():
        group = groups.get(operation["channel"]["$ref"].rsplit("/", 1)[1].rsplit(":", 1)[0])
        if operation["action"] == "receive" and group:
            group_id = {"type": "string", "enum": [group]}
            operation["bindings"] = {"kafka": {"bindingVersion": KAFKA_BINDING, "groupId": group_id}}
    for key, channel in document.get("channels", {}).items():
        topic = channel["address"]
        if topic in specs and "description" not in channel:
            channel["description"] = _topic_text(specs[topic])
        for ref in channel.get("messages", {}).values():
            message = messages[ref["$ref"].rsplit("/", 1)[1]]
            message.pop("correlationId", None)  # FastStream's: a header no record carries
            if topic in dead_letters:
                message.update(
                    contentType="application/octet-stream",
                    payload={"description": "the rejected record's value, unchanged: any bytes, often not JSON"},
                    headers=_headers(DEAD_LETTER_HEADERS, list(DEAD_LETTER_HEADERS)),
                    bindings=_key_binding("the rejected record's key, unchanged"),
                )
                continue
            signed = topic in SIGNED_TOPICS
            if actions.get(key) == "send":
                spec = declared[key]
                if spec.content_type == CONTENT_TYPE:  # through the outbox relay (lampo.messaging.outbox)
                    props = {"content-type": {"const": CONTENT_TYPE}, "traceparent": TRACEPARENT_HEADER}
                    props |= SIGNATURE_HEADERS if signed else {}
                    message["headers"] = _headers(props, ["content-type", *(SIGNATURE_HEADERS if signed else ())])
                else:
                    message["headers"] = _headers({"content-type": {"const": spec.content_type}}, ["content-type"])
                message.update(contentType=spec.content_type, correlationId=CORRELATION_ID)
                message["bindings"] = _key_binding(spec.key)
                continue
            # receive: FastStream saw no payload (the consumers parse raw batches)
            props = {"content-type": {"type": "string"}, "traceparent": TRACEPARENT_HEADER}
            if topic in verifying:
                props |= SIGNATURE_HEADERS
            message["headers"] = _headers(props, [])
            message["correlationId"] = CORRELATION_ID
            if topic in EVENT_TYPES:
                message.update(contentType=CONTENT_TYPE, payload=_envelope_schemas(document, EVENT_TYPES[topic]))
            else:  # an internal topic: the payload its sender declares (filled in by ``complete``)
                message["payload"] = {"x-lampo-sent-by-another-service": topic}
    return document


def openapi_of(runtime: Any) -> dict[str, Any]:
    from lampo.http_auth import CALLERS_KEY
    from lampo.metrics import PROMETHEUS_CONTENT_TYPE

    document: dict[str, Any] = runtime.openapi()
    operations = [op for item in document["paths"].values() for op in item.values() if isinstance(op, dict)]
    callers = sorted({c for op in operations for c in op.get(CALLERS_KEY, ())})
    used = {name for op in operations for requirement in op.get("security", ()) for name in requirement}
    schemes = document["components"].get("securitySchemes", {})
    for name in set(schemes) - used:
        del schemes[name]
    if callers:
        schemes["caller"]["description"] = (
            "The calling system's own token, Authorization: Bearer (the service answers the callers of "
            f"LAMPO_API_CLIENTS, name -> token). Callers of this API: {', '.join(callers)}"
        )
        how = "Every operation names the callers it answers (x-lampo-callers, lampo.http_auth)."
    elif operations:
        how = "Every operation but those with security [] needs Authorization: Bearer (securitySchemes)."
    else:
        how = "The service has no HTTP API of its own."
    document["info"]["description"] = (
        f"Muuramen Lämpö privacy suite: the {runtime.name} service's HTTP API. {how} "
        "Open to anyone: /health/live, /health/ready and /metrics."
    )
    document["servers"] = [{"url": f"http://127.0.0.1:{runtime.settings.port}", "description": "make up"}]
    json_body = {"application/json": {"schema": {"type": "object"}}}
    document["paths"].update(
        {
            "/health/live": {
                "get": {
                    "summary": "Liveness: the process answers",
                    "security": [],
                    "responses": {"200": {"description": '{"status": "alive"}', "content": json_body}},
                }
            },
            "/health/ready": {
                "get": {
                    "summary": "Readiness: database, broker, outbox relay and every consumer in its group",
                    "security": [],
                    "responses": {
                        "200": {"description": "ready", "content": json_body},
                        "503": {"description": "not ready: the body says what is missing", "content": json_body},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Metrics in the Prometheus text format",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "the service's metrics",
                            "content": {PROMETHEUS_CONTENT_TYPE: {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        }
    )
    return document


def emit(name: str) -> None:
    import importlib
    import logging

    logging.disable(logging.CRITICAL)  # a build's warnings about keys it was not given are not documents
    built = importlib.import_module(f"lampo.{name}.app").build()
    runtime = getattr(built, "runtime", built)
    json.dump({"asyncapi": asyncapi_of(runtime), "openapi": openapi_of(runtime)}, sys.stdout)


# -- in the checking process ------------------------------------------------------------------------


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield v
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def _closure(schemas: dict[str, Any], roots: Any) -> set[str]:
    """Names of the component schemas ``roots`` refer to, directly or through each other."""
    seen: set[str] = set()
    pending = [r[len(REF) :] for r in _refs(roots) if r.startswith(REF)]
    while pending:
        name = pending.pop()
        if name in seen or name not in schemas:
            continue
        seen.add(name)
        pending += [r[len(REF) :] for r in _refs(schemas[name]) if r.startswith(REF)]
    return seen


def complete(documents: dict[str, dict[str, Any]]) -> None:
    """Fill in the payload of each consumer of an internal topic from the service that sends it,
    and the record key of each consumer's messages from a service that sends them (if one does);
    drop the component schemas no message uses (FastStream's ``EmptyPayload``, ...)."""
    sent: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}  # topic -> (message, its document)
    for document in documents.values():
        messages = document["components"]["messages"]
        for operation in document.get("operations", {}).values():
            if operation["action"] == "send":
                channel = document["channels"][operation["channel"]["$ref"].rsplit("/", 1)[1]]
                for ref in channel["messages"].values():
                    sent.setdefault(channel["address"], (messages[ref["$ref"].rsplit("/", 1)[1]], document))
    for name, document in documents.items():
        schemas = document["components"].setdefault("schemas", {})
        channels = document["channels"]
        for operation in document.get("operations", {}).values():
            channel = channels[operation["channel"]["$ref"].rsplit("/", 1)[1]]
            if operation["action"] == "receive" and channel["address"] in sent:
                for ref in channel["messages"].values():
                    message = document["components"]["messages"][ref["$ref"].rsplit("/", 1)[1]]
                    message.setdefault("bindings", copy.deepcopy(sent[channel["address"]][0]["bindings"]))
        for message in document["components"]["messages"].values():
            topic = message.get("payload", {}).get("x-lampo-sent-by-another-service")
            if topic is None:
                continue
            if topic not in sent:
                raise SystemExit(f"[apidocs] {name} reads {topic}, which no service declares it sends")
            source, source_document = sent[topic]
            message["payload"] = copy.deepcopy(source["payload"])
            message["contentType"] = source.get("contentType")
            theirs = source_document["components"]["schemas"]
            for needed in _closure(theirs, message["payload"]):
                if schemas.setdefault(needed, theirs[needed]) != theirs[needed]:
                    raise SystemExit(f"[apidocs] {name}: two schemas named {needed}")
        used = _closure(schemas, document["components"]["messages"])
        for unused in set(schemas) - used:
            del schemas[unused]


def render(document: object) -> str:
    # Keys sorted: FastStream lists a service's channels in an order that differs between runs.
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def generate(name: str) -> tuple[str, dict[str, Any] | None, str]:
    """(name, {"asyncapi": ..., "openapi": ...} or None, error output)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--emit", name]
    done = subprocess.run(  # noqa: S603 - this very script, in our own venv, with fixed arguments
        command, cwd=REPO, env=environment(name), capture_output=True, text=True, timeout=180, check=False
    )
    if done.returncode != 0:
        return name, None, (done.stdout[-2000:] + done.stderr).strip()
    return name, json.loads(done.stdout), ""


@functools.cache
def generate_all() -> dict[str, dict[str, Any]]:
    """Every service's documents, {service: {"asyncapi": ..., "openapi": ...}} (every service is
    built: a consumer of an internal topic is documented from its sender's document). Cached: the
    tests check several copies of the documents against one generation."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(generate, services()))
    failed = [f"[apidocs] {name}: could not be built:\n{error}" for name, docs, error in results if docs is None]
    if failed:
        raise SystemExit("\n".join(failed))
    generated = {name: docs for name, docs, _ in results if docs is not None}
    complete({name: docs["asyncapi"] for name, docs in generated.items()})
    return generated


def invalid(kind: str, document: dict[str, Any]) -> list[str]:
    """What makes ``document`` an invalid AsyncAPI 3.0 / OpenAPI 3.1 document (empty: valid)."""
    import jsonschema_rs

    validator = jsonschema_rs.validator_for(json.loads(SCHEMA_FILES[kind].read_text(encoding="utf-8")))
    return [f"{e.instance_path}: {e.message}"[:300] for e in validator.iter_errors(document)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="regenerate the documents")
    parser.add_argument("--docs", type=Path, default=DOCS, help="where the documents are (default: docs/)")
    parser.add_argument("--emit", metavar="SERVICE", help=argparse.SUPPRESS)
    parser.add_argument("names", nargs="*", help="services to check (default: every service with an app)")
    args = parser.parse_args(argv)
    if args.emit:
        emit(args.emit)
        return 0

    available = services()
    names = args.names or available
    unknown = sorted(set(names) - set(available))
    if unknown:
        print(f"[apidocs] no app with create_app for: {', '.join(unknown)}", file=sys.stderr)
        return 2
    generated = copy.deepcopy(generate_all())
    drift = problems = 0
    for name in names:
        for kind in KINDS:
            document = generated[name][kind]
            target = args.docs / kind / f"{name}.json"
            shown = target.relative_to(args.docs.parent) if args.docs.parent in target.parents else target
            errors = invalid(kind, document)
            if errors:
                problems += 1
                print(f"[apidocs] {shown}: not a valid {kind} document:", *errors[:10], sep="\n  ", file=sys.stderr)
                continue
            text = render(document)
            current = target.read_text(encoding="utf-8") if target.exists() else ""
            if current == text:
                continue
            if args.write:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
                print(f"[apidocs] wrote {shown}")
                continue
            drift += 1
            sys.stdout.writelines(
                difflib.unified_diff(
                    current.splitlines(keepends=True),
                    text.splitlines(keepends=True),
                    fromfile=f"{shown} (committed)",
                    tofile=f"{shown} (generated)",
                )
            )
    if not args.names:  # documents of services that no longer have an app
        for kind in KINDS:
            for stale in sorted((args.docs / kind).glob("*.json")):
                if stale.stem in available:
                    continue
                if args.write:
                    stale.unlink()
                    print(f"[apidocs] removed {stale} (no such service)")
                else:
                    drift += 1
                    print(f"[apidocs] {stale}: no service '{stale.stem}' has an app", file=sys.stderr)
    if drift:
        print(f"[apidocs] {drift} document(s) out of date: run `make apidocs`", file=sys.stderr)
    if drift or problems:
        return 1
    if not args.write:
        print(f"[apidocs] {2 * len(names)} document(s) up to date and valid: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
