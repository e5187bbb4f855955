"""Property definitions and groups per object type, seeded with HubSpot's default properties.

Types and field types pair as HubSpot documents them (developers.hubspot.com/docs/api/crm/properties):
``string``: text/textarea/phonenumber/html/file; ``number``: number; ``date``/``datetime``: date;
``enumeration``: select/radio/checkbox/booleancheckbox; ``bool``: booleancheckbox.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.sandbox.hubspot.errors import ApiError, validation
from connectors.sandbox.hubspot.values import iso_ms

OBJECT_TYPES = ("contacts", "deals")
#: HubSpot's object type ids (0-1 contacts, 0-3 deals); the APIs accept them in place of the names.
OBJECT_TYPE_IDS = {"0-1": "contacts", "0-3": "deals", "contact": "contacts", "deal": "deals",
                   "contacts": "contacts", "deals": "deals"}
TYPE_FIELD_TYPES: dict[str, tuple[str, ...]] = {
    "string": ("text", "textarea", "phonenumber", "html", "file"),
    "number": ("number", "calculation_equation"),
    "date": ("date",),
    "datetime": ("date",),
    "enumeration": ("select", "radio", "checkbox", "booleancheckbox"),
    "bool": ("booleancheckbox",),
    "phone_number": ("phonenumber", "text"),
}
#: What ``GET /crm/v3/objects/{type}`` returns when no ``properties`` are asked for.
DEFAULT_RETURNED = {
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    "deals": ("amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate", "hs_object_id",
              "pipeline"),
}
#: The modified-time property of each object type (HubSpot names it differently for contacts).
MODIFIED = {"contacts": "lastmodifieddate", "deals": "hs_lastmodifieddate"}
#: The default sales pipeline's stages: (id, label, probability, closed, won)
#: (knowledge.hubspot.com/object-settings/set-up-and-customize-pipelines: the "Sales Pipeline" defaults).
DEFAULT_STAGES: tuple[tuple[str, str, float, bool, bool], ...] = (
    ("appointmentscheduled", "Appointment Scheduled", 0.2, False, False),
    ("qualifiedtobuy", "Qualified To Buy", 0.4, False, False),
    ("presentationscheduled", "Presentation Scheduled", 0.6, False, False),
    ("decisionmakerboughtin", "Decision Maker Bought-In", 0.8, False, False),
    ("contractsent", "Contract Sent", 0.9, False, False),
    ("closedwon", "Closed Won", 1.0, True, True),
    ("closedlost", "Closed Lost", 0.0, True, False),
)
STAGES = {s[0]: s for s in DEFAULT_STAGES}
#: Lifecycle stage options in HubSpot's order (knowledge.hubspot.com/records/use-lifecycle-stages).
LIFECYCLE_STAGES = (("subscriber", "Subscriber"), ("lead", "Lead"),
                    ("marketingqualifiedlead", "Marketing Qualified Lead"),
                    ("salesqualifiedlead", "Sales Qualified Lead"), ("opportunity", "Opportunity"),
                    ("customer", "Customer"), ("evangelist", "Evangelist"), ("other", "Other"))
CURRENCIES = ("USD", "EUR", "GBP", "CAD", "AUD", "JPY", "CHF", "SEK", "NOK", "DKK", "BRL", "INR", "MXN", "NZD")


@dataclass(frozen=True)
class Option:
    """One option of an enumeration property."""

    label: str
    value: str
    display_order: int = 0
    hidden: bool = False
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        """As HubSpot lists it."""
        out: dict[str, Any] = {"label": self.label, "value": self.value, "displayOrder": self.display_order,
                               "hidden": self.hidden}
        if self.description:
            out["description"] = self.description
        return out


@dataclass
class PropertyDef:
    """A property definition (``GET /crm/v3/properties/{type}/{name}``)."""

    name: str
    label: str
    type: str
    field_type: str
    group_name: str
    description: str = ""
    options: list[Option] = field(default_factory=list)
    display_order: int = -1
    hubspot_defined: bool = False
    calculated: bool = False
    read_only_value: bool = False
    read_only_definition: bool = False
    external_options: bool = False
    has_unique_value: bool = False
    hidden: bool = False
    form_field: bool = False
    created_at: int = 0
    updated_at: int = 0
    archived: bool = False

    def to_json(self) -> dict[str, Any]:
        """The spec's ``Property``."""
        out: dict[str, Any] = {
            "name": self.name, "label": self.label, "type": self.type, "fieldType": self.field_type,
            "description": self.description, "groupName": self.group_name,
            "options": [o.to_json() for o in self.options], "displayOrder": self.display_order,
            "calculated": self.calculated, "externalOptions": self.external_options,
            "hasUniqueValue": self.has_unique_value, "hidden": self.hidden, "formField": self.form_field,
            "archived": self.archived,
            "modificationMetadata": {"archivable": not self.hubspot_defined,
                                     "readOnlyDefinition": self.read_only_definition,
                                     "readOnlyValue": self.read_only_value},
        }
        if self.hubspot_defined:
            out["hubspotDefined"] = True
        if self.created_at:
            out["createdAt"] = iso_ms(self.created_at)
        if self.updated_at:
            out["updatedAt"] = iso_ms(self.updated_at)
        return out


@dataclass
class PropertyGroup:
    """A property group (``GET /crm/v3/properties/{type}/groups``)."""

    name: str
    label: str
    display_order: int = -1
    archived: bool = False

    def to_json(self) -> dict[str, Any]:
        """The spec's ``PropertyGroup``."""
        return {"name": self.name, "label": self.label, "displayOrder": self.display_order,
                "archived": self.archived}


def _options(pairs: Sequence[tuple[str, str]]) -> list[Option]:
    return [Option(label, value, i) for i, (value, label) in enumerate(pairs)]


def _p(name: str, label: str, kind: str, field_type: str, group: str, **kw: Any) -> PropertyDef:
    return PropertyDef(name, label, kind, field_type, group, hubspot_defined=True, read_only_definition=True, **kw)


def default_groups(object_type: str) -> list[PropertyGroup]:
    """HubSpot's default property groups for an object type."""
    if object_type == "contacts":
        return [PropertyGroup("contactinformation", "Contact information", 0),
                PropertyGroup("emailinformation", "Email information", 1),
                PropertyGroup("conversioninformation", "Conversion information", 2),
                PropertyGroup("analyticsinformation", "Web analytics history", 3),
                PropertyGroup("sales_properties", "Sales properties", 4)]
    return [PropertyGroup("dealinformation", "Deal information", 0),
            PropertyGroup("dealstages", "Deal stage properties", 1),
            PropertyGroup("deal_activity", "Deal activity", 2)]


def default_properties(object_type: str) -> list[PropertyDef]:
    """A representative subset of HubSpot's default properties
    (knowledge.hubspot.com/properties/hubspots-default-contact-properties and ...-deal-properties)."""
    ci, ai = "contactinformation", "analyticsinformation"
    common = [
        _p("hs_object_id", "Record ID", "number", "number", ci if object_type == "contacts" else "dealinformation",
           read_only_value=True, calculated=False),
        _p("createdate", "Create Date", "datetime", "date",
           ci if object_type == "contacts" else "dealinformation"),
        _p("hubspot_owner_id", "Contact owner" if object_type == "contacts" else "Deal owner", "enumeration",
           "select", ci if object_type == "contacts" else "dealinformation", external_options=True),
    ]
    if object_type == "contacts":
        return [*common,
                _p("email", "Email", "string", "text", ci, form_field=True, has_unique_value=False),
                _p("firstname", "First Name", "string", "text", ci, form_field=True),
                _p("lastname", "Last Name", "string", "text", ci, form_field=True),
                _p("phone", "Phone Number", "string", "phonenumber", ci, form_field=True),
                _p("company", "Company Name", "string", "text", ci, form_field=True),
                _p("jobtitle", "Job Title", "string", "text", ci, form_field=True),
                _p("website", "Website URL", "string", "text", ci, form_field=True),
                _p("city", "City", "string", "text", ci, form_field=True),
                _p("state", "State/Region", "string", "text", ci, form_field=True),
                _p("country", "Country/Region", "string", "text", ci, form_field=True),
                _p("industry", "Industry", "string", "text", ci, form_field=True),
                _p("annualrevenue", "Annual Revenue", "string", "text", ci, form_field=True),
                _p("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", ci,
                   options=_options([(v, label) for v, label in LIFECYCLE_STAGES]), form_field=True),
                _p("hs_lead_status", "Lead Status", "enumeration", "radio", "sales_properties",
                   options=_options([("NEW", "New"), ("OPEN", "Open"), ("IN_PROGRESS", "In Progress"),
                                     ("OPEN_DEAL", "Open Deal"), ("UNQUALIFIED", "Unqualified"),
                                     ("ATTEMPTED_TO_CONTACT", "Attempted to Contact"), ("CONNECTED", "Connected"),
                                     ("BAD_TIMING", "Bad Timing")])),
                _p("lastmodifieddate", "Last Modified Date", "datetime", "date", ci, read_only_value=True,
                   calculated=False),
                _p("hs_merged_object_ids", "Merged Contact IDs", "enumeration", "checkbox", ci, read_only_value=True,
                   calculated=True, external_options=True),
                _p("num_associated_deals", "Number of Associated Deals", "number", "number", "sales_properties",
                   read_only_value=True, calculated=True),
                _p("hs_analytics_num_page_views", "Number of Pageviews", "number", "number", ai,
                   read_only_value=True),
                _p("hs_analytics_num_visits", "Number of Sessions", "number", "number", ai, read_only_value=True),
                _p("num_conversion_events", "Number of Form Submissions", "number", "number",
                   "conversioninformation", read_only_value=True),
                _p("hs_email_last_open_date", "Last marketing email open date", "datetime", "date",
                   "emailinformation", read_only_value=True),
                _p("hs_email_optout", "Unsubscribed from all email", "bool", "booleancheckbox", "emailinformation",
                   options=_options([("true", "Yes"), ("false", "No")]), read_only_value=True)]
    di = "dealinformation"
    return [*common,
            _p("dealname", "Deal Name", "string", "text", di),
            _p("amount", "Amount", "number", "number", di),
            _p("dealstage", "Deal Stage", "enumeration", "radio", di,
               options=[Option(label, sid, i) for i, (sid, label, _, _, _) in enumerate(DEFAULT_STAGES)]),
            _p("pipeline", "Pipeline", "enumeration", "select", di, options=[Option("Sales Pipeline", "default", 0)]),
            _p("closedate", "Close Date", "datetime", "date", di),
            _p("deal_currency_code", "Currency", "enumeration", "select", di,
               options=[Option(c, c, i) for i, c in enumerate(CURRENCIES)]),
            # "Amount in company currency": the amount at the portal's exchange rate, calculated by HubSpot
            # (knowledge.hubspot.com/crm-deals/hubspots-default-deal-properties; see Store.home_amount).
            _p("amount_in_home_currency", "Amount in company currency", "number", "number", di,
               read_only_value=True, calculated=True),
            _p("dealtype", "Deal Type", "enumeration", "radio", di,
               options=_options([("newbusiness", "New Business"), ("existingbusiness", "Existing Business")])),
            _p("description", "Deal Description", "string", "textarea", di),
            _p("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", di, read_only_value=True),
            _p("hs_is_closed_won", "Is Closed Won", "bool", "booleancheckbox", "dealstages",
               options=_options([("true", "True"), ("false", "False")]), read_only_value=True, calculated=True),
            _p("hs_is_closed", "Is Deal Closed?", "bool", "booleancheckbox", "dealstages",
               options=_options([("true", "True"), ("false", "False")]), read_only_value=True, calculated=True),
            _p("hs_deal_stage_probability", "Deal probability", "number", "number", "dealstages",
               read_only_value=True, calculated=True),
            _p("num_associated_contacts", "Number of Associated Contacts", "number", "number", "deal_activity",
               read_only_value=True, calculated=True),
            _p("hs_merged_object_ids", "Merged Deal IDs", "enumeration", "checkbox", di, read_only_value=True,
               calculated=True, external_options=True)]


def infer_type(value: object) -> tuple[str, str]:
    """(type, fieldType) for an unknown property seeded from our records."""
    if isinstance(value, bool):
        return "bool", "booleancheckbox"
    if isinstance(value, int | float):
        return "number", "number"
    if isinstance(value, datetime):
        return "datetime", "date"
    return "string", "text"


def _text(body: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise validation(f"Some required fields were not set: [{key}]")
        return None
    if not isinstance(value, str):
        raise validation(f"Invalid input JSON: {key} must be a string")
    return value


def parse_options(raw: object) -> list[Option]:
    """Options from a create/update body (``OptionInput`` items)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise validation("Invalid input JSON: options must be an array")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or not isinstance(item.get("value"), str) or not isinstance(
                item.get("label"), str):
            raise validation(f"Invalid input JSON: options[{i}] needs a string label and value")
        order = item.get("displayOrder", i)
        out.append(Option(str(item["label"]), str(item["value"]), int(order) if isinstance(order, int) else i,
                          bool(item.get("hidden", False)), str(item.get("description") or "")))
    values = [o.value for o in out]
    if len(set(values)) != len(values):
        raise validation("Property options must have unique values")
    return out


def property_from_create(body: Mapping[str, Any], groups: Mapping[str, PropertyGroup], now_ms: int) -> PropertyDef:
    """Validate a ``PropertyCreate`` body as HubSpot does and build the definition."""
    name = _text(body, "name", required=True) or ""
    label = _text(body, "label", required=True) or ""
    kind = _text(body, "type", required=True) or ""
    field_type = _text(body, "fieldType", required=True) or ""
    group = _text(body, "groupName", required=True) or ""
    if kind not in TYPE_FIELD_TYPES:
        raise validation(f"Invalid property type: {kind}. Valid types are: {', '.join(TYPE_FIELD_TYPES)}")
    if field_type not in TYPE_FIELD_TYPES[kind]:
        raise validation(f"Invalid field type {field_type} for property of type {kind}",
                         context={"propertyName": [name]})
    if group not in groups:
        raise validation(f"Property group {group} does not exist", context={"groupName": [group]})
    options = parse_options(body.get("options"))
    if kind == "enumeration" and not options and not body.get("externalOptions"):
        raise validation("Enumeration properties must have at least one option", context={"propertyName": [name]})
    display = body.get("displayOrder", -1)
    return PropertyDef(name=name, label=label, type=kind, field_type=field_type, group_name=group,
                       description=_text(body, "description") or "", options=options,
                       display_order=display if isinstance(display, int) else -1,
                       has_unique_value=bool(body.get("hasUniqueValue", False)),
                       hidden=bool(body.get("hidden", False)), form_field=bool(body.get("formField", False)),
                       external_options=bool(body.get("externalOptions", False)),
                       created_at=now_ms, updated_at=now_ms)


def apply_update(prop: PropertyDef, body: Mapping[str, Any], groups: Mapping[str, PropertyGroup],
                 now_ms: int) -> None:
    """Apply a ``PropertyUpdate`` body (HubSpot refuses type changes of its own properties)."""
    if prop.read_only_definition and any(k in body for k in ("type", "fieldType", "groupName")):
        raise ApiError(400, "VALIDATION_ERROR", f"{prop.name} is a HubSpot defined property; its definition "
                                                "cannot be changed", context={"propertyName": [prop.name]})
    kind = _text(body, "type") or prop.type
    field_type = _text(body, "fieldType") or prop.field_type
    if kind not in TYPE_FIELD_TYPES or field_type not in TYPE_FIELD_TYPES[kind]:
        raise validation(f"Invalid field type {field_type} for property of type {kind}",
                         context={"propertyName": [prop.name]})
    group = _text(body, "groupName") or prop.group_name
    if group not in groups:
        raise validation(f"Property group {group} does not exist", context={"groupName": [group]})
    prop.type, prop.field_type, prop.group_name = kind, field_type, group
    prop.label = _text(body, "label") or prop.label
    description = _text(body, "description")
    if description is not None:
        prop.description = description
    if "options" in body:
        prop.options = parse_options(body["options"])
    if isinstance(body.get("displayOrder"), int):
        prop.display_order = int(body["displayOrder"])
    for key, attr in (("hidden", "hidden"), ("formField", "form_field")):
        if key in body:
            setattr(prop, attr, bool(body[key]))
    prop.updated_at = now_ms
