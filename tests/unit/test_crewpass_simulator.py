"""The fleet simulator: a seeded world where every gate has something to withhold, changing step by step."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from crewpass.audience import standings
from crewpass.gating import Withheld, decide
from crewpass.models import CrewMember, Document, Partner, create_tables
from crewpass.simulator import (
    DEMO_PARTNERS,
    PROVIDERS,
    STEP_WEIGHTS,
    FleetSimulator,
    World,
    next_background_check,
    next_compliance,
    next_verification,
    populate,
)
from crewpass.vocabulary import (
    BACKGROUND_CHECK_STATUSES,
    EVENT_SCOPES,
    OVERALL_STATUSES,
    VERIFICATION_STATUSES,
)

TENANTS = {spec.key: f"tenant-{spec.key}" for spec in DEMO_PARTNERS}


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    create_tables(engine)
    yield engine
    engine.dispose()


def world_on(engine: Engine, seed: int = 7) -> tuple[sessionmaker[Session], World]:
    sessions = sessionmaker(engine)
    return sessions, populate(sessions, TENANTS, seed=seed)


class TestPopulate:
    def test_it_creates_the_partners_with_their_tenants_vessels_and_crew(self, engine: Engine) -> None:
        sessions, world = world_on(engine)
        with sessions() as session:
            tenants = set(session.scalars(select(Partner.tenant)))
            documents = session.scalars(select(Document)).all()
        assert tenants == set(TENANTS.values())
        assert set(world.partners) == set(TENANTS)
        assert len(world.vessels) == sum(len(spec.vessels) for spec in DEMO_PARTNERS)
        assert len(world.crew) == 12
        assert len(documents) == 24
        assert {d.verification_status for d in documents} == {"verified", "pending"}

    def test_every_gate_withholds_something_from_the_start(self, engine: Engine) -> None:
        sessions, world = world_on(engine)
        reasons: set[Withheld] = set()
        with sessions() as session:
            for crew_id in world.crew:
                for standing in standings(session, crew_id):
                    for scope in EVENT_SCOPES.values():
                        withheld = decide(standing, scope).withheld
                        if withheld is not None:
                            reasons.add(withheld)
        assert reasons == set(Withheld)

    def test_every_crew_member_is_heard_by_at_least_one_partner_for_some_event(
            self, engine: Engine) -> None:
        sessions, world = world_on(engine)
        with sessions() as session:
            heard = [any(decide(s, scope).allowed for s in standings(session, crew_id)
                         for scope in EVENT_SCOPES.values()) for crew_id in world.crew]
        assert sum(heard) >= len(world.crew) - 3


class TestSteps:
    def test_the_same_seed_makes_the_same_changes(self) -> None:
        runs = []
        for _ in range(2):
            engine = create_engine("sqlite://", poolclass=StaticPool,
                                   connect_args={"check_same_thread": False})
            create_tables(engine)
            sessions, world = world_on(engine)
            simulator = FleetSimulator(sessions, world, seed=3)
            runs.append([(world.crew.index(s.crew_id), s.kind, s.summary)
                         for s in (simulator.step() for _ in range(40))])
            engine.dispose()
        assert runs[0] == runs[1]

    def test_a_compliance_step_commits_a_different_overall_status(self, engine: Engine) -> None:
        sessions, world = world_on(engine)
        simulator = FleetSimulator(sessions, world, seed=5)
        checked = 0
        for _ in range(60):
            with sessions() as session:
                before = dict(session.execute(select(CrewMember.id, CrewMember.compliance_status)).all())
            step = simulator.step()
            if step.kind != "compliance":
                continue
            with sessions() as session:
                now = session.scalar(select(CrewMember.compliance_status)
                                     .where(CrewMember.id == step.crew_id))
            assert now != before[step.crew_id]
            assert step.summary.endswith(f"is now {now}")
            checked += 1
        assert checked >= 3

    def test_a_step_reports_the_change_it_made_even_when_it_falls_back_to_an_upload(
            self, engine: Engine) -> None:
        sessions, world = world_on(engine)
        simulator = FleetSimulator(sessions, world, seed=11)
        steps = [simulator.step() for _ in range(300)]
        with sessions() as session:
            documents = len(session.scalars(select(Document)).all())
        assert documents == 24 + sum(1 for s in steps if s.kind == "document_uploaded")
        assert all(s.publishes == (s.kind not in {"document_uploaded", "internal_note", "consent",
                                                  "transfer"}) for s in steps)

    def test_a_long_run_makes_every_kind_of_change(self, engine: Engine) -> None:
        sessions, world = world_on(engine)
        simulator = FleetSimulator(sessions, world, seed=11)
        kinds = {simulator.step().kind for _ in range(300)}
        assert kinds == set(STEP_WEIGHTS)

    def test_verified_documents_name_a_provider_only_in_the_internal_column(
            self, engine: Engine) -> None:
        sessions, world = world_on(engine)
        simulator = FleetSimulator(sessions, world, seed=11)
        for _ in range(100):
            simulator.step()
        with sessions() as session:
            verified = session.scalars(select(Document).where(
                Document.verification_status.in_(["verified", "rejected"]))).all()
        assert verified and all(d.verified_by in PROVIDERS for d in verified)


class TestLifeCycles:
    def test_a_background_check_moves_through_the_vocabulary(self) -> None:
        rng = random.Random(1)
        status: str | None = None
        seen = set()
        for _ in range(200):
            status = next_background_check(status, rng)
            seen.add(status)
        assert seen == set(BACKGROUND_CHECK_STATUSES)

    def test_identity_verification_stays_in_its_vocabulary(self) -> None:
        rng = random.Random(2)
        status = "unverified"
        for _ in range(100):
            status = next_verification(status, rng)
            assert status in VERIFICATION_STATUSES

    def test_a_compliance_flip_always_changes_the_status(self) -> None:
        rng = random.Random(3)
        for status in OVERALL_STATUSES:
            for _ in range(20):
                assert next_compliance(status, rng) in set(OVERALL_STATUSES) - {status}
