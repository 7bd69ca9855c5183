"""How the status page names what the coordinator reports (msgids; translated on the page)."""

from __future__ import annotations

from typing import Final

from lampo.web.i18n import N_

KIND_TITLES: Final = {
    "access": N_("Access to your data"),
    "portability": N_("Your data in a machine-readable form"),
    "rectification": N_("Correction of your data"),
    "erasure": N_("Erasure of your data"),
    "objection": N_("Objection to processing"),
    "restriction": N_("Restriction of processing"),
}
KIND_DESCRIPTIONS: Final = {
    "access": N_("A copy of the data we hold about you, and how we use it (GDPR Art. 15)."),
    "portability": N_("The data you gave us, in a machine-readable form you can take elsewhere (Art. 20)."),
    "rectification": N_("Tell us what is wrong and what it should be (Art. 16)."),
    "erasure": N_("Erase your data, except what the law obliges us to keep (Art. 17)."),
    "objection": N_("Object to marketing, profiling or other processing of your data (Art. 21)."),
    "restriction": N_(
        "Restrict the processing of your data while a matter is settled, or lift a restriction (Art. 18)."
    ),
}
STATUSES: Final = {
    "received": N_("Received"),
    "awaiting_approval": N_("Waiting for approval"),
    "accepted": N_("Being handled"),
    "in_progress": N_("Being handled"),
    "completed": N_("Completed"),
    "completed_with_retention": N_("Completed, some data kept"),
    "failed": N_("Delayed, being put right"),
    "rejected": N_("Rejected"),
    "cancelled": N_("Cancelled"),
}
TASK_STATUSES: Final = {
    "open": N_("in progress"),
    "done": N_("done"),
    "failed": N_("delayed"),
    "cancelled": N_("cancelled"),
    "superseded": N_("replaced"),
}
REJECTIONS: Final = {
    "unverified": N_("Your identity could not be verified."),
    "no_match": N_("We found no customer with your details."),
    "invalid": N_("The request was incomplete."),
    "denied": N_("The request was refused."),
}
PARTICIPANTS: Final = {
    "registry": N_("Customer register"),
    "billing": N_("Invoices and payments"),
    "recordings": N_("Call recordings"),
    "consent": N_("Consents and objections"),
}
CATEGORIES: Final = {
    "basic": N_("basic information"),
    "contact_person": N_("contact person information"),
    "contact": N_("contact information"),
    "billing": N_("billing information"),
    "customer_relationship": N_("customer relationship information"),
    "services": N_("service information"),
    "consumption": N_("consumption information"),
    "other_consented": N_("other information given with your consent"),
}
ACTIONS: Final = {
    "rectified": N_("Corrected"),
    "not_altered": N_("Not changed"),
    "restricted": N_("Processing restricted"),
    "restriction_lifted": N_("Restriction lifted"),
    "objection_recorded": N_("Objection recorded"),
    "profile_deleted": N_("Profile deleted"),
    "marketing_suppressed": N_("Marketing stopped"),
    "processing_restricted": N_("Processing restricted"),
    "nothing_held": N_("Nothing held"),
}
OBJECTION_SCOPES: Final = {
    "direct_marketing": N_("Direct marketing"),
    "profiling": N_("Profiling"),
    "automated_decisions": N_("Automated decisions"),
    "processing": N_("All processing based on our legitimate interest"),
}
VERIFIED_BY: Final = {
    "email_code": N_("a code sent by e-mail"),
    "strong_electronic": N_("strong electronic identification"),
}
