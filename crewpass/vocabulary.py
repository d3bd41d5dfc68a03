"""The CrewPass vocabularies: statuses, event types and the scope each event needs.

Pure constants, as CrewPass publishes them. Payloads carry only these words: never a
provider's own status text, never the provider's name.
"""

from __future__ import annotations

#: A crew member's compliance ``overall_status``.
OVERALL_STATUSES = ("compliant", "at_risk", "non_compliant", "no_role")
#: Background-check status (``None`` while no check was ever requested).
BACKGROUND_CHECK_STATUSES = ("pending", "awaiting", "in-progress", "completed", "declined", "expired")
#: Identity verification of the crew member.
VERIFICATION_STATUSES = ("unverified", "pending", "verified", "failed")
#: A document's (certificate's) verification status.
DOCUMENT_STATUSES = ("pending", "processing", "verified", "rejected", "expired", "revoked")
#: Statuses a document is in while CrewPass still processes it.
DOCUMENT_IN_PROCESSING = frozenset({"pending", "processing"})
#: Statuses that end processing: moving into one from processing is ``crew.document.processed``.
DOCUMENT_PROCESSED = frozenset({"verified", "rejected"})

DOCUMENT_PROCESSED_EVENT = "crew.document.processed"
DOCUMENT_UPDATED_EVENT = "crew.document.updated"
COMPLIANCE_CHANGED_EVENT = "crew.compliance.changed"
STATUS_CHANGED_EVENT = "crew.status.changed"
PROFILE_UPDATED_EVENT = "crew.profile.updated"

#: Catalogue v1 and the scope each event requires.
EVENT_SCOPES = {
    DOCUMENT_PROCESSED_EVENT: "crew:documents:read",
    DOCUMENT_UPDATED_EVENT: "crew:documents:read",
    COMPLIANCE_CHANGED_EVENT: "crew:compliance:read",
    STATUS_CHANGED_EVENT: "crew:status:subscribe",
    PROFILE_UPDATED_EVENT: "crew:profile:read",
}
EVENT_TYPES = tuple(EVENT_SCOPES)
SCOPES = tuple(dict.fromkeys(EVENT_SCOPES.values()))

#: Profile attributes whose change is ``crew.profile.updated``.
PROFILE_FIELDS = ("given_name", "family_name", "rank", "nationality", "phone", "email")
#: Profile values a ``crew.profile.updated`` payload carries; contact details are named, never sent.
SHARED_PROFILE_FIELDS = ("given_name", "family_name", "rank", "nationality")
