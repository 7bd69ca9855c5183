"""`lampo seed` publishes a synthetic register through the public inbound topics: every record
meets its contract (parsed strictly by lampo.contracts.catalog), is keyed by its customer number,
and carries identity codes only in the 900-999 test range; the same seed gives the same records;
--wait waits until the named consumer groups have read everything."""

import asyncio
import json
import random
import sys
from collections import Counter
from datetime import date
from pathlib import Path

import orjson

from lampo.cli.seed import Plan, records
from lampo.contracts.catalog import BILLING_INBOUND, CONSENT_INBOUND, RECORDINGS_INBOUND, REGISTRY_INBOUND, parse
from lampo.contracts.registry import ConsumptionReported, CustomerUpserted
from lampo.testing import TopicReader, fast_forward_group, unique

LAMPO = Path(sys.executable).parent / "lampo"
TOPICS = [REGISTRY_INBOUND, BILLING_INBOUND, RECORDINGS_INBOUND, CONSENT_INBOUND]


async def lampo(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(LAMPO), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, out.decode(), err.decode()


def ours(seed: int) -> bytes:
    return f'"customer_number":"S{seed}-'.encode()


async def test_seed_publishes_contract_valid_records_with_synthetic_identity_codes() -> None:
    seed = random.randrange(10_000, 10**9)
    async with TopicReader(*TOPICS) as reader:
        code, out, err = await lampo(
            "seed", "--customers", "50", "--months", "6", "--invoices", "2", "--heavy", "1", "--heavy-readings", "400",
            "--recordings", "200", "--consents", "300", "--seed", str(seed), "--json",
        )  # fmt: skip
        assert code == 0, err
        figures = json.loads(out.strip().splitlines()[-1])
        assert "published" in out and "events/s" in out
        got = await reader.wait_for(lambda r: ours(seed) in r.value, count=figures["events"], timeout=60)

    assert len(got) == figures["events"]
    seen: Counter[str] = Counter()
    codes = []
    for record in got:
        parsed = parse(record.topic, record.value, extra="forbid")  # raises on any contract violation
        data = parsed.data
        assert record.key == str(data.customer_number).encode()  # type: ignore[attr-defined]  # keys per contract
        assert dict(record.headers)["content-type"] == b"application/cloudevents+json"
        seen[parsed.envelope.type] += 1
        if isinstance(data, CustomerUpserted) and data.person:
            codes.append(data.person.personal_identity_code)
            assert data.contact and data.contact.email and data.contact.email.endswith("@example.fi")
        if isinstance(data, ConsumptionReported):
            assert data.period_start <= data.period_end
    assert seen["customer.upserted"] == 50
    assert seen["consumption.reported"] == 49 * 6 + 400  # monthly for 49, daily for the heavy one
    assert seen["invoice.issued"] == 50 * 2
    assert seen["call.recorded"] >= 20  # the heavy subject's 20, and some others'
    assert seen["consent.given"] >= 1
    assert codes and all(900 <= int(c[7:10]) <= 999 for c in codes)
    assert len(set(codes)) == len(codes)


def test_the_same_seed_gives_the_same_records_and_another_seed_others() -> None:
    def values(seed: int) -> list[bytes]:
        plan = Plan(20, 3, 1, 1, 50, 500, 500, seed, date(2026, 12, 1))
        return [orjson.dumps(event) for _, _, event in records(plan)]

    assert values(5) == values(5)
    assert not set(values(5)) & set(values(6))


async def test_wait_returns_once_the_groups_have_read_everything_and_fails_while_they_lag() -> None:
    base = unique("seed-wait")
    await fast_forward_group(base, TOPICS)  # a service that has read everything so far, then stops
    code, _, err = await lampo(
        "seed", "--customers", "5", "--months", "1", "--heavy", "0", "--recordings", "1000", "--consents", "1000", "--seed", str(random.randrange(10**9)),
        "--wait", "--group", f"registry={base}", "--group", f"consent={base}", "--timeout", "3",
    )  # fmt: skip
    assert code == 1 and "still behind" in err
    assert f"{base}.{REGISTRY_INBOUND}" in err and f"{base}.{CONSENT_INBOUND}" in err  # named, with its count
    assert f"{base}.{BILLING_INBOUND}" not in err  # service=base: only the topics that service reads

    # now the "service" catches up while seed waits
    process = await asyncio.create_subprocess_exec(
        str(LAMPO), "seed", "--customers", "5", "--months", "1", "--heavy", "0", "--recordings", "1000", "--consents", "1000", "--seed", str(random.randrange(10**9)),
        "--wait", "--group", base, "--timeout", "60", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    waiting = asyncio.create_task(process.communicate())
    while not waiting.done():
        await asyncio.sleep(2)
        await fast_forward_group(base, TOPICS)
    out, err = waiting.result()
    assert process.returncode == 0, err.decode()
    assert "ingested by 4 consumer groups" in out.decode()


def test_no_two_customers_share_a_business_id() -> None:
    """Two customers with one business ID are one subject to the registry: a seeded register of
    5,000 once held five such pairs (neighbouring numbers met at an invalid check digit)."""
    from lampo.cli.seed import business_id
    from lampo.contracts.identifiers import is_valid_business_id

    plan = Plan(5000, 0, 0, 0, 0, 0, 0, 7, date(2026, 12, 1))
    ids = [
        event["data"]["organisation"]["business_id"]
        for topic, _, event in records(plan)
        if topic == REGISTRY_INBOUND and (event["data"].get("organisation") or {}).get("business_id")
    ]
    assert len(ids) > 300
    assert len(set(ids)) == len(ids)
    assert all(is_valid_business_id(value) for value in ids)
    dense = [business_id(n) for n in range(0, 2_000_000, 7)] + [business_id(n) for n in range(1_000, 3_000)]
    assert all(is_valid_business_id(value) for value in dense)
    assert len(set(dense)) == len(set(range(0, 2_000_000, 7)) | set(range(1_000, 3_000)))
