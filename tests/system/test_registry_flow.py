"""Company systems' view: a customer published on the inbound topic is announced on the change
notices in the same trace, and the spans exported by the running registry share that trace."""

from __future__ import annotations

import json
import uuid

from lampo.contracts.catalog import REGISTRY_EVENTS, REGISTRY_INBOUND
from lampo.testing import Producer, TopicReader, customer_upserted, eventually, header
from lampo.tracing import trace_id_of


async def test_a_customer_flows_through_the_running_registry_in_one_trace(suite, require) -> None:
    require("registry")
    customer = f"sys-{uuid.uuid4().hex[:8]}"
    trace = uuid.uuid4().hex
    async with TopicReader(REGISTRY_EVENTS) as notices, Producer() as crm:
        await crm.send(
            REGISTRY_INBOUND,
            customer,
            customer_upserted(customer, 950),
            traceparent=f"00-{trace}-{uuid.uuid4().hex[:16]}-01",
        )
        [notice] = await notices.wait_for(lambda r: json.loads(r.value)["data"]["customer_number"] == customer)
    assert trace_id_of(header(notice, "traceparent")) == trace

    def names() -> set[str]:
        return {s.name for s in suite.otlp.spans if s.trace_id == trace and s.service == "lampo-registry"}

    # the process and publish spans may come in different exports: wait for both
    expected = {f"process {REGISTRY_INBOUND}", f"send {REGISTRY_EVENTS}"}
    await eventually(lambda: expected <= names(), timeout=15)
    # no personal data in any exported attribute
    exported = json.dumps([s.attributes for s in suite.otlp.spans], default=str)
    assert "example.fi" not in exported and "Asiakas950" not in exported
