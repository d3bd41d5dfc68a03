"""The gate: which partners may hear about a crew member's change.

Pure. A partner receives an event only if (1) the crew member is on that partner's
fleet (serving, now, on one of its vessels), (2) the partner holds the scope the
event type requires, and (3) the crew member's consent allows sharing with that
partner. The checks run in that order and the first that fails names the reason,
so a withheld event is explained by exactly one gate.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class Withheld(enum.StrEnum):
    """Why a partner did not get an event."""

    FLEET = "not_on_fleet"
    SCOPE = "missing_scope"
    CONSENT = "no_consent"


@dataclass(frozen=True, slots=True)
class Standing:
    """What the gate needs to know about one partner and one crew member."""

    partner_id: str
    tenant: str
    on_fleet: bool
    scopes: frozenset[str]
    consent: bool


@dataclass(frozen=True, slots=True)
class Decision:
    partner_id: str
    tenant: str
    withheld: Withheld | None

    @property
    def allowed(self) -> bool:
        return self.withheld is None


def decide(standing: Standing, scope: str) -> Decision:
    """Whether the partner of *standing* may receive an event that requires *scope*."""
    withheld: Withheld | None = None
    if not standing.on_fleet:
        withheld = Withheld.FLEET
    elif scope not in standing.scopes:
        withheld = Withheld.SCOPE
    elif not standing.consent:
        withheld = Withheld.CONSENT
    return Decision(standing.partner_id, standing.tenant, withheld)


def decide_all(standings: Iterable[Standing], scope: str) -> list[Decision]:
    """One decision per partner, in the order given."""
    return [decide(standing, scope) for standing in standings]
