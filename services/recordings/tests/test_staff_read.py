"""The staff service's reads of the recordings store (issue 18): a customer's recordings and
archived e-mails, and each recording's audio for playback, to the ``staff`` caller only;
withheld while the customer is restricted, unless for legal claims. Real broker and database."""

from __future__ import annotations

from typing import Any

import httpx

from lampo.testing import privacy_task, run_privacy_task

from .test_recordings import EMAIL_BODY, EMAIL_SUBJECT, ingest_all, new_customer_number

CALLERS = {"dsar": "test-dsar-token", "staff": "test-staff-token"}


async def get(recordings: Any, path: str, token: str | None = "test-staff-token", **params: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=recordings.runtime.app)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(transport=transport, base_url="http://recordings") as http:
        return await http.get(path, params=params, headers=headers)


async def test_staff_reads_recordings_and_plays_their_audio(start_recordings) -> None:
    async with start_recordings(api_clients=CALLERS) as recordings:
        customer, other = new_customer_number(), new_customer_number()
        audio, _ = await ingest_all(recordings, customer)
        await ingest_all(recordings, other)
        r = await get(recordings, f"/v1/customers/{customer}")
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["store"], body["restricted"], body["withheld"]) == ("recordings", False, False)
        items = body["categories"]["customer_relationship"]
        listed = [i for i in items if i["kind"] == "recording"]
        assert sorted(i["recording_id"] for i in listed) == sorted(audio)
        assert all(i["media_type"] == "audio/wav" and "audio" not in i for i in listed)  # metadata only
        [mail] = [i for i in items if i["kind"] == "email"]
        assert (mail["subject"], mail["body_text"]) == (EMAIL_SUBJECT, EMAIL_BODY)

        for recording_id, sound in audio.items():
            played = await get(recordings, f"/v1/customers/{customer}/recordings/{recording_id}/audio")
            assert played.status_code == 200
            assert played.headers["content-type"] == "audio/wav" and played.content == sound
        # Another customer's recording is not reached through this customer's number.
        theirs = (await get(recordings, f"/v1/customers/{other}")).json()["categories"]["customer_relationship"]
        their_id = next(i["recording_id"] for i in theirs if i["kind"] == "recording")
        crossed = await get(recordings, f"/v1/customers/{customer}/recordings/{their_id}/audio")
        assert (crossed.status_code, crossed.json()) == (404, {"error": "no_match"})
        assert (await get(recordings, f"/v1/customers/{new_customer_number()}")).status_code == 404
        for token in (None, "test-dsar-token"):
            assert (await get(recordings, f"/v1/customers/{customer}", token=token)).status_code in (401, 403)
            path = f"/v1/customers/{customer}/recordings/{their_id}/audio"
            assert (await get(recordings, path, token=token)).status_code in (401, 403)


async def test_a_restricted_customers_recordings_are_withheld_unless_for_legal_claims(start_recordings) -> None:
    async with start_recordings(api_clients=CALLERS) as recordings:
        customer = new_customer_number()
        audio, _ = await ingest_all(recordings, customer)
        [ack] = await run_privacy_task(privacy_task(recordings.settings.participant_name, "restriction", customer))
        assert ack["status"] == "done"
        body = (await get(recordings, f"/v1/customers/{customer}")).json()
        assert (body["restricted"], body["withheld"], body["categories"]) == (
            True, True, {"customer_relationship": []},
        )  # fmt: skip
        recording_id, sound = next(iter(audio.items()))
        path = f"/v1/customers/{customer}/recordings/{recording_id}/audio"
        refused = await get(recordings, path)
        assert (refused.status_code, refused.json()) == (409, {"error": "withheld"})
        claims = await get(recordings, path, purpose="legal_claims")
        assert claims.status_code == 200 and claims.content == sound
        listed = (await get(recordings, f"/v1/customers/{customer}", purpose="legal_claims")).json()
        assert len(listed["categories"]["customer_relationship"]) == 3
