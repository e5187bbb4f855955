"""Multiple currencies in the emulated org: off by default, as a new Salesforce org has one currency.

What turning them on changes, as Salesforce documents it:

* every record gets a ``CurrencyIsoCode`` (a restricted picklist of the org's currencies) and existing records
  are stamped with the corporate currency; it cannot be turned off again ("Considerations for Enabling
  Multiple Currencies", https://help.salesforce.com/s/articleView?id=sf.admin_enable_multicurrency_implications.htm);
  the amounts of a record are in *its* currency, so summing ``Amount`` over records adds yen to dollars;
* ``CurrencyType`` lists the currencies: ``IsoCode``, ``ConversionRate`` ("conversion rate of this currency type
  against the corporate currency", i.e. units of it per corporate unit, the corporate one being 1),
  ``DecimalPlaces``, ``IsActive``, ``IsCorporate`` (object reference,
  https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_currencytype.htm);
  a deactivated currency keeps its row and its records keep their code;
* with advanced currency management, ``DatedConversionRate`` holds rates per date range (``StartDate``,
  ``NextStartDate`` read only, ``ConversionRate``); the object "is not available in single-currency
  organizations, nor is it available if the organization does not have advanced currency management enabled"
  (https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_datedconversionrate.htm),
  so a query of it is ``INVALID_TYPE`` then;
* SOQL ``convertCurrency(field)`` converts to the *user's* currency (``User.DefaultCurrencyIsoCode``), with the
  dated rate of the record's ``CloseDate`` on opportunities when advanced currency management is on, else the
  static rate (https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_querying_currency_fields.htm).

Not documented: how far back the first dated period of a currency reaches. The emulator starts it at the
earliest date a Salesforce date field holds (1700-01-01) with the static rate, and a date outside every period
falls back to the static ``CurrencyType`` rate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from connectors.sandbox.salesforce.schema import FieldDef, ObjectDef

if TYPE_CHECKING:  # the store answers convertCurrency() through this module
    from connectors.sandbox.salesforce.store import Record, Store

#: Objects of ours whose records carry a currency once multiple currencies are on.
CURRENCY_OBJECTS = ("Account", "Contact", "Lead", "Opportunity", "User")
#: ISO 4217 minor units other than 2 (``CurrencyType.DecimalPlaces``; 2 for every other code).
_DECIMALS = {"JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3}
#: The first dated period starts at the earliest date a Salesforce date field holds (1700-01-01 to 4000-12-31).
BEGINNING = date(1700, 1, 1)
#: Id prefixes of the two setup objects (not documented; chosen not to collide with the others).
PREFIXES = {"CurrencyType": "02c", "DatedConversionRate": "04w"}


def _setup_object(name: str, label: str, plural: str) -> ObjectDef:
    obj = ObjectDef(name, label, plural, PREFIXES[name], soft_delete=False)
    obj.add(FieldDef("Id", "Record ID", "id", length=18, createable=False, updateable=False, nillable=False,
                     system=True))
    return obj


def _currency_type(codes: Sequence[str]) -> ObjectDef:
    obj = _setup_object("CurrencyType", "Currency Type", "Currency Types")
    obj.add(FieldDef("IsoCode", "Currency ISO Code", "picklist", length=3, picklist=list(codes), restricted=True,
                     nillable=False, required=True, updateable=False))
    obj.add(FieldDef("ConversionRate", "Conversion Rate", "double", precision=18, scale=6, nillable=False,
                     required=True))
    obj.add(FieldDef("DecimalPlaces", "Decimal Places", "int", digits=1, nillable=False, default_value=2))
    obj.add(FieldDef("IsActive", "Active", "boolean", nillable=False, default_value=True))
    obj.add(FieldDef("IsCorporate", "Corporate", "boolean", nillable=False, default_value=False, createable=False,
                     updateable=False))
    return obj


def _dated_rate(codes: Sequence[str]) -> ObjectDef:
    obj = _setup_object("DatedConversionRate", "Dated Conversion Rate", "Dated Conversion Rates")
    obj.add(FieldDef("IsoCode", "Currency ISO Code", "picklist", length=3, picklist=list(codes), restricted=True,
                     nillable=False, required=True, updateable=False))
    obj.add(FieldDef("ConversionRate", "Conversion Rate", "double", precision=18, scale=6, nillable=False,
                     required=True))
    obj.add(FieldDef("StartDate", "Start Date", "date", nillable=False, required=True))
    obj.add(FieldDef("NextStartDate", "Next Start Date", "date", createable=False, updateable=False))
    return obj


def enable_multicurrency(store: Store, corporate: str, rates: Mapping[str, float], *,
                         dated: Mapping[str, Sequence[tuple[date, float]]] | None = None,
                         user_currency: str | None = None) -> None:
    """Turn on multiple currencies (and advanced currency management when ``dated`` is given).

    ``rates``: ``CurrencyType.ConversionRate`` per code, units per one ``corporate`` (which is 1 and may be
    left out). ``dated``: per code, ``(StartDate, ConversionRate)`` periods after the first one, which starts
    at :data:`BEGINNING` with the static rate. ``user_currency``: the integration user's currency (default the
    corporate one), what ``convertCurrency()`` converts to.
    """
    table = {corporate: 1.0, **{code: float(rate) for code, rate in rates.items()}}
    codes = sorted(table)
    with store.lock:
        if "CurrencyType" in store.objects:
            raise ValueError("multiple currencies are on already (Salesforce cannot turn them off or on twice)")
        currency_type = store.add_object(_currency_type(codes))
        for code in codes:
            row = store.insert_seed(currency_type, {"IsoCode": code, "ConversionRate": table[code],
                                                    "DecimalPlaces": _DECIMALS.get(code, 2)})
            row["IsCorporate"] = code == corporate
        if dated is not None:
            dated_obj = store.add_object(_dated_rate(codes))
            for code in codes:
                periods = sorted([(BEGINNING, table[code]), *dated.get(code, ())])
                for (start, rate), after in zip(periods, [*periods[1:], None], strict=True):
                    store.insert_seed(dated_obj, {"IsoCode": code, "ConversionRate": float(rate), "StartDate": start,
                                                  "NextStartDate": after[0] if after else None})
        for name in CURRENCY_OBJECTS:
            obj = store.objects[name]
            label = "Currency ISO Code" if name == "User" else f"{obj.label} Currency"
            obj.add(FieldDef("CurrencyIsoCode", label, "picklist", length=3, picklist=codes, restricted=True,
                             nillable=False, default_value=corporate))
            for record in store.records[name].values():
                # Existing records are stamped with the corporate currency on enablement.
                record.setdefault("CurrencyIsoCode", corporate)
        user_obj = store.objects["User"]
        user_obj.add(FieldDef("DefaultCurrencyIsoCode", "Default Currency ISO Code", "picklist", length=3,
                              picklist=codes, restricted=True, nillable=False, default_value=corporate))
        for record in store.records["User"].values():
            record["DefaultCurrencyIsoCode"] = user_currency if record["Id"] == store.org.user_id and user_currency \
                else corporate
        store.fields_changed()


def rate_on(store: Store, code: str, on: date | None) -> float | None:
    """Units of ``code`` per corporate unit: the dated rate of ``on`` when advanced currency management is on
    and ``on`` is given, else (or before every dated period) the static ``CurrencyType`` rate."""
    with store.lock:
        if on is not None and "DatedConversionRate" in store.objects:
            for row in store.records["DatedConversionRate"].values():
                if row["IsoCode"] == code and row["StartDate"] <= on and (
                        row["NextStartDate"] is None or on < row["NextStartDate"]):
                    return float(row["ConversionRate"])
        for row in store.records.get("CurrencyType", {}).values():
            if row["IsoCode"] == code:
                return float(row["ConversionRate"])
    return None


def converted(store: Store, obj: ObjectDef, record: Record, field_name: str) -> Any:
    """``convertCurrency(field)`` of one record: its value in the running user's currency."""
    value = record.get(field_name)
    code = record.get("CurrencyIsoCode")
    if value is None or code is None:
        return value
    user = store.get(store.acting_user()) or {}
    target = user.get("DefaultCurrencyIsoCode") or code
    # Dated rates apply to opportunities only, by CloseDate (SOQL reference, convertCurrency()).
    on = record.get("CloseDate") if obj.name == "Opportunity" else None
    source_rate, target_rate = rate_on(store, code, on), rate_on(store, target, on)
    if source_rate is None or target_rate is None:
        return value
    # Rounded to the target currency's decimal places: the SOQL reference notes that on Data Cloud objects
    # convertCurrency() "doesn't round the result to configured decimal places", so elsewhere it does.
    places = next((int(r["DecimalPlaces"]) for r in store.records["CurrencyType"].values() if r["IsoCode"] == target),
                  2)
    return round(float(value) / source_rate * target_rate, places)
