"""HubSpot deals in other currencies (issue 19): a EUR deal counts at the portal's exchange rate (HubSpot's own
``amount_in_home_currency``), in the company currency; a deal in a currency the portal has no rate for is
reported by its id and left out, so neither moves anybody else's values."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from connectors.sandbox.generator import DEAL_PROPERTY_TYPES, PROPERTY_TYPES, generate
from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits, start_hubspot_sandbox
from connectors.sandbox.server import SandboxServer
from core.config import ClmConfig, DataConfig
from core.engine import OUTPUT_NAMES, EnrichResult, enrich
from core.models import Contact, Deal, DealStatus
from tests.connectors.test_hubspot import connector, pull_all

EUR_IN_USD = 1.10
DATA = generate(200, seed=19)
DEALS = DATA.deal_records()
CONFIG = ClmConfig(data=DataConfig(contact_properties=dict(PROPERTY_TYPES), deal_properties=dict(DEAL_PROPERTY_TYPES)))


def _won_of_distinct_contacts(count: int) -> list[int]:
    rows: list[int] = []
    owners: set[str] = set()
    for i, deal in enumerate(DEALS):
        if deal.status is DealStatus.WON and deal.amount and deal.contact_ids and deal.contact_ids[0] not in owners:
            rows.append(i)
            owners.add(deal.contact_ids[0])
        if len(rows) == count:
            break
    return rows


ROWS = _won_of_distinct_contacts(3)


@pytest.fixture
def portals() -> Iterator[list[tuple[SandboxServer, HubSpotEmulator]]]:
    started: list[tuple[SandboxServer, HubSpotEmulator]] = []
    yield started
    for server, emulator in started:
        server.stop()
        assert emulator.internal_errors == []


def portal(deals: Sequence[Deal], started: list[tuple[SandboxServer, HubSpotEmulator]]
           ) -> tuple[list[Contact], list[Deal], dict[str, Deal]]:
    emulator = HubSpotEmulator(rate_limits=RateLimits.off(), search_lag_ms=0)
    emulator.set_currencies("USD", {"EUR": EUR_IN_USD})
    server, emulator = start_hubspot_sandbox(DATA.contact_records(), deals, emulator=emulator)
    started.append((server, emulator))
    pages, _ = pull_all(connector(server, emulator), None)
    contacts = [c for p in pages for c in p.contacts]
    pulled = sorted((d for p in pages for d in p.deals), key=lambda d: d.id)
    return contacts, pulled, {d.id: d for d in pulled}


def run(contacts: list[Contact], deals: list[Deal]) -> EnrichResult:
    return enrich(contacts, deals, CONFIG, DATA.as_of)


def assert_same(a: EnrichResult, b: EnrichResult) -> None:
    assert a.ids.tolist() == b.ids.tolist()
    for name in OUTPUT_NAMES:
        if a.columns[name].dtype == object:
            assert a.columns[name].tolist() == b.columns[name].tolist(), name
        else:
            np.testing.assert_allclose(a.columns[name], b.columns[name], rtol=1e-9, err_msg=name)


def test_a_eur_deal_counts_at_the_portals_rate(portals: list[tuple[SandboxServer, HubSpotEmulator]]) -> None:
    in_euros = [d.model_copy(update={"currency": "EUR"}) if i in ROWS else d for i, d in enumerate(DEALS)]
    in_dollars = [d.model_copy(update={"amount": (d.amount or 0) * EUR_IN_USD, "currency": "USD"}) if i in ROWS
                  else d for i, d in enumerate(DEALS)]
    contacts, euro_deals, by_id = portal(in_euros, portals)
    dollar_contacts, dollar_deals, _ = portal(in_dollars, portals)
    for i in ROWS:
        deal = by_id[DEALS[i].id]
        assert deal.currency == "USD" and deal.amount == pytest.approx((DEALS[i].amount or 0) * EUR_IN_USD)
    result = run(contacts, euro_deals)
    assert "deal.currency" not in result.quality.fields
    assert_same(result, run(dollar_contacts, dollar_deals))


def test_a_deal_in_a_currency_without_a_rate_is_reported_and_left_out(
        portals: list[tuple[SandboxServer, HubSpotEmulator]]) -> None:
    row = ROWS[0]
    hostile = [d.model_copy(update={"currency": "BRL"}) if i == row else d for i, d in enumerate(DEALS)]
    contacts, deals, by_id = portal(hostile, portals)
    assert by_id[DEALS[row].id].currency == "BRL", "no rate: the amount stays in its own currency"
    result = run(contacts, deals)
    findings = result.quality.fields["deal.currency"]
    assert findings.examples == [DEALS[row].id] and findings.unconverted == 1
    assert any(DEALS[row].id in note and "BRL" in note for note in result.diagnostics.data)
    clean_contacts, clean_deals, _ = portal([d for i, d in enumerate(DEALS) if i != row], portals)
    assert_same(result, run(clean_contacts, clean_deals))
