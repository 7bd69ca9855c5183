"""Handlers of the recordings store: inbound events and privacy tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg

from lampo.clock import Clock
from lampo.contracts.categories import Category
from lampo.contracts.privacy import PrivacyTask
from lampo.contracts.recordings import CallRecorded, EmailArchived
from lampo.crypto import KeyRing
from lampo.messaging.consumer import BatchHandler, Incoming
from lampo.participant import Attachment, Items, Participant, Piece, TaskFailed, TaskOutcome
from lampo.recordings.domain import assemble, file_name, is_sha256, position_of, sha256_hex
from lampo.recordings.errors import (
    ChunkCountMismatch,
    InvalidSha256,
    RecordingCustomerMismatch,
    Sha256Mismatch,
)
from lampo.recordings.store import Chunk, RecordingsStore, audio_field, chunk_field

PARTICIPANT = "recordings"
CATEGORY = Category.CUSTOMER_RELATIONSHIP


# -- ingest -----------------------------------------------------------------------------------


async def call_recorded(store: RecordingsStore, item: Incoming, clock: Clock) -> None:
    """Hold the chunk; once every chunk of the call is held, reassemble them in order, hash the
    audio (and check it against a ``sha256`` the sender announced, if any), store it encrypted
    and drop the chunks. A repeated chunk of a stored recording changes nothing."""
    data = item.event.data
    assert isinstance(data, CallRecorded)
    position = position_of(data)
    # Extension of the public contract, optional: ``sha256`` (hex) of the whole call, on any chunk.
    # The contract model drops unknown fields, so it is read from the envelope.
    raw = item.event.envelope.data
    expected = raw.get("sha256") if isinstance(raw, dict) else None
    if expected is not None and not is_sha256(expected):
        raise InvalidSha256()

    for plan in (await store.recording_plan(data.recording_id), await store.held_plan(data.recording_id)):
        if plan is None:
            continue
        if plan.customer_number != data.customer_number:
            raise RecordingCustomerMismatch()
        if plan.chunk_count != position.count:
            raise ChunkCountMismatch()
    if await store.recording_plan(data.recording_id) is not None:
        return

    cipher = await store.cipher_for_ingest(data.customer_number)
    encrypted = cipher.encrypt(chunk_field(data.recording_id, position.index), data.audio())
    assert encrypted is not None
    chunk = Chunk(
        data.recording_id,
        position.index,
        position.count,
        data.started_at,
        data.duration_s,
        data.media_type,
        expected,
        encrypted,
        clock.now(),
    )
    await store.hold_chunk(data.customer_number, chunk)
    item.span.set_attribute("lampo.recording.chunk_index", position.index)
    item.span.set_attribute("lampo.recording.chunk_count", position.count)

    held = await store.held_chunks(data.recording_id)
    audio = assemble(
        [
            (c.chunk_index, cipher.decrypt_bytes(chunk_field(c.recording_id, c.chunk_index), c.audio) or b"")
            for c in held
        ],
        position.count,
    )
    if audio is None:
        return  # held until the rest arrives
    digest = sha256_hex(audio)
    announced = {c.expected_sha256 for c in held if c.expected_sha256}
    if announced and announced != {digest}:
        raise Sha256Mismatch()  # the completing chunk is refused; the others stay held
    first = held[0]
    sealed = cipher.encrypt(audio_field(data.recording_id), audio)
    assert sealed is not None
    await store.store_recording(data.customer_number, first, size=len(audio), sha256=digest, audio=sealed)
    item.span.set_attribute("lampo.recording.complete", True)


async def email_archived(store: RecordingsStore, item: Incoming) -> None:
    data = item.event.data
    assert isinstance(data, EmailArchived)
    cipher = await store.cipher_for_ingest(data.customer_number)
    key = store.keys.blind_index("message_id", data.message_id)
    field = key.hex()
    await store.add_email(
        data.customer_number,
        message_key=key,
        at=data.at,
        message_id=cipher.encrypt(f"message_id:{field}", data.message_id) or b"",
        subject=cipher.encrypt(f"subject:{field}", data.subject) or b"",
        body=cipher.encrypt(f"body:{field}", data.body_text) or b"",
        size=len(data.subject.encode()) + len(data.body_text.encode()),
    )


def make_inbound_handler(keys: KeyRing, clock: Clock) -> BatchHandler:
    async def handle(conn: asyncpg.Connection, items: list[Incoming]) -> None:
        store = RecordingsStore(conn, keys)
        for item in items:
            if item.event.envelope.type == "call.recorded":
                await call_recorded(store, item, clock)
            elif item.event.envelope.type == "email.archived":
                await email_archived(store, item)

    return handle


# -- privacy tasks ----------------------------------------------------------------------------


class RecordingsTasks:
    """The privacy protocol of the recordings store (category ``customer_relationship``)."""

    def __init__(self, keys: KeyRing, clock: Clock) -> None:
        self.keys = keys
        self.clock = clock

    def participant(self, name: str = PARTICIPANT) -> Participant:
        return Participant(
            name,
            {
                "access": self.access,
                "erasure": self.erasure,
                # No statute keeps call recordings or archived e-mails here: a purge erases them.
                "purge": self.erasure,
                "rectification": self.rectification,
                "restriction": self.restriction,
            },
        )

    async def access(self, conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        """Recordings with their audio (verified against the stored SHA-256, with the file name
        the coordinator gives it in the package), chunks of calls not yet complete, and archived
        e-mails: streamed, one recording's audio in memory at a time, sent as raw bytes beside
        its item (``audio_base64`` in the item when the result is small enough for one record)."""
        if CATEGORY not in task.categories:
            return TaskOutcome(result={})
        return TaskOutcome(stream=self._access_pieces(RecordingsStore(conn, self.keys), task))

    async def _access_pieces(self, store: RecordingsStore, task: PrivacyTask) -> AsyncIterator[Piece]:
        recordings = (CATEGORY.value, "recordings")
        incomplete = (CATEGORY.value, "incomplete_recordings")
        emails = (CATEGORY.value, "emails")
        for path in (recordings, incomplete, emails):
            yield Items(path, [])
        for customer_number in task.subject.customer_numbers:
            cipher = await store.cipher(customer_number)
            if cipher is None:
                continue
            for r in await store.recordings_listed(customer_number):
                blob = await store.audio_of(r["recording_id"])
                audio = cipher.decrypt_bytes(audio_field(r["recording_id"]), blob) or b""
                if sha256_hex(audio) != r["sha256"]:
                    raise TaskFailed(f"recording {r['recording_id']} failed its integrity check")
                item = {
                    "customer_number": customer_number,
                    "recording_id": r["recording_id"],
                    "started_at": r["started_at"].isoformat(),
                    "duration_s": r["duration_s"],
                    "media_type": r["media_type"],
                    "size_bytes": r["size_bytes"],
                    "sha256": r["sha256"],
                    "file_name": file_name(r["recording_id"], r["media_type"]),
                }
                yield Attachment(recordings, item, audio)
            for c in await store.held_chunks_of(customer_number):
                audio = cipher.decrypt_bytes(chunk_field(c.recording_id, c.chunk_index), c.audio) or b""
                item = {
                    "customer_number": customer_number,
                    "recording_id": c.recording_id,
                    "chunk_index": c.chunk_index,
                    "chunk_count": c.chunk_count,
                    "started_at": c.started_at.isoformat(),
                    "media_type": c.media_type,
                }
                yield Attachment(incomplete, item, audio)
            items = []
            for e in await store.emails_of(customer_number):
                field = bytes(e["message_key"]).hex()
                items.append(
                    {
                        "customer_number": customer_number,
                        "message_id": cipher.decrypt(f"message_id:{field}", bytes(e["message_id"])),
                        "at": e["at"].isoformat(),
                        "subject": cipher.decrypt(f"subject:{field}", bytes(e["subject"])),
                        "body_text": cipher.decrypt(f"body:{field}", bytes(e["body"])),
                    }
                )
            yield Items(emails, items)

    async def erasure(self, conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        """Audio, held chunks, e-mails and their metadata deleted; the data key destroyed. The
        count is of recordings (complete or not) and e-mails."""
        if CATEGORY not in task.categories:
            return TaskOutcome()
        store = RecordingsStore(conn, self.keys)
        erased = 0
        for customer_number in task.subject.customer_numbers:
            erased += len(await store.recordings_of(customer_number))
            erased += len({c.recording_id for c in await store.held_chunks_of(customer_number)})
            erased += len(await store.emails_of(customer_number))
            await store.forget_customer(customer_number)
        return TaskOutcome(erased={CATEGORY.value: erased})

    async def rectification(self, conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        """Nothing to change, by design: a recording or an archived e-mail is a record of what was
        said and written at the time; corrections of the facts in it (names, contact details)
        carry the registry's sections and are made there."""
        return TaskOutcome()

    async def restriction(self, conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        """Art. 18: the subject's recordings and e-mails stay stored but leave every normal query."""
        if CATEGORY not in task.categories:
            return TaskOutcome()
        store = RecordingsStore(conn, self.keys)
        for customer_number in task.subject.customer_numbers:
            await store.restrict(customer_number, self.clock.now())
        return TaskOutcome()
