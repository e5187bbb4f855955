"""Hostile CRM values through a whole sync (issue 14): contact values that do not fit their declared type and deals
whose amount or close date cannot be read sit in the HubSpot sandbox; the sync names each record and field, and
writes to every contact exactly what a sync of the same CRM without those values (and without those deals) writes.

tests/core/test_hostile_values.py generates the values at the engine; this is the same class end to end, through
the official client over HTTP. Every bad record is counted (tried / held) through the ``hostile`` fixture.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Protocol

import pytest

from cli.demo import demo_config
from cli.wiring import build_connector, connection_id
from connectors.sandbox.generator import generate
from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits, start_hubspot_sandbox
from sync.runner import RunSummary, SyncOptions, SyncRunner
from sync.state import SQLiteState

SUITE = "hostile CRM values through a sync"
DATA = generate(150, seed=14)

#: Values issue 14 reproduced, per declared type of the starter configuration's contact properties.
BAD_CONTACT_VALUES: dict[str, list[str]] = {
    "numemployees": ["N/A", "1,234.50", "$12", "1e309", "12 apples"],
    "hs_email_open": ["maybe", "—", "0x1F"],
    "hs_email_last_open_date": ["2024-13-45", "yesterday", "31/12/2024"],
    "recent_conversion_date": ["1700000000", "N/A"],
    "hs_email_optout": ["maybe", "si", "2"],
}
#: Deal properties as HubSpot sends them, which the connector cannot read: the deal is skipped.
BAD_DEAL_VALUES: dict[str, list[str]] = {
    "amount": ["$12", "[/x]", "1,000.00"],
    "closedate": ["2024-13-45", "99999999999999999999", "maybe"],
}


class Counter(Protocol):
    def tried(self, suite: str) -> None: ...
    def held(self, suite: str) -> None: ...


def sync(emulator: HubSpotEmulator, url: str, root: Path) -> RunSummary:
    config = demo_config(url, root / "state.db")
    runner = SyncRunner(config, build_connector(config, token=emulator.token),
                        SQLiteState(config.sync.state_path, connection_id(config)))
    return runner.run(SyncOptions(as_of=DATA.as_of))


def written(emulator: HubSpotEmulator) -> dict[str, dict[str, Any]]:
    """Our fields on every contact (``clm_computed_at`` aside: it is the run's clock)."""
    return {i: {k: v for k, v in ((emulator.record("contacts", i) or {}).get("properties") or {}).items()
                if k.startswith("clm_") and k != "clm_computed_at"}
            for i in emulator.ids("contacts")}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_hostile_values_are_named_and_the_rest_of_the_sync_is_a_clean_runs(
        seed: int, tmp_path: Path, hostile: Counter) -> None:
    pick = random.Random(seed)
    hostile_server, hostile_crm = start_hubspot_sandbox(DATA.contact_records(), DATA.deal_records(),
                                                        rate_limits=RateLimits.off())
    clean_server, clean_crm = start_hubspot_sandbox(DATA.contact_records(), DATA.deal_records(),
                                                    rate_limits=RateLimits.off())
    try:
        contact_ids, deal_ids = hostile_crm.ids("contacts"), hostile_crm.ids("deals")
        # One bad value per field (each field's report names a few example records) on distinct records.
        cases: list[tuple[str, str, str]] = []
        for name, values, record_id in zip(BAD_CONTACT_VALUES, BAD_CONTACT_VALUES.values(),
                                           pick.sample(contact_ids, len(BAD_CONTACT_VALUES)), strict=True):
            cases.append(("contacts", record_id, name))
            for crm, value in ((hostile_crm, pick.choice(values)), (clean_crm, None)):
                record = crm.store.resolve("contacts", record_id)
                assert record is not None
                crm.store.tables["contacts"].put(record, name, value)
        for deal_id in pick.sample(deal_ids, 4):
            name = pick.choice(list(BAD_DEAL_VALUES))
            cases.append(("deals", deal_id, name))
            record = hostile_crm.store.resolve("deals", deal_id)
            assert record is not None
            hostile_crm.store.tables["deals"].put(record, name, pick.choice(BAD_DEAL_VALUES[name]))
            gone = clean_crm.store.resolve("deals", deal_id)
            assert gone is not None
            clean_crm.store.archive("deals", gone)
        for _ in cases:
            hostile.tried(SUITE)

        bad = sync(hostile_crm, hostile_server.url, tmp_path / "hostile")
        clean = sync(clean_crm, clean_server.url, tmp_path / "clean")

        assert bad.status == clean.status == "ok", (bad.message, clean.message)
        reports = bad.problems + [line for line in bad.diagnostics.get("data") or [] if isinstance(line, str)]
        for kind, record_id, name in cases:
            if kind == "deals":
                assert any(line.startswith(f"deal {record_id}, field {name}: ") and "skipped" in line
                           for line in reports), (record_id, name, reports)
            else:
                assert any(line.startswith(f"contact.{name}:") and record_id in line for line in reports), (
                    record_id, name, reports)
        assert not clean.problems
        # The rest of the sync: every contact's fields as the clean run wrote them, and nothing else differs.
        assert bad.written_records == clean.written_records == len(contact_ids)
        assert written(hostile_crm) == written(clean_crm)
        for _ in cases:
            hostile.held(SUITE)
    finally:
        hostile_server.stop()
        clean_server.stop()
