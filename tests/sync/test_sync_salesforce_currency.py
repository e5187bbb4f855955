"""A sync of a multi-currency org (issue 19): three 5,000,000-JPY opportunities are written into their buyers'
historical value and CLV at the org's rate, in the corporate currency, and every other contact gets exactly what
it gets when those opportunities are entered in dollars."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from connectors.sandbox.generator import generate
from connectors.sandbox.salesforce import SalesforceEmulator, start_salesforce_sandbox
from core.models import Deal, DealStatus
from sync.runner import SyncOptions
from tests.sync.test_sync_salesforce import Env, crm_state

JPY_PER_USD = 150.0
DATA = generate(400, seed=21)
DEALS = DATA.deal_records()


def _won_of_distinct_contacts(count: int) -> list[int]:
    rows: list[int] = []
    owners: set[str] = set()
    for i, deal in enumerate(DEALS):
        if deal.status is DealStatus.WON and deal.closed_at is not None and deal.contact_ids \
                and deal.contact_ids[0] not in owners:
            rows.append(i)
            owners.add(deal.contact_ids[0])
        if len(rows) == count:
            break
    return rows


ROWS = _won_of_distinct_contacts(3)


def start(root: Path, deals: Sequence[Deal]) -> Env:
    org = SalesforceEmulator(late_commits=0.0)
    org.enable_multicurrency("USD", {"JPY": JPY_PER_USD, "EUR": 0.9})
    seeded = org.seed(DATA.contact_records(), deals)
    server, org = start_salesforce_sandbox(tls_dir=root / "tls", emulator=org)
    env = Env(server, org, DATA, seeded, root)
    env.admin_ensure()
    return env


@pytest.fixture
def envs(tmp_path: Path) -> Iterator[list[Env]]:
    started: list[Env] = []
    yield started
    for env in started:
        env.server.stop()
        assert env.emulator.internal_errors == []


def test_three_5m_jpy_opportunities_are_written_at_the_orgs_rate_and_move_nobody_else(
        tmp_path: Path, envs: list[Env]) -> None:
    in_yen = [d.model_copy(update={"amount": 5_000_000.0, "currency": "JPY"}) if i in ROWS else d
              for i, d in enumerate(DEALS)]
    in_dollars = [d.model_copy(update={"amount": 5_000_000.0 / JPY_PER_USD, "currency": "USD"}) if i in ROWS else d
                  for i, d in enumerate(DEALS)]
    envs += [start(tmp_path / "yen", in_yen), start(tmp_path / "dollars", in_dollars)]
    for env in envs:
        summary = env.runner().run(SyncOptions(as_of=DATA.as_of))
        assert summary.status == "ok" and summary.rejected_count == 0, summary
    yen, dollars = crm_state(envs[0].emulator), crm_state(envs[1].emulator)
    assert yen.keys() == dollars.keys()
    buyers = {envs[0].seeded.contact_ids[DEALS[i].contact_ids[0]] for i in ROWS}
    for buyer in buyers:
        # 33,333.33 USD, not 5,000,000: the yen deal is one of the buyer's won deals.
        assert 33_333.0 <= yen[buyer]["CLM_Historical_Value__c"] < 5_000_000.0
    moved = [i for i in yen if yen[i] != dollars[i]]
    assert moved == [], f"{len(moved)} contacts' written values differ from the dollar twin, e.g. {moved[:3]}"
