"""kill -9 each service in turn in the middle of an erasure request, restart it: the request
completes once, with every participant's outcome, and its effects happen exactly once."""

from __future__ import annotations

import json

import pytest
from faultkit import data
from suite import SERVICES, installed

from lampo.contracts.catalog import DSAR_EVENTS, PRIVACY_ACKS, PRIVACY_TASKS
from lampo.synthetic import approve, new_customer, outcome, seed, submit, submitted, until_year, years_from_now
from lampo.testing import TopicReader, find_in_database

PARTICIPANTS = ("registry", "billing", "recordings", "consent")


@pytest.mark.parametrize("victim", SERVICES)
async def test_a_service_killed_in_the_middle_of_an_erasure_is_restarted_and_the_erasure_completes_once(
    suite, victim: str
) -> None:
    needed = {"dsar", victim, *PARTICIPANTS}
    missing = needed - set(installed())
    if missing:
        pytest.skip(f"service(s) not installed in this checkout: {', '.join(sorted(missing))}")
    customer = new_customer()
    await seed(suite.urls, customer)
    service = suite[victim]
    async with TopicReader(DSAR_EVENTS) as events, TopicReader(PRIVACY_TASKS, PRIVACY_ACKS) as protocol:
        request_id = await submit(submitted("erasure", customer.number))
        await outcome(events, request_id, "dsar.awaiting_approval")
        await approve(request_id)
        if victim in PARTICIPANTS:
            # the victim's task is on its way or being handled: the middle of its part
            await protocol.wait_for(
                lambda r: (
                    r.topic == PRIVACY_TASKS
                    and data(r)["data"]["request_id"] == request_id
                    and data(r)["data"]["participant"] == victim
                ),
                timeout=60,
            )
        elif victim == "dsar":
            await outcome(events, request_id, "dsar.accepted")  # tasks fanned out, acks pending
        await service.stop(kill=True)
        assert service.process is not None and service.process.returncode == -9
        await service.start()
        completed = await outcome(events, request_id, "dsar.completed", timeout=180)
        later = await events.quiet(3.0)
        acks = await protocol.wait_for(
            lambda r: r.topic == PRIVACY_ACKS and data(r)["data"]["request_id"] == request_id,
            count=len(PARTICIPANTS),
            timeout=10,
        )

    finals = [r for r in later if data(r)["type"] == "dsar.completed" and data(r)["data"]["request_id"] == request_id]
    assert len(finals) == 1, "the request completed more than once"
    result = completed["data"]
    assert result["status"] == "completed_with_retention", result
    assert set(result["results"]) == set(PARTICIPANTS)
    assert {p: r["status"] for p, r in result["results"].items()} == dict.fromkeys(PARTICIPANTS, "done")
    assert result["results"]["registry"]["erased"].get("basic", 0) >= 1
    assert result["results"]["recordings"]["erased"] == {"customer_relationship": 1}
    [kept] = result["results"]["billing"]["retained"]
    assert kept["items"] == 1 and until_year(kept["until"]) == years_from_now(6)

    # each participant acknowledged its task (repeats of a task answer the same), and nothing
    # personal is left in any database of the suite
    assert {data(r)["data"]["participant"] for r in acks} == set(PARTICIPANTS)
    for database in suite.databases:
        assert await find_in_database(database, customer.personal_strings) == [], (victim, database)
    assert json.dumps(result).find(customer.identity_code) == -1
