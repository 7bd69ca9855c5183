"""Mail to the subject about their requests: received, rejected, extended (with the reason),
completed, and a restriction about to be lifted (Art. 18(3)).

A consumer of dsar.events.v1 (the runtime's reliable consumer: inbox deduplication) queues one
mail per event about a request submitted here, in the consumer's transaction; ``received`` once
per request (on ``dsar.accepted`` or ``dsar.awaiting_approval``, whichever comes first). A job
on the runtime's scheduler sends what is due, looking the address up in the register at send
time (none is stored here), in the language the subject chose when submitting; a failed send is
tried again with backoff. After an erasure the register holds no address: that mail is given up
(``no_address``) and the status page says the rest.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from lampo.mail import MailFailed
from lampo.messaging.consumer import BatchHandler, Incoming
from lampo.portal import store
from lampo.portal.clients import Unavailable
from lampo.portal.letters import request_letter

if TYPE_CHECKING:
    from lampo.portal.app import Portal

log = logging.getLogger("lampo.portal")
MAX_ATTEMPTS = 12


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def mail_for(event_type: str, data: Any) -> tuple[str, dict[str, Any]] | None:  # noqa: PLR0911 (one per event type)
    """(what, the facts the letter needs) for an event of dsar.events.v1, or None (no mail)."""
    if event_type == "dsar.accepted":
        return "received", {"due_at": _iso(data.due_at)}
    if event_type == "dsar.awaiting_approval":
        return "received", {}
    if event_type == "dsar.rejected":
        return "rejected", {"reason": data.reason}
    if event_type == "dsar.extended":
        return "extended", {"due_at": _iso(data.due_at), "reason": data.reason}
    if event_type == "dsar.completed":
        package = data.package
        return "completed", {
            "status": data.status,
            "completed_at": _iso(data.completed_at),
            "package": package is not None,
            "package_expires_at": _iso(package.expires_at) if package is not None else None,
        }
    if event_type == "dsar.restriction_lift_notice":
        return "lift_notice", {"lift_at": _iso(data.lift_at)}
    return None


def events_handler(portal: Portal) -> BatchHandler:
    async def handle(conn: asyncpg.Connection, items: list[Incoming]) -> None:
        ids = [str(item.event.data.request_id) for item in items if hasattr(item.event.data, "request_id")]
        ours = await store.known_requests(conn, ids) if ids else set()
        now = portal.runtime.clock.now()
        for item in items:
            data = item.event.data
            request_id = getattr(data, "request_id", None)
            if request_id not in ours:
                continue  # another channel's request, or none of this portal's
            mail = mail_for(item.event.envelope.type, data)
            if mail is None:
                continue
            what, facts = mail
            # ``received`` once per request, whichever of its events says so first.
            key = f"{request_id}:received" if what == "received" else item.id
            await store.queue_mail(conn, key, request_id=request_id, what=what, data=facts, now=now)

    return handle


async def send_due_mail(portal: Portal) -> int:
    """Send the mail that is due; returns how many went out."""
    sent = 0
    clock = portal.runtime.clock
    async with portal.runtime.pool.acquire() as conn, conn.transaction():
        for mail in await store.due_mail(conn, clock.now()):
            try:
                address = await portal.registry_api.email_of(mail.customer_number)
                if address is None:
                    await store.mail_failed(conn, mail.event_id, clock.now(), "no_address")
                    continue
                data = dict(mail.data)
                if mail.what == "received" and not data.get("due_at"):
                    view = await portal.dsar_api.request(mail.request_id)
                    data["due_at"] = view["due_at"] if view else None
                lang = mail.language
                letter = request_letter(
                    portal.site.translations[lang], lang, mail.what, request_id=mail.request_id, kind=mail.kind,
                    data=data, status_url=f"{portal.settings.portal_url.rstrip('/')}/requests/{mail.request_id}",
                )  # fmt: skip
                await portal.mailer.send(address, letter.subject, letter.text, lang=lang)
            except (Unavailable, MailFailed) as e:
                give_up = type(e).__name__ if mail.attempts + 1 >= MAX_ATTEMPTS else None
                await store.mail_failed(conn, mail.event_id, clock.now() + store.backoff(mail.attempts), give_up)
                log.warning("mail about a request not sent (%s); attempt %d", type(e).__name__, mail.attempts + 1)
                continue
            await store.mail_sent(conn, mail.event_id, clock.now())
            sent += 1
    return sent
