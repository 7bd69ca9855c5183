"""One trace across HTTP, SQL and Kafka: a DSAR a data protection officer submits through the staff
service's HTTP API is one trace in the tracing backend (Zipkin), from that HTTP request to the
request's ``dsar.completed``: the staff service's server span is its root, and it holds the HTTP
client and server spans of every service-to-service call (staff -> dsar, dsar -> registry), the
SQL statements, the Kafka consumers' ``process`` spans and the relay's ``send`` spans. No span
carries the customer's personal data or an SQL statement's parameters."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from people import staff_user
from suite import ZIPKIN, Suite, zipkin_running

from lampo.contracts.catalog import DSAR_EVENTS, PRIVACY_ACKS, PRIVACY_TASKS
from lampo.synthetic import new_customer, seed
from lampo.testing import TopicReader, eventually, header
from lampo.tracing import trace_id_of

PARTICIPANTS = {"lampo-registry", "lampo-billing", "lampo-recordings", "lampo-consent"}


async def dpo_headers(suite: Suite) -> tuple[str, dict[str, str]]:
    """A staff user (made as an operator would, tests/people.py) and its bearer token, as a data
    protection officer with the commitment made."""
    username, secret = await staff_user(suite, "data_protection_officer")
    async with httpx.AsyncClient(base_url=suite["staff"].url, timeout=30) as http:
        login = await http.post("/v1/login", json={"username": username, "password": secret})
        assert login.status_code == 200, login.text
        headers = {"authorization": f"Bearer {login.json()['token']}"}
        version = os.environ.get("LAMPO_CONFIDENTIALITY_TEXT_VERSION", "2026-1")
        committed = await http.post("/v1/me/confidentiality", json={"text_version": version}, headers=headers)
        assert committed.status_code == 200, committed.text
    return username, headers


def tags(span: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = span.get("tags", {})
    return found


def service(span: dict[str, Any]) -> str:
    return str(span.get("localEndpoint", {}).get("serviceName", ""))


def of(spans: list[dict[str, Any]], name: str, kind: str | None = None, svc: str | None = None) -> list[dict[str, Any]]:
    """Spans by name (Zipkin keeps names in lower case), kind and service."""
    return [
        s
        for s in spans
        if s.get("name") == name.lower()
        and (kind is None or s.get("kind") == kind)
        and (svc is None or service(s) == svc)
    ]


def complete(spans: list[dict[str, Any]], completed_span_id: str) -> bool:
    """Everything the test asserts has arrived (spans come in several exports, from each service)."""
    sql = [s for s in spans if s.get("kind") == "CLIENT" and tags(s).get("db.system.name") == "postgresql"]
    return bool(
        of(spans, "POST /v1/dsar/requests", "SERVER", "lampo-staff")
        and of(spans, "POST", "CLIENT", "lampo-staff")
        and of(spans, "POST /v1/requests", "SERVER", "lampo-dsar")
        and of(spans, "POST", "CLIENT", "lampo-dsar")
        and of(spans, "POST /v1/resolve", "SERVER", "lampo-registry")
        and {service(s) for s in sql} >= {"lampo-staff", "lampo-dsar"}
        and {service(s) for s in of(spans, f"process {PRIVACY_TASKS}", "CONSUMER")} >= PARTICIPANTS
        and of(spans, f"process {PRIVACY_ACKS}", "CONSUMER", "lampo-dsar")
        and of(spans, "dsar complete", None, "lampo-dsar")
        and any(s["id"] == completed_span_id for s in of(spans, f"send {DSAR_EVENTS}", "PRODUCER", "lampo-dsar"))
    )


async def test_a_dsar_submitted_through_the_staff_api_is_one_trace_from_the_request_to_dsar_completed(
    suite: Suite, require: Any
) -> None:
    require("staff", "dsar", "registry", "billing", "recordings", "consent")
    if not zipkin_running():
        pytest.skip(f"no Zipkin at {ZIPKIN} (make infra starts it: deploy/local/zipkin.sh)")
    customer = new_customer()
    await seed(suite.urls, customer)
    username, headers = await dpo_headers(suite)
    request_id = str(uuid.uuid4())
    body = {
        "request_id": request_id,
        "kind": "access",
        "identifiers": {"customer_number": customer.number},
        "verification": {"method": "staff", "verified_by": "dpo", "verified_at": datetime.now(UTC).isoformat()},
    }
    async with TopicReader(DSAR_EVENTS) as events, httpx.AsyncClient(base_url=suite["staff"].url) as staff:
        # No traceparent: an earlier test in this process may have instrumented httpx (once a
        # process), and its client span would otherwise become the staff span's parent.
        with suppress_instrumentation():
            submitted = await staff.post("/v1/dsar/requests", json=body, headers=headers, timeout=30)
        assert submitted.status_code == 201, submitted.text
        [completed] = await events.wait_for(
            lambda r: (
                json.loads(r.value)["type"] == "dsar.completed"
                and json.loads(r.value)["data"]["request_id"] == request_id
            ),
            timeout=120,
        )
    trace_id = json.loads(completed.value)["data"]["trace_id"]
    traceparent = header(completed, "traceparent")
    assert trace_id and trace_id_of(traceparent) == trace_id  # the record itself continues the trace
    completed_span_id = (traceparent or "").split("-")[2]

    async def fetched() -> list[dict[str, Any]] | None:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{ZIPKIN}/api/v2/trace/{trace_id}", timeout=5)
        if response.status_code != 200:
            return None
        spans: list[dict[str, Any]] = response.json()
        return spans if complete(spans, completed_span_id) else None

    spans = await eventually(fetched, timeout=60, interval=1.0)

    # Its root is the staff service's HTTP server span: the trace starts at the officer's request.
    [root] = [s for s in spans if "parentId" not in s]
    assert (service(root), root["kind"], root["name"]) == ("lampo-staff", "SERVER", "post /v1/dsar/requests")
    by_id = {s["id"]: s for s in spans}
    # staff -> dsar over HTTP: the dsar server span's parent is the staff client span.
    [dsar_server] = of(spans, "POST /v1/requests", "SERVER", "lampo-dsar")
    staff_client = by_id[dsar_server["parentId"]]
    assert (service(staff_client), staff_client["kind"]) == ("lampo-staff", "CLIENT")
    # dsar -> registry (identity resolution): the same, under the coordinator's resolve span.
    [registry_server] = of(spans, "POST /v1/resolve", "SERVER", "lampo-registry")
    dsar_client = by_id[registry_server["parentId"]]
    assert (service(dsar_client), dsar_client["kind"]) == ("lampo-dsar", "CLIENT")
    assert by_id[dsar_client["parentId"]]["name"] == "dsar resolve"
    # SQL: statements as written (parameterised), never their parameters.
    sql = [s for s in spans if tags(s).get("db.system.name") == "postgresql"]
    assert any("$1" in tags(s)["db.query.text"] for s in sql)
    assert all(s["kind"] == "CLIENT" and s["name"] == tags(s)["db.operation.name"].lower() for s in sql)
    # Kafka: every participant's task and the coordinator's acks, as CONSUMER process spans.
    for span in of(spans, f"process {PRIVACY_TASKS}", "CONSUMER"):
        assert tags(span)["messaging.system"] == "kafka" and tags(span)["messaging.operation.type"] == "process"
        assert tags(span)["messaging.destination.name"] == PRIVACY_TASKS and "messaging.kafka.message.offset" in tags(
            span
        )
        assert tags(span)["messaging.consumer.group.name"] and tags(span)["lampo.flow"] == "privacy"
    # Privacy: no span names the customer (identity code, name, e-mail, phone, street) or
    # carries an SQL statement's parameters, or the officer's user name.
    text = json.dumps(spans, ensure_ascii=False)
    leaked = [s for s in customer.personal_strings if s in text]
    assert not leaked, leaked
    assert "db.statement.parameters" not in text and username not in text
