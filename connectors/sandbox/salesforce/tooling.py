"""Tooling API ``CustomField``: create, read, update, delete, and the field definitions it implies.

A field is created with ``POST /services/data/vXX.X/tooling/sobjects/CustomField`` and a body
``{"FullName": "Contact.CLM_Stage__c", "Metadata": {"type": "Picklist", "label": ..., "valueSet": ...}}``
(Tooling API CustomField: https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/tooling_api_objects_customfield.htm).
The answer is ``201 {"id": "00N...", "success": true, "errors": [], "warnings": [], "infos": []}``. The new
field gets no field-level security: the integration user cannot see it until a permission set grants it
(see :mod:`connectors.sandbox.salesforce.store`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from connectors.sandbox.salesforce.errors import ApiError
from connectors.sandbox.salesforce.schema import FieldDef, ObjectDef
from connectors.sandbox.salesforce.store import Store

_DEVELOPER_NAME = re.compile(r"^[A-Za-z](?:[A-Za-z0-9]|_(?!_))*(?<!_)$")
_NAME_RULES = ("The Field Name field can only contain underscores and alphanumeric characters. It must be unique, "
               "begin with a letter, not include spaces, not end with an underscore, and not contain two "
               "consecutive underscores.")

METADATA_TYPES = {
    # Metadata API type -> describe type
    "Text": "string",
    "TextArea": "textarea",
    "LongTextArea": "textarea",
    "Number": "double",
    "Currency": "currency",
    "Percent": "percent",
    "Date": "date",
    "DateTime": "datetime",
    "Checkbox": "boolean",
    "Picklist": "picklist",
    "Email": "email",
    "Phone": "phone",
    "Url": "url",
}


def require_customize(store: Store) -> None:
    """Refuse a change to field definitions by a user without "Customize Application".

    Field definitions are metadata; changing them needs setup rights ("INSUFFICIENT_ACCESS: use of the Metadata
    API requires a user with the ModifyAllData permission", certinia/apex-mdapi#44). What the Tooling
    ``CustomField`` resource answers such a user is not documented; the emulator answers 403 with that error,
    which a client cannot mistake for a bad request.
    """
    if not store.has_permission("CustomizeApplication"):
        raise ApiError(403, "INSUFFICIENT_ACCESS", "use of the Metadata API requires a user with the ModifyAllData "
                                                   "permission ('Customize Application' to change fields)")


def _integrity(message: str, fields: list[str] | None = None) -> ApiError:
    return ApiError(400, "FIELD_INTEGRITY_EXCEPTION", message, fields or [])


def picklist_values(metadata: Mapping[str, Any]) -> tuple[list[str], bool]:
    """Values and restriction of a picklist from ``valueSet`` (v38+) or the older ``picklist`` shape."""
    value_set = metadata.get("valueSet")
    if isinstance(value_set, Mapping):
        definition = value_set.get("valueSetDefinition") or {}
        values = [str(v.get("fullName") or v.get("label")) for v in definition.get("value") or []]
        return values, bool(value_set.get("restricted", False))
    legacy = metadata.get("picklist")
    if isinstance(legacy, Mapping):
        values = [str(v.get("fullName")) for v in legacy.get("picklistValues") or []]
        return values, bool(legacy.get("restrictedPicklist", False))
    return [], False


def picklist_labels(metadata: Mapping[str, Any]) -> dict[str, str]:
    """The ``label`` of each ``valueSet`` value that has one other than its ``fullName`` (Metadata API
    ``CustomValue``: ``fullName`` is stored on records, ``label`` shown,
    https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/customvalue.htm)."""
    value_set = metadata.get("valueSet")
    if not isinstance(value_set, Mapping):
        return {}
    definition = value_set.get("valueSetDefinition") or {}
    return {str(v["fullName"]): str(v["label"]) for v in definition.get("value") or []
            if v.get("fullName") and isinstance(v.get("label"), str) and v["label"] != v["fullName"]}


def _int(metadata: Mapping[str, Any], key: str, default: int) -> int:
    value = metadata.get(key, default)
    try:
        return int(value if value is not None else default)
    except (TypeError, ValueError):
        raise _integrity(f"{key}: invalid number {value!r}", [key]) from None


def field_from_metadata(api_name: str, metadata: Mapping[str, Any]) -> FieldDef:
    """Build a custom field definition from Tooling ``Metadata``; raises ApiError for invalid metadata."""
    kind = metadata.get("type")
    if kind not in METADATA_TYPES:
        raise _integrity(f"Invalid field type: {kind}", ["type"])
    label = metadata.get("label")
    if not label or not isinstance(label, str):
        raise ApiError(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [Label]", ["label"])
    definition = FieldDef(api_name, label[:40], METADATA_TYPES[kind], custom=True,
                          description=metadata.get("description"), inline_help=metadata.get("inlineHelpText"),
                          external_id=bool(metadata.get("externalId")), unique=bool(metadata.get("unique")))
    if kind == "Text":
        definition.length = _int(metadata, "length", 0)
        if not 1 <= definition.length <= 255:
            raise _integrity(f"Length: the value {definition.length} must be between 1 and 255", ["length"])
    elif kind == "TextArea":
        definition.length = 255
    elif kind == "LongTextArea":
        definition.length = _int(metadata, "length", 32768)
        if not 256 <= definition.length <= 131072:
            raise _integrity(f"Length: the value {definition.length} must be between 256 and 131072", ["length"])
    elif kind in ("Number", "Currency", "Percent"):
        definition.precision = _int(metadata, "precision", 18)
        definition.scale = _int(metadata, "scale", 0)
        if not 1 <= definition.precision <= 18 or not 0 <= definition.scale <= definition.precision:
            raise _integrity("The sum of the length and decimal places must be an integer less than or equal to 18",
                             ["precision", "scale"])
    elif kind == "Checkbox":
        default = str(metadata.get("defaultValue", "false")).lower()
        definition.default_value = default == "true"
        definition.nillable = False
    elif kind == "Picklist":
        values, restricted = picklist_values(metadata)
        if not values:
            raise _integrity("Picklist: you must enter at least one value", ["valueSet"])
        definition.picklist = values
        definition.picklist_labels = picklist_labels(metadata)
        definition.restricted = restricted
        definition.length = 255
    elif kind == "Email":
        definition.length = 80
    elif kind == "Phone":
        definition.length = 40
    elif kind == "Url":
        definition.length = 255
    if metadata.get("required") and kind != "Checkbox":
        definition.nillable = False
    return definition


def metadata_for(definition: FieldDef) -> dict[str, Any]:
    """Tooling ``Metadata`` describing an existing field (used for fields defined by seeding)."""
    kind = {v: k for k, v in METADATA_TYPES.items()}[definition.type]
    if definition.type == "textarea" and definition.length > 255:
        kind = "LongTextArea"
    metadata: dict[str, Any] = {"type": kind, "label": definition.label, "required": not definition.nillable,
                                "externalId": definition.external_id, "unique": definition.unique,
                                "description": definition.description, "inlineHelpText": definition.inline_help}
    if kind in ("Text", "LongTextArea"):
        metadata["length"] = definition.length
    if kind in ("Number", "Currency", "Percent"):
        metadata["precision"], metadata["scale"] = definition.precision, definition.scale
    if kind == "Checkbox":
        metadata["defaultValue"] = "true" if definition.default_value else "false"
    if kind == "Picklist":
        metadata["valueSet"] = {"restricted": definition.restricted, "valueSetDefinition": {
            "sorted": False, "value": [{"fullName": v, "default": False, "label": definition.picklist_labels.get(v, v)}
                                      for v in definition.picklist]}}
    return metadata


def split_full_name(store: Store, full_name: Any) -> tuple[ObjectDef, str]:
    """``Contact.CLM_Stage__c`` → (Contact definition, ``CLM_Stage__c``) with Salesforce's naming rules."""
    if not isinstance(full_name, str) or "." not in full_name:
        raise ApiError(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [FullName]", ["FullName"])
    object_name, _, api_name = full_name.partition(".")
    obj = store.object(object_name)
    if obj is None or obj.name not in ("Account", "Contact", "Lead", "Opportunity", "OpportunityContactRole"):
        raise _integrity(f"Cannot find an object named {object_name}", ["FullName"])
    if not api_name.endswith("__c"):
        raise _integrity(_NAME_RULES, ["FullName"])
    developer_name = api_name[:-3]
    if not _DEVELOPER_NAME.match(developer_name) or len(developer_name) > 40:
        raise _integrity(_NAME_RULES, ["FullName"])
    return obj, api_name


def create_custom_field(store: Store, body: Any) -> dict[str, Any]:
    """Handle ``POST tooling/sobjects/CustomField``; returns the 201 body or raises ApiError."""
    if not isinstance(body, Mapping):
        raise ApiError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of CustomField from START_ARRAY "
                                                 "value [ or request may be missing a required field")
    require_customize(store)
    metadata = body.get("Metadata")
    if not isinstance(metadata, Mapping):
        raise ApiError(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [Metadata]", ["Metadata"])
    with store.lock:
        obj, api_name = split_full_name(store, body.get("FullName"))
        if obj.field(api_name) is not None:
            # DUPLICATE_DEVELOPER_NAME: "You cannot create a custom object or custom field with a duplicate
            # developer name" (SOAP API StatusCode list).
            raise ApiError(400, "DUPLICATE_DEVELOPER_NAME",
                           f"There is already a field named {api_name[:-3]} on {obj.name}.", ["FullName"])
        definition = field_from_metadata(api_name, metadata)
        store.define_field(obj, definition, metadata, visible=False)
    return {"id": definition.tooling_id, "success": True, "errors": [], "warnings": [], "infos": []}


def update_custom_field(store: Store, tooling_id: str, body: Any) -> None:
    """Handle ``PATCH tooling/sobjects/CustomField/{id}``: label, length, precision/scale and picklist values."""
    require_customize(store)
    with store.lock:
        found = store.field_for_tooling_id(tooling_id)
        if found is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        _, definition = found
        metadata = body.get("Metadata") if isinstance(body, Mapping) else None
        if not isinstance(metadata, Mapping):
            raise ApiError(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [Metadata]", ["Metadata"])
        updated = field_from_metadata(definition.name, metadata)
        if updated.type != definition.type:
            raise _integrity(f"Cannot change the type of {definition.name} from {definition.type} to {updated.type}",
                             ["type"])
        for attribute in ("label", "length", "precision", "scale", "picklist", "picklist_labels", "restricted",
                          "default_value",
                          "description", "inline_help", "nillable"):
            setattr(definition, attribute, getattr(updated, attribute))
        row = store.get(tooling_id)
        if row is not None:
            row["Metadata"] = dict(metadata)
            row["LastModifiedDate"] = row["SystemModstamp"] = store.now()
        store.fields_changed()


def get_custom_field(store: Store, tooling_id: str) -> dict[str, Any]:
    """``GET tooling/sobjects/CustomField/{id}`` (all fields, ``Metadata`` included)."""
    if not store.has_permission("ViewSetup"):  # the type does not exist for this user (see store.View.object)
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
    row = store.get(tooling_id)
    obj = store.object_of(row["Id"]) if row else None
    if row is None or obj is None or obj.name != "CustomField":
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
    return dict(row)
