"""The data of each CrewPass event, built from an allow-list of fields.

Pure: each builder takes the :class:`~app.changefeed.Change` the change feed captured
and names every key it sends. Nothing is copied wholesale from a row, so a column
added later (or one that must stay inside, like the provider that ran a check) is
never sent by accident.
"""

from __future__ import annotations

from typing import Any

from app.changefeed import Change
from crewpass.vocabulary import SHARED_PROFILE_FIELDS

#: ``{payload key: Document attribute}`` the document events read.
DOCUMENT_FIELDS = {"crew_id": "crew_id", "document_id": "id", "document_type": "document_type",
                   "expires_on": "expires_on"}
#: ``{payload key: CrewMember attribute}`` the crew events read (the profile event: its shared values).
STATUS_FIELDS = {"crew_id": "id", "verification_status": "verification_status",
                 "background_check_status": "background_check_status"}
PROFILE_VALUES = {"crew_id": "id", **{name: name for name in SHARED_PROFILE_FIELDS}}


def document(change: Change) -> dict[str, Any]:
    """``crew.document.processed`` and ``crew.document.updated``."""
    return {
        "crew_id": change.values["crew_id"],
        "document_id": change.values["document_id"],
        "document_type": change.values["document_type"],
        "verification_status": change.new("verification_status"),
        "previous_status": change.old("verification_status"),
        "expires_on": change.values["expires_on"],
    }


def compliance(change: Change) -> dict[str, Any]:
    """``crew.compliance.changed``: the new and previous ``overall_status``."""
    return {
        "crew_id": change.values["crew_id"],
        "overall_status": change.new("compliance_status"),
        "previous_status": change.old("compliance_status"),
    }


def status(change: Change) -> dict[str, Any]:
    """``crew.status.changed``: both statuses now, and the previous value of each that changed."""
    return {
        "crew_id": change.values["crew_id"],
        "verification_status": change.values["verification_status"],
        "background_check_status": change.values["background_check_status"],
        "previous": {name: old for name, (old, _new) in change.changes.items()},
    }


def profile(change: Change) -> dict[str, Any]:
    """``crew.profile.updated``: which fields changed, and the shared profile values.

    Contact details (phone, email) are named in ``updated_fields`` when they change,
    but their values are not sent: a partner reads them through the API it is
    authorised for.
    """
    return {
        "crew_id": change.values["crew_id"],
        "updated_fields": sorted(change.changes),
        "profile": {name: change.values[name] for name in SHARED_PROFILE_FIELDS},
    }
