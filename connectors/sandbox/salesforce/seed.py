"""Load our typed records (:class:`core.models.Contact`, :class:`core.models.Deal`) into the emulated org.

Mapping, as a Salesforce admin importing the same data would set it up:

* a contact becomes a Contact (``Email``, ``FirstName``/``LastName`` from properties or the e-mail address,
  ``LastName`` being required), its ``company`` property an Account it is attached to;
* a deal becomes an Opportunity: ``won`` → ``Closed Won`` (``IsClosed``/``IsWon`` true), ``lost`` →
  ``Closed Lost``, ``open`` → its stage when it is an open stage of the sales process, else ``Prospecting``;
  ``CloseDate`` is the close date (or the expected one); its contacts become OpportunityContactRole rows, the
  first one primary;
* properties that match a standard field (by API name or a common alias) fill it; any other property becomes
  a custom field defined on the fly (type inferred from the values), visible to the integration user like the
  org's existing custom fields;
* archived records are in the recycle bin (``IsDeleted``), visible to ``queryAll`` only;
* in a multi-currency org (:meth:`SalesforceEmulator.enable_multicurrency`, first) a deal's ``currency`` is its
  ``CurrencyIsoCode``; without one, or in a single-currency org, its amount is in the corporate currency.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from connectors.sandbox.salesforce import ids
from connectors.sandbox.salesforce.schema import OPPORTUNITY_STAGES, FieldDef, ObjectDef
from connectors.sandbox.salesforce.store import Store
from connectors.sandbox.salesforce.tooling import metadata_for
from connectors.sandbox.salesforce.values import python_value
from core.models import Contact, Deal, DealStatus, FieldType

_CONTACT_ALIASES = {
    "firstname": "FirstName", "givenname": "FirstName", "lastname": "LastName", "surname": "LastName",
    "familyname": "LastName", "phone": "Phone", "phonenumber": "Phone", "mobilephone": "MobilePhone",
    "mobile": "MobilePhone", "jobtitle": "Title", "title": "Title", "department": "Department",
    "city": "MailingCity", "country": "MailingCountry", "zip": "MailingPostalCode", "postalcode": "MailingPostalCode",
    "leadsource": "LeadSource", "birthdate": "Birthdate", "emailoptout": "HasOptedOutOfEmail",
    "hasoptedoutofemail": "HasOptedOutOfEmail", "donotcall": "DoNotCall", "description": "Description",
}
_ACCOUNT_ALIASES = {"industry": "Industry", "numberofemployees": "NumberOfEmployees",
                    "numemployees": "NumberOfEmployees", "employees": "NumberOfEmployees",
                    "annualrevenue": "AnnualRevenue", "website": "Website"}
_DEAL_ALIASES = {"dealname": "Name", "name": "Name", "leadsource": "LeadSource", "type": "Type",
                 "dealtype": "Type", "nextstep": "NextStep", "description": "Description",
                 # MEDDIC has no standard Opportunity fields: an admin creates them, commonly without a prefix, and
                 # the starter configuration's [meddic] names them so (cli/templates/salesforce.toml).
                 "meddicmetrics": "Metrics__c", "meddiceconomicbuyer": "Economic_Buyer__c",
                 "meddicdecisioncriteria": "Decision_Criteria__c", "meddicdecisionprocess": "Decision_Process__c",
                 "meddicidentifypain": "Identify_Pain__c", "meddicchampion": "Champion__c"}
_KIND_OF_TYPE = {FieldType.NUMBER: "number", FieldType.DATETIME: "datetime", FieldType.BOOL: "bool"}
_COMPANY_KEYS = ("company", "companyname", "account", "accountname", "organization", "organisation")
_OPEN_STAGES = {s[0].lower(): s[0] for s in OPPORTUNITY_STAGES if not s[2]}
_SKIP = {"email", "id", "createdate", "createddate", "lastmodifieddate", "hsobjectid"}


@dataclass
class SeedResult:
    """What seeding created: our ids → Salesforce Ids, and the custom fields it had to define."""

    contact_ids: dict[str, str] = field(default_factory=dict)
    deal_ids: dict[str, str] = field(default_factory=dict)
    account_ids: dict[str, str] = field(default_factory=dict)
    contact_role_ids: list[str] = field(default_factory=list)
    custom_fields: list[str] = field(default_factory=list)
    contact_fields: dict[str, str] = field(default_factory=dict)
    """Where each contact property went, as a SOQL field of Contact (``Title``, ``Account.Industry``)."""
    deal_fields: dict[str, str] = field(default_factory=dict)
    """Where each deal property went, as an Opportunity field."""


@lru_cache(maxsize=4096)
def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def custom_api_name(prop: str) -> str:
    """A valid custom field API name for a property name (``num_employees`` → ``Num_Employees__c``)."""
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", prop) if p]
    base = "_".join(p[:1].upper() + p[1:] for p in parts) or "Field"
    if not base[0].isalpha():
        base = "X" + base
    return base[:40].rstrip("_") + "__c"


class _FieldPlanner:
    """Decides, per object, where each property goes: a standard field or a custom field of inferred type."""

    def __init__(self, store: Store, result: SeedResult) -> None:
        self.store = store
        self.result = result
        self.kinds: dict[tuple[str, str], set[str]] = {}
        self.longest: dict[tuple[str, str], int] = {}
        self.decimals: dict[tuple[str, str], int] = {}
        self.targets: dict[tuple[str, str], FieldDef | None] = {}

    def observe(self, obj: ObjectDef, name: str, value: Any) -> None:
        key = (obj.name, name)
        kinds = self.kinds.setdefault(key, set())
        if value is None:
            return
        if isinstance(value, bool):
            kinds.add("bool")
        elif isinstance(value, int | float):
            kinds.add("number")
            if isinstance(value, float) and not value.is_integer():
                text = repr(value)
                places = len(text.split(".")[1]) if "." in text and "e" not in text else 8
                self.decimals[key] = max(self.decimals.get(key, 0), min(places, 8))
        elif isinstance(value, datetime):
            kinds.add("datetime")
        else:
            kinds.add("str")
            self.longest[key] = max(self.longest.get(key, 0), len(str(value)))

    def target(self, obj: ObjectDef, name: str, aliases: Mapping[str, str]) -> FieldDef | None:
        key = (obj.name, name)
        if key in self.targets:
            return self.targets[key]
        standard = aliases.get(_key(name))
        definition = obj.field(standard) if standard else obj.field(name)
        if definition is not None and not (definition.updateable or definition.custom) and definition.name != "Name":
            definition = None  # never seed into system fields such as CreatedDate
        if definition is None:
            definition = self._define(obj, name, standard if standard and standard.endswith("__c") else None)
        self.targets[key] = definition
        return definition

    def declare(self, obj: ObjectDef, name: str, kind: FieldType) -> None:
        """A property the data source has although no record holds a value: typed by its declaration."""
        kinds = self.kinds.setdefault((obj.name, name), set())
        if not kinds:
            kinds.add(_KIND_OF_TYPE.get(kind, "str"))

    def _define(self, obj: ObjectDef, name: str, api_name: str | None = None) -> FieldDef:
        key = (obj.name, name)
        kinds = self.kinds.get(key, set())
        api_name = api_name or custom_api_name(name)
        existing = obj.field(api_name)
        if existing is not None:
            return existing
        label = re.sub(r"[_\W]+", " ", name).strip().title()[:40] or api_name
        if kinds == {"bool"}:
            definition = FieldDef(api_name, label, "boolean", nillable=False, default_value=False)
        elif kinds == {"number"}:
            scale = self.decimals.get(key, 0)
            definition = FieldDef(api_name, label, "double", precision=18, scale=scale)
        elif kinds == {"datetime"}:
            definition = FieldDef(api_name, label, "datetime")
        else:
            longest = self.longest.get(key, 0)
            definition = (FieldDef(api_name, label, "string", length=255) if longest <= 255
                          else FieldDef(api_name, label, "textarea", length=131072))
        self.store.define_field(obj, definition, metadata_for(definition), visible=True)
        self.result.custom_fields.append(f"{obj.name}.{api_name}")
        return definition


def _convert(definition: FieldDef, value: Any) -> Any:
    value = python_value(value)
    if value is None:
        return None
    if definition.type in ("string", "textarea", "email", "phone", "url", "picklist"):
        text = value.isoformat() if isinstance(value, datetime) else str(value)
        return text[: definition.length] if definition.length else text
    if definition.type in ("double", "currency", "percent"):
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    if definition.type == "int":
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    if definition.type == "boolean":
        return bool(value)
    if definition.type == "datetime":
        return value if isinstance(value, datetime) else None
    if definition.type == "date":
        return value.date() if isinstance(value, datetime) else None
    return value


def _names_from(contact: Contact, props: dict[str, Any]) -> tuple[str | None, str]:
    first = props.pop("FirstName", None)
    last = props.pop("LastName", None)
    if not last and contact.email:
        local = contact.email.split("@")[0]
        pieces = [p for p in re.split(r"[._\-+]+", local) if p]
        if len(pieces) > 1:
            first = first or pieces[0].title()
            last = pieces[-1].title()
        elif pieces:
            last = pieces[0].title()
    return first, (str(last) if last else f"Contact {contact.id}")[:80]


def seed(store: Store, contacts: Iterable[Contact], deals: Iterable[Deal], *,
         deal_properties: Mapping[str, FieldType] | None = None) -> SeedResult:
    """Insert contacts (with their accounts), deals and contact roles; returns the Id mappings.

    ``deal_properties`` declares the deal properties the source has (the generator's), so each gets its field even
    when no seeded deal holds a value (a small demo's open deals may fill no MEDDIC criterion): a real org has the
    fields its admin made whether or not they are filled in."""
    result = SeedResult()
    contacts = list(contacts)
    deals = list(deals)
    contact_obj, account_obj = store.objects["Contact"], store.objects["Account"]
    deal_obj, role_obj = store.objects["Opportunity"], store.objects["OpportunityContactRole"]
    planner = _FieldPlanner(store, result)
    with store.lock:
        for contact in contacts:
            for name, value in contact.properties.items():
                if _key(name) in _ACCOUNT_ALIASES:
                    planner.observe(account_obj, name, value)
                elif _key(name) not in _SKIP and _key(name) not in _COMPANY_KEYS:
                    planner.observe(contact_obj, name, value)
        for deal in deals:
            for name, value in deal.properties.items():
                if _key(name) not in _SKIP:
                    planner.observe(deal_obj, name, value)
        for name, kind in (deal_properties or {}).items():
            if _key(name) not in _SKIP:
                planner.declare(deal_obj, name, kind)
                definition = planner.target(deal_obj, name, _DEAL_ALIASES)
                if definition is not None:
                    result.deal_fields[name] = definition.name

        accounts_by_name: dict[str, str] = {}
        for contact in contacts:
            values: dict[str, Any] = {}
            account_values: dict[str, Any] = {}
            company: str | None = None
            for name, value in contact.properties.items():
                key = _key(name)
                if key in _SKIP:
                    continue
                if key in _COMPANY_KEYS:
                    company = str(value) if value else None
                    continue
                if key in _ACCOUNT_ALIASES:
                    definition = planner.target(account_obj, name, _ACCOUNT_ALIASES)
                    if definition is not None:
                        account_values[definition.name] = _convert(definition, value)
                        result.contact_fields[name] = f"Account.{definition.name}"
                    continue
                definition = planner.target(contact_obj, name, _CONTACT_ALIASES)
                if definition is not None:
                    values[definition.name] = _convert(definition, value)
                    result.contact_fields[name] = definition.name
            values.pop("Name", None)
            first, last = _names_from(contact, values)
            values.update({"FirstName": first, "LastName": last, "Email": contact.email})
            if company:
                account_id = accounts_by_name.get(company.lower())
                if account_id is None:
                    account = store.insert_seed(account_obj, {"Name": company[:255], **account_values},
                                                created=contact.created_at)
                    account_id = accounts_by_name[company.lower()] = account["Id"]
                    result.account_ids[company] = account_id
                values["AccountId"] = account_id
            own_id = ids.normalize(contact.id)
            record_id = own_id if own_id and own_id[:3] == contact_obj.key_prefix and own_id not in store.by_id \
                else None
            record = store.insert_seed(contact_obj, values, created=contact.created_at,
                                       modified=contact.updated_at or contact.created_at, deleted=contact.archived,
                                       record_id=record_id)
            result.contact_ids[contact.id] = record["Id"]

        for deal in deals:
            values = {}
            for name, value in deal.properties.items():
                if _key(name) in _SKIP:
                    continue
                definition = planner.target(deal_obj, name, _DEAL_ALIASES)
                if definition is not None:
                    values[definition.name] = _convert(definition, value)
                    result.deal_fields[name] = definition.name
            values.setdefault("Name", f"Deal {deal.id}"[:120])
            if deal.status is DealStatus.WON:
                stage = "Closed Won"
            elif deal.status is DealStatus.LOST:
                stage = "Closed Lost"
            else:
                stage = _OPEN_STAGES.get((deal.stage or "").lower(), "Prospecting")
            closed = deal.closed_at or (deal.updated_at or deal.created_at
                                        if deal.status is not DealStatus.OPEN else None)
            close_date = (closed or deal.created_at + timedelta(days=30)).date()
            contact_ids = [result.contact_ids[c] for c in deal.contact_ids if c in result.contact_ids]
            primary = store.by_id.get(contact_ids[0]) if contact_ids else None
            values.update({"Amount": deal.amount, "StageName": stage, "CloseDate": close_date,
                           "AccountId": primary.get("AccountId") if primary else None})
            currency_field = deal_obj.field("CurrencyIsoCode")
            if deal.currency and currency_field is not None:
                # A multi-currency org: the amount is in the deal's own currency, one the org has (a restricted
                # picklist). A single-currency org has no such field and every amount is in its one currency.
                if deal.currency not in currency_field.picklist:
                    raise ValueError(f"deal {deal.id}: currency {deal.currency} is not one of the org's currencies "
                                     f"{currency_field.picklist}; add it with enable_multicurrency")
                values["CurrencyIsoCode"] = deal.currency
            own_id = ids.normalize(deal.id)
            record_id = own_id if own_id and own_id[:3] == deal_obj.key_prefix and own_id not in store.by_id else None
            record = store.insert_seed(deal_obj, values, created=deal.created_at,
                                       modified=deal.updated_at or closed or deal.created_at, deleted=deal.archived,
                                       record_id=record_id)
            result.deal_ids[deal.id] = record["Id"]
            for position, contact_id in enumerate(dict.fromkeys(contact_ids)):
                role = store.insert_seed(role_obj, {
                    "OpportunityId": record["Id"], "ContactId": contact_id, "IsPrimary": position == 0,
                    "Role": "Decision Maker" if position == 0 else None,
                }, created=deal.created_at, modified=deal.created_at, deleted=deal.archived)
                result.contact_role_ids.append(role["Id"])
    return result
