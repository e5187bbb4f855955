"""Currencies in the emulated portal: one company currency by default; with additional currencies, deals carry
``amount_in_home_currency`` at the rate of their close date (open deals: the current rate), and the account
details name the company currency."""

from __future__ import annotations

from datetime import timedelta

import httpx

from connectors.sandbox.hubspot.values import parse_time
from tests.connectors.sandbox.hubspot.conftest import T0, Box

CHANGE = T0 + timedelta(days=35)
PROPS = ["amount", "deal_currency_code", "amount_in_home_currency", "closedate", "hs_is_closed"]


def deals(box: Box) -> list[dict[str, str | None]]:
    page = box.client().crm.deals.basic_api.get_page(limit=100, properties=PROPS)
    return [r.properties for r in page.results]


def test_a_deal_in_a_currency_the_portal_has_no_rate_for_has_no_home_amount(box: Box) -> None:
    rows = deals(box)
    assert {r["deal_currency_code"] for r in rows} == {"USD", "EUR"}
    for row in rows:
        expected = row["amount"] if row["deal_currency_code"] == "USD" else None
        assert row.get("amount_in_home_currency") == expected, row


def test_home_amounts_use_the_rate_of_the_close_date_or_the_current_one(box: Box) -> None:
    box.hub.set_currencies("USD", {"EUR": [(T0, 1.10), (CHANGE, 1.20)]})
    seen = set()
    for row in deals(box):
        amount, home = float(row["amount"] or 0), float(row.get("amount_in_home_currency") or 0)
        if row["deal_currency_code"] == "USD":
            assert home == amount
            continue
        closed = row["hs_is_closed"] == "true"
        before = closed and parse_time(str(row["closedate"])) < CHANGE.timestamp() * 1000
        rate = 1.10 if before else 1.20
        assert abs(home - amount * rate) < 0.01, row
        seen.add((closed, before))
    assert seen == {(True, True), (True, False), (False, False)}, "each case is covered"


def test_account_details_name_the_company_currency(box: Box) -> None:
    box.hub.set_currencies("EUR", {"USD": 0.9, "JPY": 0.0062})
    body = httpx.get(f"{box.server.url}/account-info/v3/details",
                     headers={"Authorization": f"Bearer {box.hub.token}"}).json()
    assert body["companyCurrency"] == "EUR" and body["additionalCurrencies"] == ["JPY", "USD"]
    assert body["portalId"] == box.hub.portal_id
