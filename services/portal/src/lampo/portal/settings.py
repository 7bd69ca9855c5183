"""Settings of the privacy centre (``LAMPO_*`` environment variables)."""

from __future__ import annotations

from typing import ClassVar

from lampo.crypto import derive_key
from lampo.settings import ServiceSettings


class PortalSettings(ServiceSettings):
    service: ClassVar[str] = "portal"
    default_http_port: ClassVar[int] = 8090

    # The services the portal calls as its ``portal`` caller (LAMPO_API_TOKEN): the registry for
    # the e-mail address a code goes to, the coordinator for requests and packages.
    registry_url: str = "http://127.0.0.1:8101"
    dsar_url: str = "http://127.0.0.1:8103"
    upstream_timeout_s: float = 10.0

    # The portal's own address, for the links in its mail (the status page of a request).
    portal_url: str = "http://127.0.0.1:8090"

    # How long a verification holds: after it the subject verifies again before submitting.
    verified_ttl_s: int = 30 * 60

    # One-time code by e-mail: its length in digits, its lifetime, the wrong tries that lock it,
    # and how many codes one customer number may be sent within the window (no mail bombing).
    code_digits: int = 6
    code_ttl_s: int = 10 * 60
    code_max_attempts: int = 5
    code_sends_per_window: int = 3
    code_send_window_s: int = 15 * 60

    # Strong electronic identification: Suomi.fi e-Identification in production. The local
    # stand-in (a page that says it is not real identification) only when this says so: on in
    # ``make up``, off by default and in docker-compose.yml.
    strong_id_standin: bool = False

    # Outgoing mail (lampo.mail, From the controller's address): the SMTP server.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    # How often queued mail is sent (and failed sends tried again).
    mail_interval_s: float = 1.0

    def code_key(self) -> bytes:
        """The HMAC key of the one-time codes (only their MACs are stored)."""
        return derive_key(self.stable_key_bytes(), b"portal-one-time-codes")
