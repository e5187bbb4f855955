"""Multiple currencies in the emulated org: off by default; when on, records carry ``CurrencyIsoCode``,
``CurrencyType`` lists the rates, and ``DatedConversionRate`` exists only with advanced currency management."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from connectors.sandbox.faults import FaultInjector
from connectors.sandbox.salesforce import SalesforceEmulator
from connectors.sandbox.server import SandboxServer
from core.models import Deal, DealStatus
from tests.connectors.sandbox.salesforce.conftest import T0, Sandbox, Switch, make_contacts

RATES = {"JPY": 150.0, "EUR": 0.9}


def deals_in(currencies: list[str | None]) -> list[Deal]:
    return [Deal(id=f"d{i}", amount=5_000_000.0 if code == "JPY" else 1000.0, currency=code, status=DealStatus.WON,
                 created_at=T0 + timedelta(days=i), closed_at=T0 + timedelta(days=30 + i * 200),
                 contact_ids=(f"c{i}",)) for i, code in enumerate(currencies)]


def multicurrency(shared: tuple[SandboxServer, Switch, FaultInjector], currencies: list[str | None], *,
                  dated: dict[str, list[tuple[date, float]]] | None = None, user_currency: str | None = None
                  ) -> Sandbox:
    server, switch, faults = shared
    faults.clear()
    org = SalesforceEmulator(base_url=server.url)
    org.enable_multicurrency("USD", RATES, dated=dated, user_currency=user_currency)
    seeded = org.seed(make_contacts(len(currencies)), deals_in(currencies))
    switch.target = org
    return Sandbox(server, org, seeded, faults)


def error_code(exc: SalesforceMalformedRequest) -> str:
    content = exc.content
    return str(content[0]["errorCode"]) if isinstance(content, list) else ""


def test_a_new_org_has_one_currency(sandbox: Sandbox) -> None:
    sf = sandbox.client()
    fields = {f["name"] for f in sf.Opportunity.describe()["fields"]}
    assert "CurrencyIsoCode" not in fields
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query("SELECT IsoCode, ConversionRate FROM CurrencyType")
    assert error_code(info.value) == "INVALID_TYPE"


def test_a_multicurrency_org_lists_its_rates_and_stamps_each_record(
        shared_server: tuple[SandboxServer, Switch, FaultInjector]) -> None:
    box = multicurrency(shared_server, ["JPY", "EUR", None])
    sf = box.client()
    rows = sf.query("SELECT IsoCode, ConversionRate, IsCorporate, IsActive, DecimalPlaces FROM CurrencyType "
                    "ORDER BY IsoCode")["records"]
    assert [(r["IsoCode"], r["ConversionRate"], r["IsCorporate"], r["IsActive"], r["DecimalPlaces"]) for r in rows] \
        == [("EUR", 0.9, False, True, 2), ("JPY", 150.0, False, True, 0), ("USD", 1.0, True, True, 2)]
    opportunities = sf.query("SELECT Name, Amount, CurrencyIsoCode FROM Opportunity ORDER BY Name")["records"]
    assert [(o["Amount"], o["CurrencyIsoCode"]) for o in opportunities] == [
        (5_000_000.0, "JPY"), (1000.0, "EUR"), (1000.0, "USD")]
    contact = sf.query("SELECT CurrencyIsoCode FROM Contact LIMIT 1")["records"][0]
    assert contact["CurrencyIsoCode"] == "USD", "existing records are stamped with the corporate currency"
    # Advanced currency management is off: its object does not exist for the API.
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query("SELECT IsoCode FROM DatedConversionRate")
    assert error_code(info.value) == "INVALID_TYPE"


def test_a_currency_the_org_does_not_have_is_refused(shared_server: tuple[SandboxServer, Switch, FaultInjector],
                                                     ) -> None:
    box = multicurrency(shared_server, ["JPY"])
    record = box.org.record(box.seeded.deal_ids["d0"])
    assert record is not None
    with pytest.raises(SalesforceMalformedRequest) as info:
        box.client().Opportunity.update(record["Id"], {"CurrencyIsoCode": "XAU"})
    assert "restricted picklist" in str(info.value.content)


def test_dated_rates_have_periods_by_start_date(shared_server: tuple[SandboxServer, Switch, FaultInjector]) -> None:
    box = multicurrency(shared_server, ["JPY"], dated={"JPY": [(date(2024, 6, 1), 160.0)]})
    rows = box.client().query("SELECT IsoCode, ConversionRate, StartDate, NextStartDate FROM DatedConversionRate "
                              "WHERE IsoCode = 'JPY' ORDER BY StartDate")["records"]
    assert [(r["ConversionRate"], r["StartDate"], r["NextStartDate"]) for r in rows] == [
        (150.0, "1700-01-01", "2024-06-01"), (160.0, "2024-06-01", None)]


CONVERTED = "SELECT Name, Amount, convertCurrency(Amount) converted FROM Opportunity ORDER BY Name"


@pytest.mark.parametrize(("user_currency", "expected"), [
    ("USD", [33_333.33, 1111.11, 1000.0]),
    ("EUR", [30_000.0, 1000.0, 900.0]),
])
def test_convert_currency_gives_amounts_in_the_users_currency(
        shared_server: tuple[SandboxServer, Switch, FaultInjector], user_currency: str, expected: list[float]) -> None:
    box = multicurrency(shared_server, ["JPY", "EUR", "USD"], user_currency=user_currency)
    rows = box.client().query(CONVERTED)["records"]
    assert [r["converted"] for r in rows] == expected
    assert [r["Amount"] for r in rows] == [5_000_000.0, 1000.0, 1000.0], "the field itself is not converted"


def test_convert_currency_uses_the_dated_rate_of_the_close_date(
        shared_server: tuple[SandboxServer, Switch, FaultInjector]) -> None:
    # d0 closes on 2024-01-31, d1 on 2024-08-18: the JPY rate changes in between.
    box = multicurrency(shared_server, ["JPY", "JPY"], dated={"JPY": [(date(2024, 6, 1), 200.0)]})
    rows = box.client().query(CONVERTED)["records"]
    assert [r["converted"] for r in rows] == [33_333.33, 25_000.0]


@pytest.mark.parametrize(("soql", "code"), [
    ("SELECT Id FROM Opportunity WHERE convertCurrency(Amount) > 100", "MALFORMED_QUERY"),
    ("SELECT Id FROM Opportunity ORDER BY convertCurrency(Amount)", "MALFORMED_QUERY"),
    ("SELECT Amount, convertCurrency(Amount) FROM Opportunity", "INVALID_FIELD"),
    ("SELECT convertCurrency(Probability) FROM Opportunity", "INVALID_FIELD"),
])
def test_convert_currency_only_where_salesforce_allows_it(
        shared_server: tuple[SandboxServer, Switch, FaultInjector], soql: str, code: str) -> None:
    box = multicurrency(shared_server, ["JPY"])
    with pytest.raises(SalesforceMalformedRequest) as info:
        box.client().query(soql)
    assert error_code(info.value) == code


def test_convert_currency_needs_multiple_currencies(sandbox: Sandbox) -> None:
    with pytest.raises(SalesforceMalformedRequest) as info:
        sandbox.client().query("SELECT convertCurrency(Amount) FROM Opportunity")
    assert error_code(info.value) == "INVALID_FIELD"
