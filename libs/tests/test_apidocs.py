"""The API documents (docs/asyncapi/, docs/openapi/) and their drift check, deploy/tools/apidocs.py,
which ``make lint`` runs: the committed documents are current and valid, a stale or invalid one
fails the check, and the documents say what the services really send and receive."""

from __future__ import annotations

import ast
import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
SERVICES = ["billing", "consent", "dsar", "portal", "recordings", "registry", "retention", "staff"]


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("apidocs", REPO / "deploy" / "tools" / "apidocs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["apidocs"] = module
    spec.loader.exec_module(module)
    return module


apidocs = _tool()


def committed(kind: str, service: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DOCS / kind / f"{service}.json").read_text(encoding="utf-8"))
    return document


def operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    """(action, topic) of every operation of an AsyncAPI document."""
    channels = document["channels"]
    return {
        (op["action"], channels[op["channel"]["$ref"].rsplit("/", 1)[1]]["address"])
        for op in document["operations"].values()
    }


def message_of(document: dict[str, Any], action: str, topic: str) -> dict[str, Any]:
    channels = document["channels"]
    for op in document["operations"].values():
        channel = channels[op["channel"]["$ref"].rsplit("/", 1)[1]]
        if op["action"] == action and channel["address"] == topic:
            (ref,) = channel["messages"].values()
            message: dict[str, Any] = document["components"]["messages"][ref["$ref"].rsplit("/", 1)[1]]
            return message
    raise AssertionError(f"no {action} of {topic}")


def event_types(document: dict[str, Any], payload: dict[str, Any]) -> dict[str, str]:
    """CloudEvents type -> the schema of its ``data``, for a payload of envelopes."""
    schemas = document["components"]["schemas"]
    if "$ref" in payload:
        payload = schemas[payload["$ref"].rsplit("/", 1)[1]]
    found = {}
    for ref in payload.get("oneOf", [payload] if "properties" in payload else []):
        envelope = schemas[ref["$ref"].rsplit("/", 1)[1]] if "$ref" in ref else ref
        assert {"id", "source", "type", "time", "data", "specversion"} <= set(envelope["properties"])
        found[envelope["properties"]["type"]["const"]] = envelope["properties"]["data"]["$ref"].rsplit("/", 1)[1]
    return found


# -- the drift check ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated() -> dict[str, dict[str, Any]]:
    """One generation of every document (about a minute: each service is built in a process)."""
    result: dict[str, dict[str, Any]] = apidocs.generate_all()
    return result


def test_the_committed_documents_are_current_and_valid(
    generated: dict[str, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert sorted(generated) == SERVICES
    assert apidocs.main([]) == 0, capsys.readouterr()
    assert f"{2 * len(SERVICES)} document(s) up to date and valid" in capsys.readouterr().out


def test_a_stale_document_fails_the_check_and_write_mends_it(
    generated: dict[str, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DOCS / "asyncapi", docs / "asyncapi")
    shutil.copytree(DOCS / "openapi", docs / "openapi")
    assert apidocs.main(["--docs", str(docs)]) == 0
    capsys.readouterr()

    # The registry's change notices dropped from its AsyncAPI document, a route from the dsar OpenAPI.
    registry = json.loads((docs / "asyncapi" / "registry.json").read_text(encoding="utf-8"))
    registry["operations"] = {k: v for k, v in registry["operations"].items() if "registry.events.v1:send" not in k}
    (docs / "asyncapi" / "registry.json").write_text(apidocs.render(registry), encoding="utf-8")
    dsar = json.loads((docs / "openapi" / "dsar.json").read_text(encoding="utf-8"))
    del dsar["paths"]["/v1/requests/{request_id}/cancel"]
    (docs / "openapi" / "dsar.json").write_text(apidocs.render(dsar), encoding="utf-8")
    (docs / "openapi" / "ghost.json").write_text("{}\n", encoding="utf-8")

    assert apidocs.main(["--docs", str(docs)]) == 1
    out, err = capsys.readouterr()
    assert "--- docs/asyncapi/registry.json (committed)" in out
    assert '+    "registry:registry.events.v1:send": {' in out
    assert "--- docs/openapi/dsar.json (committed)" in out
    assert '+    "/v1/requests/{request_id}/cancel": {' in out
    assert "no service 'ghost' has an app" in err
    assert "3 document(s) out of date: run `make apidocs`" in err

    assert apidocs.main(["--docs", str(docs), "--write"]) == 0
    assert not (docs / "openapi" / "ghost.json").exists()
    for kind in apidocs.KINDS:
        for service in SERVICES:
            assert (docs / kind / f"{service}.json").read_bytes() == (DOCS / kind / f"{service}.json").read_bytes()
    assert apidocs.main(["--docs", str(docs)]) == 0


def test_a_document_that_is_not_valid_fails_the_check() -> None:
    for service in SERVICES:
        assert apidocs.invalid("asyncapi", committed("asyncapi", service)) == []
        assert apidocs.invalid("openapi", committed("openapi", service)) == []
    broken = committed("asyncapi", "dsar")
    next(iter(broken["operations"].values()))["action"] = "publish"  # AsyncAPI 2's word, not 3's
    assert apidocs.invalid("asyncapi", broken)
    no_description = committed("openapi", "registry")
    del no_description["paths"]["/metrics"]["get"]["responses"]["200"]["description"]
    assert apidocs.invalid("openapi", no_description)


# -- what the documents say ---------------------------------------------------------------------------

SENDS = {
    "registry": {"registry.events.v1", "privacy.acks.v1"},
    "consent": {"consent.events.v1", "privacy.acks.v1"},
    "dsar": {"dsar.events.v1", "privacy.tasks.v1"},
    "retention": {"privacy.tasks.v1", "retention.holds.v1"},
    "billing": {"privacy.acks.v1"},
    "recordings": {"privacy.acks.v1"},
    "staff": {"dsar.requests.v1", "staff.audit-heads.v1"},
    "portal": set(),  # it submits over dsar's HTTP API; it only reads dsar.events.v1 (mail)
}
RECEIVES = {
    "registry": {"registry.inbound.v1", "consent.events.v1", "privacy.tasks.v1"},
    "consent": {"consent.inbound.v1", "privacy.tasks.v1"},
    "dsar": {"dsar.requests.v1", "privacy.acks.v1", "retention.holds.v1"},
    "billing": {"billing.inbound.v1", "privacy.tasks.v1", "retention.holds.v1"},
    "recordings": {"recordings.inbound.v1", "privacy.tasks.v1"},
    "staff": set(),
    "portal": {"dsar.events.v1"},
}


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_documents_what_it_sends_and_receives(service: str) -> None:
    document = committed("asyncapi", service)
    ops = operations(document)
    sent = {topic for action, topic in ops if action == "send" and not topic.endswith(".dlq")}
    received = {topic for action, topic in ops if action == "receive"}
    assert sent == SENDS[service]
    if service in RECEIVES:
        assert received == RECEIVES[service]
    # Every consumer of a public topic dead-letters what it cannot accept (internal topics have no DLQ).
    dead_letters = {topic for action, topic in ops if action == "send" and topic.endswith(".dlq")}
    assert dead_letters == {f"{t}.dlq" for t in received if t != "retention.holds.v1"}
    for message in document["components"]["messages"].values():
        # No record carries FastStream's correlation_id header.
        assert "$message.header#/correlation_id" not in json.dumps(message)


def test_payloads_are_the_envelope_with_the_models_as_data() -> None:
    dsar = committed("asyncapi", "dsar")
    lifecycle = message_of(dsar, "send", "dsar.events.v1")
    assert lifecycle["contentType"] == "application/cloudevents+json"
    assert event_types(dsar, lifecycle["payload"]) == {
        "dsar.accepted": "DsarAccepted",
        "dsar.rejected": "DsarRejected",
        "dsar.awaiting_approval": "DsarAwaitingApproval",
        "dsar.completed": "DsarCompleted",
        "dsar.overdue": "DsarOverdue",
        "dsar.restriction_lift_notice": "RestrictionLiftNotice",
        "dsar.extended": "DsarExtended",
    }
    assert "trace_id" in dsar["components"]["schemas"]["DsarCompleted"]["properties"]
    assert lifecycle["correlationId"]["location"] == "$message.payload#/id"
    assert lifecycle["bindings"]["kafka"]["key"]["description"] == "request_id"
    tasks = message_of(dsar, "send", "privacy.tasks.v1")
    assert {"signature", "signer", "content-type"} <= set(tasks["headers"]["required"])
    assert event_types(dsar, message_of(dsar, "receive", "dsar.requests.v1")["payload"]) == {
        "dsar.submitted": "DsarSubmitted",
        "dsar.approved": "DsarApproved",
        "dsar.denied": "DsarDenied",
    }
    # An internal topic's consumer is documented with its sender's payload.
    holds = message_of(dsar, "receive", "retention.holds.v1")
    assert event_types(dsar, holds["payload"]) == {"legal_hold.state": "HoldState"}
    retention = committed("asyncapi", "retention")
    assert holds["payload"] == message_of(retention, "send", "retention.holds.v1")["payload"]

    staff = committed("asyncapi", "staff")
    assert event_types(staff, message_of(staff, "send", "dsar.requests.v1")["payload"]) == {
        "dsar.approved": "DsarApproved",
        "dsar.denied": "DsarDenied",
    }
    heads = message_of(staff, "send", "staff.audit-heads.v1")
    assert heads["contentType"] == "application/json"
    assert set(staff["components"]["schemas"]["AuditHead"]["properties"]) == {"seq", "hash", "at", "mac"}

    dead = message_of(committed("asyncapi", "registry"), "send", "registry.inbound.v1.dlq")
    assert {"error.reason", "error.detail"} <= set(dead["headers"]["required"])
    assert "correlationId" not in dead


def test_consumers_name_their_consumer_group() -> None:
    registry = committed("asyncapi", "registry")
    groups = {
        op["bindings"]["kafka"]["groupId"]["enum"][0]
        for op in registry["operations"].values()
        if op["action"] == "receive"
    }
    assert groups == {
        "lampo-registry.registry.inbound.v1",
        "lampo-registry.consent.events.v1",
        "lampo-registry.privacy.tasks.v1",
    }


@pytest.mark.parametrize("service", SERVICES)
def test_every_http_api_is_published_with_its_security(service: str) -> None:
    document = committed("openapi", service)
    assert document["openapi"].startswith("3.1")
    for path in ("/health/live", "/health/ready", "/metrics"):
        assert document["paths"][path]["get"]["security"] == []  # open by design
    schemes = document["components"].get("securitySchemes", {})
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for requirement in operation.get("security", []):
                for name in requirement:
                    assert schemes[name]["type"] == "http" and schemes[name]["scheme"] == "bearer", (path, method)
    if service in ("registry", "dsar", "consent", "billing", "recordings"):
        assert "x-lampo-callers" in document["paths"]["/v1/resolve" if service != "dsar" else "/v1/requests"]["post"]
    if service == "staff":
        assert document["paths"]["/v1/dsar/requests/{request_id}/approve"]["post"]["security"] == [{"HTTPBearer": []}]


def test_registry_names_its_callers_in_the_bearer_scheme() -> None:
    caller = committed("openapi", "registry")["components"]["securitySchemes"]["caller"]
    assert caller["description"].endswith("Callers of this API: dsar, marketing, portal, staff")


# -- the declarations against the code ------------------------------------------------------------

WRITERS = {"OutgoingEvent", "Record", "send", "_event"}  # outbox rows and the relay's own sends


def topics_written(service: str) -> set[str]:
    """The topics a service's code writes to: the first argument of each outbox row it builds
    (``outbox.OutgoingEvent``, ``outbox.Record``, the coordinator's ``_event``) and of each direct
    ``send``, where it is a constant; plus privacy.acks.v1 when it is a participant."""
    from lampo.messaging.topics import TOPIC_NAMES

    found: set[str] = set()
    for path in sorted((REPO / "services" / service / "src").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        if "lampo.participant import" in source and "subscribe(" in source:
            found.add("privacy.acks.v1")
        module_name = ".".join(path.relative_to(REPO / "services" / service / "src").with_suffix("").parts)
        module: ModuleType | None = None
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name not in WRITERS:
                continue
            first = node.args[0]
            if isinstance(first, ast.Constant) and first.value in TOPIC_NAMES:
                found.add(first.value)
            elif isinstance(first, ast.Name):
                module = module or importlib.import_module(module_name)
                value = getattr(module, first.id, None)
                if isinstance(value, str) and value in TOPIC_NAMES:
                    found.add(value)
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_the_documents_send_what_the_code_writes(service: str) -> None:
    written = topics_written(service)
    assert bool(written) == bool(SENDS[service]), (
        f"{service}: writes {written or 'nothing'}: has the outbox's interface changed?"
    )
    sent = {topic for action, topic in operations(committed("asyncapi", service)) if action == "send"}
    assert written == {t for t in sent if not t.endswith(".dlq")}
