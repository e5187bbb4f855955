"""Deletions the Salesforce pull cannot read from ``queryAll`` reach the mirror: a contact role deleted by itself
(hard-deleted, only in the delete log) and an opportunity deleted longer ago than the 15-day Recycle Bin keeps it
(found by the reconciling Id sweep). The org's clock is moved by the test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.models import DealStatus
from tests.sync.test_sync_salesforce import Env, start


class Clock:
    """The org's (and the connector's) clock."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0) - timedelta(days=40)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def org(tmp_path: Path, clock: Clock) -> Iterator[Env]:
    env = start(tmp_path, 400, clock=clock, session_ttl=None, late_commits=0.0)
    yield env
    env.server.stop()
    assert env.emulator.internal_errors == []


def test_a_directly_deleted_contact_role_leaves_the_mirrors_attribution(org: Env, clock: Clock) -> None:
    runner = org.runner(connector={"clock": clock})
    assert runner.pull_only().status == "ok"
    store = org.emulator.store
    with store.lock:
        roles = [dict(r) for r in store.records["OpportunityContactRole"].values() if not r.get("IsDeleted")]
    people: dict[str, set[str]] = {}
    for role in roles:
        people.setdefault(str(role["OpportunityId"]), set()).add(str(role["ContactId"]))
    role = next(r for r in roles if len(people[str(r["OpportunityId"])]) > 1
                and sum(o["OpportunityId"] == r["OpportunityId"] and o["ContactId"] == r["ContactId"]
                        for o in roles) == 1)
    opp, removed = str(role["OpportunityId"]), str(role["ContactId"])
    mirrored = {d.id: d for d in runner.state.deals()}
    assert removed in mirrored[opp].contact_ids
    clock.advance(minutes=5)
    assert org.emulator.delete(str(role["Id"]))
    clock.advance(minutes=5)
    assert runner.pull_only().status == "ok"
    mirrored = {d.id: d for d in runner.state.deals()}
    assert set(mirrored[opp].contact_ids) == people[opp] - {removed}


def test_an_opportunity_deleted_20_days_before_the_next_run_leaves_the_mirror_and_clv(
        org: Env, clock: Clock) -> None:
    runner = org.runner(connector={"clock": clock})
    assert runner.pull_only().status == "ok"
    as_of = clock.now + timedelta(days=21)
    won: dict[str, list[str]] = {}
    deals = {d.id: d for d in runner.state.deals()}
    for deal in deals.values():
        if deal.status is DealStatus.WON and deal.amount and deal.contact_ids:
            won.setdefault(deal.contact_ids[0], []).append(deal.id)
    owner = next(c for c, ids in sorted(won.items()) if len(ids) >= 2)
    victim = won[owner][0]
    before = {r.contact_id: r for r in runner.compute(as_of)[0].records()}
    person = next(c.id for c in runner.state.contacts() if c.id not in won)
    clock.advance(hours=1)
    assert org.emulator.delete(victim) and org.emulator.delete(person)
    clock.advance(days=20)
    assert org.emulator.record(victim) is None, "past the Recycle Bin's 15 days: physically deleted"
    summary = runner.pull_only()
    assert summary.status == "ok" and summary.deleted >= 2
    assert victim not in {d.id for d in runner.state.deals()}
    assert person not in {c.id for c in runner.state.contacts()}
    after = {r.contact_id: r for r in runner.compute(as_of)[0].records()}
    assert after[owner].historical_value == pytest.approx(
        before[owner].historical_value - deals[victim].amount * runner.config.clv.margin)
    assert after[owner].clv != before[owner].clv
