"""What the privacy centre writes to a subject by e-mail, in the language they chose: as little
personal data as the message needs (a request id, its kind, dates, a link to the status page;
a one-time code). Texts are msgids of the portal's catalogues."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from babel.support import Translations

from lampo.web.i18n import N_, format_date

KIND_NAMES: Final = {
    "access": N_("access to your data"),
    "portability": N_("your data in a machine-readable form"),
    "rectification": N_("correction of your data"),
    "erasure": N_("erasure of your data"),
    "objection": N_("objection to processing"),
    "restriction": N_("restriction of processing"),
}


@dataclass(frozen=True)
class Letter:
    subject: str
    text: str


def _date(value: Any, lang: str) -> str:
    return format_date(value, lang, "long")


def code_letter(t: Translations, lang: str, code: str, minutes: int) -> Letter:
    _ = t.gettext
    return Letter(
        _("Your verification code for the privacy centre"),
        "\n\n".join([
            _("Your one-time code for the Muuramen Lämpö privacy centre is %(code)s.") % {"code": code},
            _("It is valid for %(minutes)d minutes. Do not give it to anyone.") % {"minutes": minutes},
            _("If you did not ask for it, you need not do anything: without the code nobody can act in your name."),
        ]),
    )  # fmt: skip


def request_letter(
    t: Translations, lang: str, what: str, *, request_id: str, kind: str, data: dict[str, Any], status_url: str
) -> Letter:
    """The mail about one event of a request (``what``: received, rejected, extended, completed, lift_notice)."""
    _ = t.gettext
    name = _(KIND_NAMES.get(kind, kind))
    ref = _("Request %(request_id)s: %(kind)s.") % {"request_id": request_id, "kind": name}
    see = _("See the request and its status: %(url)s") % {"url": status_url}
    if what == "received":
        subject = _("We received your request")
        lines = [ref, _("We will answer by %(date)s at the latest.") % {"date": _date(data.get("due_at"), lang)}]
        if kind == "erasure":
            lines.append(
                _("Once your data is erased we can no longer write to you: the status page shows the outcome.")
            )
    elif what == "extended":
        subject = _("We need more time for your request")
        lines = [
            ref,
            _("We have extended the time to answer to %(date)s.") % {"date": _date(data["due_at"], lang)},
            _("The reason: %(reason)s") % {"reason": data.get("reason") or "-"},
        ]
    elif what == "completed":
        subject = _("Your request has been handled")
        lines = [ref, _("We handled your request on %(date)s.") % {"date": _date(data["completed_at"], lang)}]
        if data.get("package"):
            lines.append(_("Your data is ready to download on the status page until %(date)s.")
                         % {"date": _date(data["package_expires_at"], lang)} if data.get("package_expires_at")
                         else _("Your data is ready to download on the status page."))  # fmt: skip
    elif what == "rejected":
        subject = _("We could not take your request")
        lines = [ref, _("The status page says why, and what you can do.")]
    elif what == "lift_notice":
        subject = _("The restriction of processing will be lifted")
        lines = [ref, _("As you asked, the restriction of processing of your data will be lifted on %(date)s.")
                 % {"date": _date(data["lift_at"], lang)}]  # fmt: skip
    else:
        raise ValueError(f"no letter for {what!r}")
    return Letter(
        subject, "\n\n".join([*lines, see, _("This message was sent automatically. Please do not reply to it.")])
    )
