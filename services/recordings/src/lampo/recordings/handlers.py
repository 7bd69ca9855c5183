"""Handlers of the recordings store: inbound events and privacy tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg

from lampo.clock import Clock
from lampo.contracts.categories import Category
from lampo.contracts.privacy import Effect, PrivacyTask
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
# Every item of an access result says where it came from and on what basis it is kept: the
# controller recorded the calls and archived the mail on its legitimate interest, so the
# coordinator's portability filter (subject-provided, consent or contract) leaves them out.
PROVENANCE = {"origin": "controller", "legal_basis": "legitimate_interest"}
RECORD_NOT_ALTERED = (
    "GDPR Art. 16: a call recording or an archived e-mail accurately records what was said or written"
    " at the time; archived correspondence is not rewritten (the correction is made in the customer register)"
)
OBJECTION_RESTRICTS = (
    "GDPR Art. 21(1) and 18(1)(d): recordings and archived e-mails are kept on legitimate interest;"
    " restricted until the objection is decided"
)


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
                "objection": self.objection,
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
                    **PROVENANCE,
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
                    **PROVENANCE,
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
                        **PROVENANCE,
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

    async def _held(self, store: RecordingsStore, task: PrivacyTask) -> dict[str, int]:
        """Items held per customer number the store knows (recordings, incomplete ones, e-mails)."""
        held: dict[str, int] = {}
        for customer_number in task.subject.customer_numbers:
            count = await store.held_counts(customer_number)
            if count is not None:
                held[customer_number] = count
        return held

    async def rectification(self, conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        """Nothing is rewritten, and the answer says so: a call recording or an archived e-mail
        (its Message-ID, subject and body, the only copies of names or addresses here) is a
        record of what was said and written at the time. The store keeps no metadata of the
        kind a correction touches (no name, address or e-mail field of its own), so there is
        nothing mutable to follow; the corrected data lives in the register."""
        if CATEGORY not in task.categories:
            return TaskOutcome(effects=[_nothing_held()])
        items = sum((await self._held(RecordingsStore(conn, self.keys), task)).values())
        if not items:
            return TaskOutcome(effects=[_nothing_held()])
        return TaskOutcome(
            effects=[Effect(action="not_altered", category=CATEGORY, items=items, legal_basis=RECORD_NOT_ALTERED)]
        )

    async def restriction(self, conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        """Art. 18: the subject's recordings and e-mails stay stored but leave every normal
        query (the mark is on the customer, so what arrives later is restricted too). ``lift``
        removes the mark."""
        if CATEGORY not in task.categories:
            return TaskOutcome(effects=[_nothing_held()])
        store = RecordingsStore(conn, self.keys)
        held = await self._held(store, task)
        if not held:
            return TaskOutcome(effects=[_nothing_held()])
        now = self.clock.now()
        for customer_number in held:
            if task.lift:
                await store.lift_restriction(customer_number)
            else:
                await store.restrict(customer_number, now)
        action = "restriction_lifted" if task.lift else "restricted"
        return TaskOutcome(effects=[Effect(action=action, category=CATEGORY, items=sum(held.values()), at=now)])

    async def objection(self, conn: asyncpg.Connection, task: PrivacyTask) -> TaskOutcome:
        """Art. 21: recordings are not used for marketing, profiling or automated decisions, so
        those scopes find nothing here. They are kept on the company's legitimate interest
        (evidence of what was agreed, service quality): an objection to processing restricts
        them until it is decided (Art. 18(1)(d)); a restriction lift removes that mark too."""
        if task.scope != "processing" or CATEGORY not in task.categories:
            return TaskOutcome(effects=[_nothing_held()])
        store = RecordingsStore(conn, self.keys)
        held = await self._held(store, task)
        if not held:
            return TaskOutcome(effects=[_nothing_held()])
        now = self.clock.now()
        for customer_number in held:
            await store.restrict(customer_number, now)
        effect = Effect(
            action="processing_restricted",
            category=CATEGORY,
            items=sum(held.values()),
            legal_basis=OBJECTION_RESTRICTS,
            at=now,
        )
        return TaskOutcome(effects=[effect])


def _nothing_held() -> Effect:
    return Effect(action="nothing_held", category=CATEGORY)
