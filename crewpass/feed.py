"""The CrewPass watches: which changes are which of the five catalogue events.

Declared on :class:`app.changefeed.ChangeFeed`, the same public API any integrator
uses; install them with::

    feed = ChangeFeed.for_hookline(hookline)
    crewpass.feed.watch_crewpass(feed)
    feed.install(SessionFactory)

============================  ==========================================================
``crew.document.processed``   a document's verification status leaves processing
                              (``pending``/``processing`` → ``verified``/``rejected``)
``crew.document.updated``     any other change of a document's verification status
``crew.compliance.changed``   the crew member's compliance ``overall_status`` changes
``crew.status.changed``       identity verification or background-check status changes
``crew.profile.updated``      a profile field changes (names, rank, nationality, contact)
============================  ==========================================================

Anything else (internal notes, the provider behind a check, a document number, fleet
and consent changes) emits nothing. Every event goes only to the partners the gate
lets through (:mod:`crewpass.audience`).
"""

from __future__ import annotations

from app.changefeed import Change, ChangeFeed, Watch
from crewpass import payloads
from crewpass.audience import recipients_for
from crewpass.models import CrewMember, Document
from crewpass.vocabulary import (
    COMPLIANCE_CHANGED_EVENT,
    DOCUMENT_IN_PROCESSING,
    DOCUMENT_PROCESSED,
    DOCUMENT_PROCESSED_EVENT,
    DOCUMENT_UPDATED_EVENT,
    PROFILE_FIELDS,
    PROFILE_UPDATED_EVENT,
    STATUS_CHANGED_EVENT,
)


def finished_processing(change: Change) -> bool:
    """A document's status moved from processing to a verdict."""
    return (change.old("verification_status") in DOCUMENT_IN_PROCESSING
            and change.new("verification_status") in DOCUMENT_PROCESSED)


def other_document_change(change: Change) -> bool:
    return not finished_processing(change)


def watch_crewpass(feed: ChangeFeed) -> list[Watch]:
    """Register the five CrewPass watches on *feed*; returns them."""
    return [
        feed.watch(Document, attributes=["verification_status"], event_type=DOCUMENT_PROCESSED_EVENT,
                   fields=payloads.DOCUMENT_FIELDS, when=finished_processing,
                   payload=payloads.document, recipients=recipients_for(DOCUMENT_PROCESSED_EVENT)),
        feed.watch(Document, attributes=["verification_status"], event_type=DOCUMENT_UPDATED_EVENT,
                   fields=payloads.DOCUMENT_FIELDS, when=other_document_change,
                   payload=payloads.document, recipients=recipients_for(DOCUMENT_UPDATED_EVENT)),
        feed.watch(CrewMember, attributes=["compliance_status"], event_type=COMPLIANCE_CHANGED_EVENT,
                   fields={"crew_id": "id"}, payload=payloads.compliance,
                   recipients=recipients_for(COMPLIANCE_CHANGED_EVENT)),
        feed.watch(CrewMember, attributes=["verification_status", "background_check_status"],
                   event_type=STATUS_CHANGED_EVENT, fields=payloads.STATUS_FIELDS,
                   payload=payloads.status, recipients=recipients_for(STATUS_CHANGED_EVENT)),
        feed.watch(CrewMember, attributes=list(PROFILE_FIELDS), event_type=PROFILE_UPDATED_EVENT,
                   fields=payloads.PROFILE_VALUES, payload=payloads.profile,
                   recipients=recipients_for(PROFILE_UPDATED_EVENT)),
    ]
