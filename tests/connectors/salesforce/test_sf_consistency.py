"""Incremental pulls against an org whose changes become readable late: transactions that commit after their
SystemModstamp, and contact roles that are hard-deleted (no Recycle Bin, only getDeleted)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.salesforce.records import HighWater
from tests.connectors.salesforce.conftest import Org, generated, pull_all
from tests.connectors.salesforce.test_sf_pull import flat


class Clock:
    """The org's (and the connector's) clock, moved by the test."""

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
def org(tls_dir: Path, clock: Clock) -> Iterator[Org]:
    box = generated(300, tls_dir, clock=clock, session_ttl=None, late_commits=0.0)
    yield box
    box.stop()
    assert box.emulator.internal_errors == []


def test_records_committed_30_s_after_their_modstamp_all_arrive_on_the_next_pull(org: Org, clock: Clock) -> None:
    conn = org.connector(clock=clock)
    _, cursor = pull_all(conn, None)
    clock.advance(minutes=2)
    contacts = org.ids("Contact")
    slow, quick = contacts[:20], contacts[20:40]
    for contact_id in slow:
        org.emulator.edit(contact_id, {"Title": "Edited in a long transaction"}, commit_after=30)
    inserted = [org.emulator.create("Contact", {"LastName": f"Imported {i}", "Title": "Imported"}, commit_after=30)
                for i in range(5)]
    clock.advance(seconds=10)
    for contact_id in quick:
        org.emulator.edit(contact_id, {"Title": "Edited"})
    clock.advance(seconds=5)
    pages, cursor = pull_all(conn, cursor)
    seen, _, _, _ = flat(pages)
    assert set(seen) == set(quick), "the long transaction has not committed yet"
    clock.advance(seconds=20)
    pages, cursor = pull_all(conn, cursor)
    late, _, _, _ = flat(pages)
    assert set(late) == set(slow) | set(inserted), "stamped below the cursor, committed after it was read"
    assert all(c.properties["Title"] == "Edited in a long transaction" for i, c in late.items() if i in slow)
    clock.advance(minutes=1)
    pages, _ = pull_all(conn, cursor)
    assert flat(pages)[:2] == ({}, {}), "what the lookback re-reads was delivered already: not again"


def test_a_contact_role_deleted_directly_is_reported_through_get_deleted(org: Org, clock: Clock) -> None:
    conn = org.connector(clock=clock)
    pages, cursor = pull_all(conn, None)
    _, deals, _, _ = flat(pages)
    store = org.emulator.store
    with store.lock:
        roles = [dict(r) for r in store.records["OpportunityContactRole"].values()]
    per_deal: dict[str, list[dict[str, object]]] = {}
    for role in roles:
        per_deal.setdefault(str(role["OpportunityId"]), []).append(role)
    role = next(rs[0] for opp, rs in per_deal.items()
                if len({r["ContactId"] for r in rs}) > 1 and sum(r["ContactId"] == rs[0]["ContactId"] for r in rs) == 1)
    opp, removed = str(role["OpportunityId"]), str(role["ContactId"])
    assert removed in deals[opp].contact_ids
    clock.advance(minutes=3)
    assert org.emulator.delete(str(role["Id"]))
    clock.advance(minutes=2)
    pages, _ = pull_all(conn, cursor)
    _, changed, _, _ = flat(pages)
    assert opp in changed, "queryAll never returns the role: only getDeleted tells that the deal changed"
    assert set(changed[opp].contact_ids) == {str(r["ContactId"]) for r in per_deal[opp]} - {removed}


def test_the_cursor_remembers_the_versions_of_its_lookback_window_and_forgets_older_ones() -> None:
    t = datetime(2026, 3, 1, 12, 0, 5, 250_000, tzinfo=UTC)
    state = HighWater(None, lookback=60)
    assert state.fresh(t - timedelta(seconds=90), "003A", ordered=True)
    assert state.fresh(t - timedelta(seconds=30), "003B", ordered=True)
    assert state.fresh(t, "003C", ordered=True)
    value = state.value()
    assert value == "2026-03-01T12:00:05Z|003B.-29750,003C.250", "003A is older than the window: forgotten"
    resumed = HighWater(value, lookback=60)
    assert resumed.where() == "SystemModstamp >= 2026-03-01T11:59:05Z"
    assert not resumed.fresh(t - timedelta(seconds=30), "003B", ordered=True), "delivered: not again"
    assert resumed.fresh(t - timedelta(seconds=40), "003D", ordered=True), "committed late, below the cursor"
    assert not resumed.remember(t, "003C") and resumed.remember(t - timedelta(seconds=10), "003E")
    assert resumed.second == datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC), "remembering moves no window"
