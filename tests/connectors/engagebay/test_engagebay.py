"""The EngageBay connector over real HTTP against the emulator: what it reads equals the account's data, in full
and incrementally (ties, never-edited contacts, hard deletes), and the API's unhappy paths say what to do."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.demo import engagebay_demo_config
from cli.wiring import build_connector
from connectors.base import Page
from connectors.engagebay import EngageBayConnector
from connectors.sandbox.engagebay import EngageBayEmulator, start_engagebay_sandbox, throttle_burst
from connectors.sandbox.engagebay.store import seed_name
from connectors.sandbox.faults import FaultInjector
from connectors.sandbox.generator import GeneratedData, generate
from connectors.sandbox.server import SandboxServer
from core.errors import AuthError, ConnectorError


def connect(server: SandboxServer, emulator: EngageBayEmulator, tmp_path: Path, **engagebay: Any
            ) -> EngageBayConnector:
    config = engagebay_demo_config(server.url, tmp_path / "state.db", requests_per_minute=60_000)
    assert config.engagebay is not None
    config = config.model_copy(update={"engagebay": config.engagebay.model_copy(update=engagebay)})
    connector = build_connector(config, token=emulator.api_key)
    assert isinstance(connector, EngageBayConnector)
    return connector


def account(n: int, seed: int, *, faults: FaultInjector | None = None,
            emulator: EngageBayEmulator | None = None) -> tuple[SandboxServer, EngageBayEmulator]:
    """A started sandbox holding ``n`` generated contacts and their deals (no rate limit unless ``emulator``
    has one)."""
    data = generate(n, seed=seed)
    return start_engagebay_sandbox(data.contact_records(), data.deal_records(), faults=faults,
                                   emulator=emulator or EngageBayEmulator(rate_limit=None))


class Mirror:
    """What a pull hands over, kept the way the sync's mirror keeps it (upserts, deletions by sweep)."""

    def __init__(self) -> None:
        self.contacts: dict[str, Any] = {}
        self.deals: dict[str, Any] = {}
        self.cursor: dict[str, str] = {}
        self.pages = 0
        self.problems: list[str] = []

    def apply(self, pages: Iterator[Page]) -> int:
        pulled = 0
        for page in pages:
            self.pages += 1
            pulled += len(page.contacts)
            self.contacts.update({c.id: c for c in page.contacts})
            self.deals.update({d.id: d for d in page.deals})
            if page.live_contact_ids is not None:
                live = set(page.live_contact_ids)
                self.contacts = {k: v for k, v in self.contacts.items() if k in live}
            if page.live_deal_ids is not None:
                live = set(page.live_deal_ids)
                self.deals = {k: v for k, v in self.deals.items() if k in live}
            self.problems += page.problems
            self.cursor.update(page.cursor)
        return pulled


def account_view(emulator: EngageBayEmulator) -> tuple[dict[str, dict[str, str]], dict[str, tuple[str, ...]]]:
    """Every contact's property texts and every deal's contacts, straight from the emulator's store."""
    with emulator.account.lock:
        records = emulator.account.records
        # EngageBay's own score is a field of the record, not of its properties list (README "System Fields").
        contacts = {contact_id: {**{p["name"]: p["value"] for p in record["properties"] if p["name"] != "email"},
                                 "score": str(record["score"])}
                    for contact_id, record in records["contacts"].items()}
        deals = {deal_id: tuple(str(c) for c in record["contact_ids"]) for deal_id, record in records["deals"].items()}
    return contacts, deals


def assert_mirror_equals_account(mirror: Mirror, emulator: EngageBayEmulator) -> None:
    contacts, deals = account_view(emulator)
    assert set(mirror.contacts) == set(contacts)
    assert set(mirror.deals) == set(deals)
    for contact_id, texts in contacts.items():
        assert set(mirror.contacts[contact_id].properties) == set(texts), contact_id
    for deal_id, people in deals.items():
        assert mirror.deals[deal_id].contact_ids == people, deal_id
    assert mirror.problems == []


@pytest.fixture(scope="module")
def big() -> Iterator[tuple[SandboxServer, EngageBayEmulator, GeneratedData]]:
    data = generate(20_000, seed=5)
    server, emulator = start_engagebay_sandbox(data.contact_records(), data.deal_records(),
                                               emulator=EngageBayEmulator(rate_limit=None))
    yield server, emulator, data
    server.stop()


@pytest.mark.slow
def test_full_and_incremental_pulls_of_20000_contacts_equal_the_account(
        big: tuple[SandboxServer, EngageBayEmulator, GeneratedData], tmp_path: Path) -> None:
    server, emulator, data = big
    connector = connect(server, emulator, tmp_path, sweep_hours=1000.0)
    mirror = Mirror()
    assert mirror.apply(connector.pull(None)) == 20_000
    assert_mirror_equals_account(mirror, emulator)
    # The seed's values arrive as the generator made them, under the account's names.
    source = {c.id: c for c in data.contact_records()}
    sample = mirror.contacts["17"]
    assert sample.email == source["17"].email
    expected = {seed_name(k) for k, v in source["17"].properties.items() if v is not None} | {"score"}
    assert set(sample.properties) == expected
    by_id = {d.id: d for d in data.deal_records()}
    for deal in list(mirror.deals.values())[:500]:
        assert deal.amount == pytest.approx(by_id[deal.id].amount) and deal.status is by_id[deal.id].status
    # Renewals sit in a second track, listed only when asked for by its id (README §3.1).
    assert {d.pipeline for d in mirror.deals.values()} == {"Default", "Renewals"}

    # Between runs: 300 people edited (many in one second: the ties an incremental read must not lose), 40 new
    # contacts (updated_time 0 until first edited), 25 contacts and 30 deals hard-deleted.
    ids = emulator.ids("contacts")
    for contact_id in ids[:300]:
        emulator.edit("contacts", contact_id, {"email_click": 77})
    new = [emulator.create_contact({"role": "VP Sales"}, f"new{i}@example.com") for i in range(40)]
    for contact_id in ids[-25:]:
        emulator.delete("contacts", contact_id)
    for deal_id in emulator.ids("deals")[:30]:
        emulator.delete("deals", deal_id)
    pages_before = mirror.pages
    pulled = mirror.apply(connector.pull(mirror.cursor))
    # Only what changed is read: the edited and the new (lookback re-reads are handed over once).
    assert pulled == 340
    assert mirror.pages - pages_before < 20
    assert all(mirror.contacts[c].properties["email_click"] == "77" for c in ids[:300])
    assert set(new) <= set(mirror.contacts)
    # Hard deletes leave no trace in the API: they are found by the periodic sweep.
    assert set(ids[-25:]) <= set(mirror.contacts)
    sweeping = connect(server, emulator, tmp_path, sweep_hours=0.0)
    mirror.apply(sweeping.pull(mirror.cursor))
    assert_mirror_equals_account(mirror, emulator)


def test_edits_saved_in_the_second_of_the_watermark_and_during_a_pull_arrive_next_time(tmp_path: Path) -> None:
    server, emulator = account(600, seed=3)
    try:
        connector = connect(server, emulator, tmp_path, page_size=50)
        mirror = Mirror()
        pages = connector.pull(None)
        first = next(pages)
        mirror.apply(iter([first]))
        # A person edits while the list is being read: records already read and records still ahead.
        ids = emulator.ids("contacts")
        for contact_id in (ids[0], ids[1], ids[-1], ids[-2]):
            emulator.edit("contacts", contact_id, {"lead_status": "Working"})
        mirror.apply(pages)
        # And a burst in one second right at the new watermark.
        for contact_id in ids[100:160]:
            emulator.edit("contacts", contact_id, {"lead_status": "Nurture"})
        mirror.apply(connector.pull(mirror.cursor))
        for contact_id in (ids[0], ids[1], ids[-1], ids[-2]):
            assert mirror.contacts[contact_id].properties["lead_status"] == "Working"
        assert all(mirror.contacts[c].properties["lead_status"] == "Nurture" for c in ids[100:160])
        assert_mirror_equals_account(mirror, emulator)
    finally:
        server.stop()


def test_an_incremental_read_cut_mid_scan_resumes_from_its_cursor(tmp_path: Path) -> None:
    server, emulator = account(500, seed=4)
    try:
        connector = connect(server, emulator, tmp_path, page_size=20)
        mirror = Mirror()
        mirror.apply(connector.pull(None))
        time.sleep(1.1)  # the edits below are stamped after the full pull's start second
        for contact_id in emulator.ids("contacts")[:200]:
            emulator.edit("contacts", contact_id, {"email_open": 9})
        pages = connector.pull(mirror.cursor)
        mirror.apply(iter([next(pages), next(pages), next(pages)]))  # then the run is killed
        calls_before = sum(emulator.calls.values())
        mirror.apply(connector.pull(mirror.cursor))
        # The resumed scan starts where the stored cursor points, not at the top.
        assert sum(emulator.calls.values()) - calls_before < 30
        assert all(mirror.contacts[c].properties["email_open"] == "9" for c in emulator.ids("contacts")[:200])
    finally:
        server.stop()


def test_answers_come_back_as_xml_without_the_accept_header_and_the_connector_says_why(tmp_path: Path) -> None:
    server, emulator = start_engagebay_sandbox(generate(30, seed=1).contact_records())
    try:
        raw = httpx.post(f"{server.url}/dev/api/panel/subscribers", data={"page_size": 2},
                         headers={"Authorization": emulator.api_key})
        assert raw.status_code == 200 and raw.text.startswith("<response><item>")
        connector = connect(server, emulator, tmp_path)
        del connector.client._http.headers["Accept"]  # what a proxy that drops the header does
        with pytest.raises(ConnectorError) as caught:
            list(connector.pull(None))
        assert "XML" in caught.value.message and "Accept: application/json" in (caught.value.hint or "")
    finally:
        server.stop()


def test_a_bearer_key_is_refused_with_the_fix(tmp_path: Path) -> None:
    server, emulator = start_engagebay_sandbox(generate(10, seed=1).contact_records())
    try:
        config = engagebay_demo_config(server.url, tmp_path / "state.db")
        connector = build_connector(config, token=f"Bearer {emulator.api_key}")
        with pytest.raises(AuthError) as caught:
            list(connector.pull(None))
        assert "without 'Bearer'" in (caught.value.hint or "")
        checks = connector.check([])
        assert not checks[0].ok and "Bearer" in checks[0].fix
    finally:
        server.stop()


def test_429s_from_the_account_pause_and_the_pull_completes(tmp_path: Path) -> None:
    faults = FaultInjector(seed=4)
    faults.add(throttle_burst(6, after=2))
    # And the account's own limit: 40 requests in 2 s, well under what the connector is told it may send.
    server, emulator = account(400, seed=2, faults=faults, emulator=EngageBayEmulator(rate_limit=40, rate_window=2.0))
    try:
        connector = connect(server, emulator, tmp_path, page_size=10, throttle_pause_seconds=0.5)
        mirror = Mirror()
        mirror.apply(connector.pull(None))
        assert_mirror_equals_account(mirror, emulator)
        assert emulator.throttled > 0 and connector.transport.stats.throttled >= 6  # type: ignore[attr-defined]
    finally:
        server.stop()


def test_our_pace_spreads_a_minute_over_ten_second_windows() -> None:
    # EngageBay's window is unpublished: a minute's allowance sent in its first seconds would trip a short one.
    from connectors.engagebay.connector import pace
    from connectors.transport import RateLimiter

    now = [0.0]
    sent: list[float] = []
    limiter = RateLimiter(pace(300), safety=0.0, clock=lambda: now[0],
                          sleep=lambda s: now.__setitem__(0, now[0] + s))
    for _ in range(600):
        limiter.acquire()
        sent.append(now[0])
    assert max(sum(1 for t in sent if start <= t < start + 10) for start in sent) == 50
    assert max(sum(1 for t in sent if start <= t < start + 60) for start in sent) <= 300
    assert sent[-1] < 120, "and still 300 a minute"
