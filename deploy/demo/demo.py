"""`make demo`: a short, real flow through the running suite (started by `make up`).

Publishes synthetic customers (identity codes in the 900-999 test range) the way the CRM does,
plus one record with an invalid identity code, and shows what the suite did with them: change
notices without personal data, and the dead-letter record with its reason. Grows as services land.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

from rich.console import Console
from rich.table import Table

from lampo.contracts.catalog import REGISTRY_EVENTS, REGISTRY_INBOUND
from lampo.messaging.topics import dlq
from lampo.testing import Producer, TopicReader, customer_upserted, header
from lampo.tracing import trace_id_of

console = Console()


async def registry_flow() -> None:
    run = uuid.uuid4().hex[:6]
    customers = [f"demo-{run}-{i}" for i in range(3)]
    console.rule("[bold]1. The CRM publishes three customers and one broken record")
    async with TopicReader(REGISTRY_EVENTS) as notices, TopicReader(dlq(REGISTRY_INBOUND)) as dead, Producer() as crm:
        for i, number in enumerate(customers):
            trace = uuid.uuid4().hex
            await crm.send(REGISTRY_INBOUND, number, customer_upserted(number, 900 + i), traceparent=f"00-{trace}-{uuid.uuid4().hex[:16]}-01")
        broken = json.loads(customer_upserted(f"demo-{run}-bad", 990).to_bytes())
        broken["data"]["person"]["personal_identity_code"] = "131052-308U"
        await crm.send(REGISTRY_INBOUND, f"demo-{run}-bad", json.dumps(broken).encode())

        got = await notices.wait_for(lambda r: json.loads(r.value)["data"]["customer_number"] in customers, count=3)
        table = Table("customer", "subject id (pseudonymous key)", "categories", "trace id")
        for record in got:
            data = json.loads(record.value)["data"]
            table.add_row(data["customer_number"], data["subject_id"], ", ".join(data["categories"]), trace_id_of(header(record, "traceparent")) or "-")
        console.print("[green]registry stored them (encrypted) and announced subject.changed on registry.events.v1:")
        console.print(table)

        [bad] = await dead.wait_for(lambda r: r.key == f"demo-{run}-bad".encode())
        console.print(
            f"[yellow]the broken record went to {dlq(REGISTRY_INBOUND)}: "
            f"error.reason={header(bad, 'error.reason')!r}, error.detail={header(bad, 'error.detail')!r}"
        )
    console.print("Logs: .run/services/*.log. Look a customer up: .venv/bin/lampo registry show " + customers[0])


async def main() -> int:
    await registry_flow()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
