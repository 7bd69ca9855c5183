"""`make demo`: a short, real flow through the running suite (started by `make up`).

0. The services first catch up with what was published on this broker before (by earlier runs,
   `make test`, benchmarks): they read their topics from where their consumer groups left off,
   as in production, so the demo's records wait behind that backlog. Progress is shown; a
   backlog that would take more than ten minutes stops the demo with advice instead.
1. The CRM publishes synthetic customers (identity codes in the 900-999 test range) and one
   record with an invalid identity code: change notices without personal data, and the
   dead-letter record with its reason.
2. One synthetic customer gets data in every store (register, an invoice, a call recording, a
   consent); an access request returns a package (audio included) that the portal fetches at
   its address with its own credential, a rectification corrects the
   e-mail address (billing says why issued invoices are not altered), an objection to profiling
   stops it and deletes the profile, and an erasure request, approved by the managing director,
   ends with billing's statutory retention listed, and the earlier package answers 410.
3. Where to open each request's trace in Zipkin.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sys
import time
import uuid
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from lampo.contracts.catalog import DSAR_EVENTS, REGISTRY_EVENTS, REGISTRY_INBOUND
from lampo.messaging.topics import dlq
from lampo.synthetic import approve, new_customer, outcome, seed, submit, submitted
from lampo.testing import Producer, TopicReader, customer_upserted, header
from lampo.tracing import trace_id_of

STAFF_KEY = Path(__file__).resolve().parents[2] / ".run" / "keys" / "staff.key"  # created by `make up`

console = Console()
ROOT = Path(__file__).resolve().parents[2]


async def registry_flow() -> None:
    run = uuid.uuid4().hex[:6]
    customers = [f"demo-{run}-{i}" for i in range(3)]
    console.rule("[bold]1. The CRM publishes three customers and one broken record")
    async with TopicReader(REGISTRY_EVENTS) as notices, TopicReader(dlq(REGISTRY_INBOUND)) as dead, Producer() as crm:
        for i, number in enumerate(customers):
            trace = uuid.uuid4().hex
            await crm.send(
                REGISTRY_INBOUND,
                number,
                customer_upserted(number, 900 + i),
                traceparent=f"00-{trace}-{uuid.uuid4().hex[:16]}-01",
            )
        broken = json.loads(customer_upserted(f"demo-{run}-bad", 990).to_bytes())
        broken["data"]["person"]["personal_identity_code"] = "131052-308U"
        await crm.send(REGISTRY_INBOUND, f"demo-{run}-bad", json.dumps(broken).encode())

        got = await notices.wait_for(lambda r: json.loads(r.value)["data"]["customer_number"] in customers, count=3)
        table = Table("customer", "subject id (pseudonymous key)", "categories", "trace id")
        for record in got:
            data = json.loads(record.value)["data"]
            table.add_row(
                data["customer_number"],
                data["subject_id"],
                ", ".join(data["categories"]),
                trace_id_of(header(record, "traceparent")) or "-",
            )
        console.print("[green]registry stored them (encrypted) and announced subject.changed on registry.events.v1:")
        console.print(table)

        [bad] = await dead.wait_for(lambda r: r.key == f"demo-{run}-bad".encode())
        console.print(
            f"[yellow]the broken record went to {dlq(REGISTRY_INBOUND)}: "
            f"error.reason={header(bad, 'error.reason')!r}, error.detail={header(bad, 'error.detail')!r}"
        )
    console.print("Logs: .run/services/*.log. Look a customer up: .venv/bin/lampo registry show " + customers[0])


def service_urls() -> dict[str, str]:
    ports = {}
    for line in (ROOT / "deploy/local/services.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and not line.startswith("#"):
            ports[parts[0]] = f"http://127.0.0.1:{parts[1]}"
    return ports


LAG = re.compile(r"^lampo_consumer_lag\{[^}]*\} (\d+)", re.M)


async def backlog(client: httpx.AsyncClient, urls: dict[str, str]) -> int:
    """Records the running services have still to read (their consumers' lag, from /metrics)."""
    total = 0
    for url in urls.values():
        text = (await client.get(f"{url}/metrics", timeout=10)).text
        total += sum(int(n) for n in LAG.findall(text))
    return total


async def caught_up(urls: dict[str, str], *, patience_s: float = 600) -> bool:
    """Wait until the services have read everything published before the demo; False (with
    advice) when the backlog would take longer than ``patience_s``."""
    async with httpx.AsyncClient() as client:
        first = await backlog(client, urls)
        if first == 0:
            return True
        console.rule("[bold]0. The services catch up with what earlier runs published on this broker")
        started = time.monotonic()
        left = first
        while left > 0:
            await asyncio.sleep(5)
            left = await backlog(client, urls)
            elapsed = time.monotonic() - started
            rate = (first - left) / elapsed
            eta = left / rate if rate > 0 else float("inf")
            console.print(f"{left:,} records still to read ({rate:,.0f}/s)")
            if elapsed >= 20 and eta > patience_s:
                console.print(
                    f"[red]that would take about {eta / 60:.0f} more minutes: this broker holds the history of "
                    "earlier test and benchmark runs. `make clean && make demo` starts from an empty broker "
                    "and database (it deletes .run/, the local state)."
                )
                return False
    console.print("[green]caught up")
    return True


async def dsar_flow() -> None:
    customer = new_customer()
    console.rule("[bold]2. One customer in every store, then an access and an erasure request")
    await seed(service_urls(), customer)
    console.print(
        f"customer {customer.number}: registry, invoice {customer.invoice_number}, call {customer.recording_id} ({len(customer.audio)} bytes), consent to profiling"
    )
    async with TopicReader(DSAR_EVENTS) as events:
        access = await submit(submitted("access", customer.number))
        done = (await outcome(events, access, "dsar.completed", timeout=120))["data"]
        package = done["package"] or {}
        console.print(f"[green]access {access}: {done['status']}, package sha256 {package.get('sha256', '-')[:16]}…")
        fetched = await fetch_package(package["uri"])
        same = hashlib.sha256(fetched.content).hexdigest() == package["sha256"]
        console.print(
            f"  the portal fetches it at {package['uri']} with its own credential: {fetched.status_code}, sha256 matches: {same}"
        )
        console.print(
            f'  as the portal would: curl -H "Authorization: Bearer $(cat .run/api/portal.token)" -o /tmp/{access}.zip {package["uri"]}'
        )
        corrections = {"contact": {"email": f"uusi.{customer.n}@example.fi"}}
        rectification = await submit(submitted("rectification", customer.number, corrections=corrections))
        done = (await outcome(events, rectification, "dsar.completed", timeout=120))["data"]
        console.print(f"[green]rectification {rectification} (contact e-mail): {done['status']}")
        console.print(effects_table(done))
        objection = await submit(submitted("objection", customer.number, scope="profiling"))
        done = (await outcome(events, objection, "dsar.completed", timeout=120))["data"]
        console.print(f"[green]objection {objection} (profiling): {done['status']}")
        console.print(effects_table(done))
        erasure = await submit(submitted("erasure", customer.number))
        await outcome(events, erasure, "dsar.awaiting_approval")
        console.print(f"erasure {erasure} waits for approval; the managing director approves it")
        # Stands in for the staff service's approve route: signed with staff's key from `make up`.
        await approve(erasure, staff_key=STAFF_KEY.read_text())
        done = (await outcome(events, erasure, "dsar.completed", timeout=120))["data"]
    table = Table("participant", "status", "erased", "retained (law, until)")
    for name, result in done["results"].items():
        kept = (
            "; ".join(
                f"{r['category']} x{r['items']}: {r['legal_basis']}, until {r['until'] or 'no end date'}"
                for r in result["retained"]
            )
            or "-"
        )
        table.add_row(name, result["status"], json.dumps(result["erased"]), kept)
    console.print(f"[green]erasure {erasure}: {done['status']}")
    console.print(table)
    gone = await fetch_package(package["uri"])
    console.print(
        f"the access package made before the erasure is destroyed with it: {package['uri']} answers {gone.status_code}"
    )
    console.rule("[bold]3. Traces")
    console.print(f"erasure trace: http://127.0.0.1:9411/zipkin/traces/{done['trace_id']}")
    # the CLI finds the master key and the keys database where `make up` keeps them (lampo.cli.local)
    console.print(f"readable report: .venv/bin/lampo dsar report {erasure}")


async def fetch_package(uri: str) -> httpx.Response:
    """The package at its address, fetched as the portal (the request's channel) with its own
    credential, which `make up` keeps in .run/api/portal.token."""
    token = (ROOT / ".run/api/portal.token").read_text().strip()
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {token}"}) as http:
        return await http.get(uri, timeout=60)


def effects_table(done: dict) -> Table:
    """What each participant did for a request (its effects: action, category, items, why)."""
    table = Table("participant", "status", "effects")
    for name, result in done["results"].items():
        effects = "; ".join(
            " ".join(
                str(part)
                for part in (e["action"], e.get("category"), e.get("items") or None, e.get("legal_basis"))
                if part
            )
            for e in result.get("effects", [])
        )
        table.add_row(name, result["status"], effects or "-")
    return table


def addresses(urls: dict[str, str]) -> None:
    """The two sites people use, and how to get in."""
    console.rule("[bold]The people's side")
    console.print(
        f"Privacy centre (data subjects): [bold]{urls['portal']}/[/bold]\n"
        "  verify with the one-time code mailed to the address in the register (every mail is kept in\n"
        "  .run/mail/), or with the stand-in of strong identification (marked as one on its page).\n"
        f"Staff console: [bold]{urls['staff']}/console/[/bold]\n"
        "  first account: .venv/bin/lampo admin create-first-admin <name> (it asks for a password);\n"
        "  then create users and grant roles under Administration, or\n"
        "  .venv/bin/lampo admin grant <name> managing_director (approves erasures)."
    )


async def main() -> int:
    urls = service_urls()
    if not await caught_up(urls):
        return 1
    await registry_flow()
    await dsar_flow()
    addresses(urls)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
