"""The CrewPass gate: fleet, then scope, then consent; the first that fails names the reason."""

from __future__ import annotations

from typing import Any

import pytest

from crewpass.gating import Decision, Standing, Withheld, decide, decide_all
from crewpass.vocabulary import EVENT_SCOPES, SCOPES

DOCUMENTS = "crew:documents:read"
STATUS = "crew:status:subscribe"


def standing(partner_id: str = "prt_1", *, on_fleet: bool = True, scopes: tuple[str, ...] = (DOCUMENTS,),
             consent: bool = True, tenant: str | None = None) -> Standing:
    return Standing(partner_id=partner_id, tenant=tenant or f"tenant-of-{partner_id}", on_fleet=on_fleet,
                    scopes=frozenset(scopes), consent=consent)


class TestEachGate:
    """A partner hears about a change only on the fleet, with the scope, and with consent."""

    def test_a_partner_passing_every_gate_is_allowed(self) -> None:
        decision = decide(standing(), DOCUMENTS)
        assert decision == Decision("prt_1", "tenant-of-prt_1", None)
        assert decision.allowed

    def test_a_crew_member_off_the_partners_fleet_is_withheld_as_not_on_fleet(self) -> None:
        decision = decide(standing(on_fleet=False), DOCUMENTS)
        assert decision.withheld is Withheld.FLEET
        assert not decision.allowed

    def test_a_partner_without_the_events_scope_is_withheld_as_missing_scope(self) -> None:
        decision = decide(standing(scopes=(DOCUMENTS,)), STATUS)
        assert decision.withheld is Withheld.SCOPE
        assert not decision.allowed

    def test_a_partner_with_no_scopes_at_all_is_withheld_as_missing_scope(self) -> None:
        assert decide(standing(scopes=()), DOCUMENTS).withheld is Withheld.SCOPE

    def test_a_crew_member_without_consent_is_withheld_as_no_consent(self) -> None:
        decision = decide(standing(consent=False), DOCUMENTS)
        assert decision.withheld is Withheld.CONSENT
        assert not decision.allowed

    def test_other_scopes_do_not_stand_in_for_the_one_required(self) -> None:
        others = tuple(s for s in SCOPES if s != STATUS)
        assert decide(standing(scopes=others), STATUS).withheld is Withheld.SCOPE

    @pytest.mark.parametrize("event_type", sorted(EVENT_SCOPES))
    def test_each_event_needs_exactly_its_own_scope(self, event_type: str) -> None:
        scope = EVENT_SCOPES[event_type]
        assert decide(standing(scopes=(scope,)), scope).allowed
        others = tuple(s for s in SCOPES if s != scope)
        assert decide(standing(scopes=others), scope).withheld is Withheld.SCOPE

    def test_the_decision_names_the_partner_and_its_tenant(self) -> None:
        decision = decide(standing("prt_9", tenant="acme", consent=False), DOCUMENTS)
        assert (decision.partner_id, decision.tenant) == ("prt_9", "acme")

    def test_the_reasons_are_the_words_written_to_the_withheld_log(self) -> None:
        assert [str(w) for w in Withheld] == ["not_on_fleet", "missing_scope", "no_consent"]


class TestOrderOfChecks:
    """Fleet is checked before scope, scope before consent: a withheld event has exactly one reason."""

    @pytest.mark.parametrize(("facts", "reason"), [
        ({"on_fleet": False, "scopes": (), "consent": False}, Withheld.FLEET),
        ({"on_fleet": False, "scopes": (), "consent": True}, Withheld.FLEET),
        ({"on_fleet": False, "scopes": (DOCUMENTS,), "consent": False}, Withheld.FLEET),
        ({"on_fleet": True, "scopes": (), "consent": False}, Withheld.SCOPE),
    ])
    def test_the_first_failing_gate_is_the_reason(self, facts: dict[str, Any], reason: Withheld) -> None:
        assert decide(standing(**facts), DOCUMENTS).withheld is reason

    def test_fleet_comes_before_scope(self) -> None:
        assert decide(standing(on_fleet=False, scopes=()), DOCUMENTS).withheld is Withheld.FLEET

    def test_scope_comes_before_consent(self) -> None:
        assert decide(standing(scopes=(), consent=False), DOCUMENTS).withheld is Withheld.SCOPE

    def test_fleet_comes_before_consent(self) -> None:
        assert decide(standing(on_fleet=False, consent=False), DOCUMENTS).withheld is Withheld.FLEET


class TestDecideAll:
    """One decision per partner, in the order the standings were given."""

    def test_one_decision_per_standing_in_order(self) -> None:
        standings = [standing("prt_c"), standing("prt_a", on_fleet=False), standing("prt_b", consent=False),
                     standing("prt_d", scopes=())]
        decisions = decide_all(standings, DOCUMENTS)
        assert [(d.partner_id, d.withheld) for d in decisions] == [
            ("prt_c", None), ("prt_a", Withheld.FLEET), ("prt_b", Withheld.CONSENT),
            ("prt_d", Withheld.SCOPE)]

    def test_each_decision_is_the_one_decide_makes(self) -> None:
        standings = [standing("prt_1"), standing("prt_2", scopes=(STATUS,)), standing("prt_3", consent=False)]
        for scope in SCOPES:
            assert decide_all(standings, scope) == [decide(s, scope) for s in standings]

    def test_no_standings_mean_no_decisions(self) -> None:
        assert decide_all([], DOCUMENTS) == []

    def test_any_iterable_of_standings_is_taken(self) -> None:
        decisions = decide_all((standing(f"prt_{n}") for n in range(3)), DOCUMENTS)
        assert [d.partner_id for d in decisions] == ["prt_0", "prt_1", "prt_2"]
        assert all(d.allowed for d in decisions)
