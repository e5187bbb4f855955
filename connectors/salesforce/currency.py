"""Opportunity amounts in the org's corporate currency.

In a multi-currency org ``Amount`` is in each record's ``CurrencyIsoCode`` (Salesforce Help, "Considerations for
Enabling Multiple Currencies"); summing it as it comes adds yen to dollars (issue 19). The pull reads the org's
rates once and converts every opportunity, on the REST and the Bulk path alike:

* ``CurrencyType.ConversionRate`` is the static rate "against the corporate currency" (units of the currency
  per corporate unit; object reference, sforce_api_objects_currencytype.htm);
* with advanced currency management, ``DatedConversionRate`` holds rates per period and opportunities convert
  at the period of their ``CloseDate`` — what ``convertCurrency()`` does then (SOQL reference,
  sforce_api_calls_soql_querying_currency_fields.htm: "convertCurrency uses the conversion rate that
  corresponds to a given field (for example, CloseDate on opportunities)"). The object does not exist without
  advanced currency management (``INVALID_TYPE``), so the static rates apply.

Why not ``SELECT convertCurrency(Amount)``: it converts to the integration user's personal currency, not the
corporate one, so the result would change with a user setting; and the Bulk API 2.0 documents no support for it
(https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/queries.htm lists its SOQL
limits without it either way), while both paths must give identical records. Reading the same rates ourselves
costs two small queries per pull.

A currency without a rate cannot happen in a consistent org (``CurrencyIsoCode`` is a restricted picklist of the
``CurrencyType`` rows); should it, the deal is left in its own currency and the engine reports and excludes it
(:mod:`core.currency`), never summing it unconverted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from connectors.salesforce.client import SalesforceApiError
from connectors.salesforce.reader import Reader
from core.models import Deal


@dataclass(frozen=True)
class OrgRates:
    """An org's corporate currency and its static and dated conversion rates."""

    corporate: str
    static: Mapping[str, float]
    dated: Mapping[str, list[tuple[date, date | None, float]]] = field(default_factory=dict)

    @classmethod
    def load(cls, reader: Reader) -> OrgRates:
        """Read ``CurrencyType`` (inactive currencies too: their records keep the code) and, when advanced
        currency management is on, ``DatedConversionRate``."""
        static: dict[str, float] = {}
        corporate = ""
        for row in reader.all_rows("read currency rates",
                                   "SELECT IsoCode, ConversionRate, IsCorporate FROM CurrencyType"):
            static[str(row["IsoCode"])] = float(row["ConversionRate"])
            if row.get("IsCorporate"):
                corporate = str(row["IsoCode"])
        dated: dict[str, list[tuple[date, date | None, float]]] = {}
        try:
            rows = reader.all_rows("read dated exchange rates",
                                   "SELECT IsoCode, ConversionRate, StartDate, NextStartDate FROM DatedConversionRate")
        except SalesforceApiError as exc:
            if exc.code != "INVALID_TYPE":
                raise
            rows = []
        for row in rows:
            dated.setdefault(str(row["IsoCode"]), []).append(
                (_day(row["StartDate"]), _day(row.get("NextStartDate")) if row.get("NextStartDate") else None,
                 float(row["ConversionRate"])))
        return cls(corporate, static, dated)

    def rate(self, code: str, on: date | None) -> float | None:
        """Units of ``code`` per corporate unit on ``on``: the dated period's rate, else the static one."""
        if on is not None:
            for start, end, rate in self.dated.get(code, ()):
                if start <= on and (end is None or on < end):
                    return rate
        return self.static.get(code)

    def to_corporate(self, deal: Deal, close: Any) -> Deal:
        """The deal with its amount in the corporate currency (``close``: the row's ``CloseDate``); unchanged
        when it already is, or when its currency has no rate (the engine then reports it)."""
        if deal.currency is None or deal.currency == self.corporate or not self.corporate:
            return deal
        rate = self.rate(deal.currency, close.date() if isinstance(close, datetime) else None)
        if rate is None or rate <= 0:
            return deal
        amount = deal.amount / rate if deal.amount is not None else None
        return deal.model_copy(update={"amount": amount, "currency": self.corporate})


def _day(value: Any) -> date:
    return date.fromisoformat(str(value)[:10])
