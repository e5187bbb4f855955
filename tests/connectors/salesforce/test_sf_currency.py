"""Multi-currency orgs (issue 19): opportunity amounts arrive in the corporate currency, at the static rate or,
with advanced currency management, at the dated rate of their CloseDate, identically on REST and Bulk; so three
5,000,000-JPY opportunities count at the org's rate and move nobody else's values."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from connectors.sandbox.generator import DEAL_PROPERTY_TYPES, PROPERTY_TYPES, generate
from connectors.sandbox.salesforce import SalesforceEmulator, start_salesforce_sandbox
from core.config import ClmConfig, DataConfig
from core.engine import OUTPUT_NAMES, enrich
from core.models import Contact, Deal, DealStatus
from tests.connectors.salesforce.conftest import Org, pull_all

JPY_PER_USD = 150.0
DATA = generate(200, seed=19, as_of=datetime(2026, 1, 1, tzinfo=UTC))
CONFIG = ClmConfig(data=DataConfig(contact_properties=dict(PROPERTY_TYPES), deal_properties=dict(DEAL_PROPERTY_TYPES)))


def _won_of_distinct_contacts(deals: Sequence[Deal], count: int) -> list[int]:
    rows: list[int] = []
    owners: set[str] = set()
    for i, deal in enumerate(deals):
        if deal.status is DealStatus.WON and deal.closed_at is not None and deal.contact_ids \
                and deal.contact_ids[0] not in owners:
            rows.append(i)
            owners.add(deal.contact_ids[0])
        if len(rows) == count:
            break
    return rows


DEALS = DATA.deal_records()
JPY_ROWS = _won_of_distinct_contacts(DEALS, 3)


def multicurrency_org(tls_dir: Path, deals: Sequence[Deal], *,
                      dated: dict[str, list[tuple[date, float]]] | None = None) -> Org:
    emulator = SalesforceEmulator()
    emulator.enable_multicurrency("USD", {"JPY": JPY_PER_USD, "EUR": 0.9}, dated=dated)
    server, emulator = start_salesforce_sandbox(DATA.contact_records(), deals, tls_dir=tls_dir, emulator=emulator)
    return Org(server, emulator)


@pytest.fixture
def orgs(tls_dir: Path) -> Iterator[list[Org]]:
    started: list[Org] = []
    yield started
    for org in started:
        org.stop()
        assert org.emulator.internal_errors == []


def pulled(org: Org, *, bulk: bool = False) -> tuple[list[Contact], list[Deal]]:
    pages, _ = pull_all(org.connector(bulk_threshold=0 if bulk else 10**9, deal_props=[]), None)
    return [c for p in pages for c in p.contacts], sorted((d for p in pages for d in p.deals), key=lambda d: d.id)


@pytest.mark.parametrize("bulk", [False, True], ids=["rest", "bulk"])
def test_a_jpy_opportunity_counts_at_the_orgs_rate(tls_dir: Path, orgs: list[Org], bulk: bool) -> None:
    in_yen = [d.model_copy(update={"amount": 5_000_000.0, "currency": "JPY"}) if i in JPY_ROWS else d
              for i, d in enumerate(DEALS)]
    in_dollars = [d.model_copy(update={"amount": 5_000_000.0 / JPY_PER_USD, "currency": "USD"}) if i in JPY_ROWS
                  else d for i, d in enumerate(DEALS)]
    orgs += [multicurrency_org(tls_dir, in_yen), multicurrency_org(tls_dir, in_dollars)]
    yen_contacts, yen_deals = pulled(orgs[0], bulk=bulk)
    dollar_contacts, dollar_deals = pulled(orgs[1], bulk=bulk)
    jpy_ids = {i for i, r in orgs[0].emulator.store.records["Opportunity"].items()
               if r.get("CurrencyIsoCode") == "JPY"}
    assert len(jpy_ids) == len(JPY_ROWS)
    converted = [d for d in yen_deals if d.id in jpy_ids]
    assert [(round(d.amount or 0, 2), d.currency) for d in converted] == [(33_333.33, "USD")] * len(JPY_ROWS)
    assert {d.currency for d in yen_deals} == {"USD"}
    as_of = DATA.as_of
    a = enrich(yen_contacts, yen_deals, CONFIG, as_of)
    b = enrich(dollar_contacts, dollar_deals, CONFIG, as_of)
    assert a.ids.tolist() == b.ids.tolist()
    for name in OUTPUT_NAMES:
        if a.columns[name].dtype == object:
            assert a.columns[name].tolist() == b.columns[name].tolist(), name
        else:
            np.testing.assert_allclose(a.columns[name], b.columns[name], rtol=1e-9, err_msg=name)
    assert "deal.currency" not in a.quality.fields


def test_dated_rates_convert_each_opportunity_at_its_close_date(tls_dir: Path, orgs: list[Org]) -> None:
    change = date(2025, 1, 1)
    won = [i for i, d in enumerate(DEALS) if d.status is DealStatus.WON and d.closed_at is not None]
    before = next(i for i in won if DEALS[i].closed_at.date() < change - timedelta(days=1))  # type: ignore[union-attr]
    after = next(i for i in won if DEALS[i].closed_at.date() > change)  # type: ignore[union-attr]
    deals = [d.model_copy(update={"amount": 1_000_000.0, "currency": "JPY"}) if i in (before, after) else d
             for i, d in enumerate(DEALS)]
    orgs.append(multicurrency_org(tls_dir, deals, dated={"JPY": [(change, 160.0)]}))
    rest = pulled(orgs[0])[1]
    bulk = pulled(orgs[0], bulk=True)[1]
    assert [(d.id, d.amount, d.currency) for d in rest] == [(d.id, d.amount, d.currency) for d in bulk]
    seeded = orgs[0].emulator.store.records["Opportunity"]
    amounts = {seeded[d.id]["CloseDate"] >= change: d.amount for d in rest if seeded[d.id]["Amount"] == 1_000_000.0
               and seeded[d.id].get("CurrencyIsoCode") == "JPY"}
    assert amounts == {False: pytest.approx(1_000_000.0 / JPY_PER_USD), True: pytest.approx(1_000_000.0 / 160.0)}
