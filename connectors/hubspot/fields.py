"""Our ``clm_*`` contact properties: created in our property group where missing, checked where present."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from connectors.base import CheckResult, FieldStatus
from connectors.hubspot.client import HubSpotApiError, HubSpotClient
from core.errors import AuthError, ConnectorError
from core.fields import option_label
from core.models import FieldSpec, FieldType

#: HubSpot's (type, fieldType) for each of our field types
#: (developers.hubspot.com/docs/api/crm/properties#property-type-and-fieldtype-values).
PROPERTY_TYPES = {
    FieldType.NUMBER: ("number", "number"),
    FieldType.STRING: ("string", "text"),
    FieldType.DATETIME: ("datetime", "date"),
    FieldType.ENUM: ("enumeration", "select"),
    FieldType.BOOL: ("enumeration", "booleancheckbox"),
}


def option(value: str, order: int) -> dict[str, Any]:
    """One enumeration option; HubSpot's OpenAPI spec (``OptionInput``) requires ``hidden``. The ``label`` is "a
    human-readable option label that will be shown in HubSpot", the ``value`` "the internal value of the option,
    which must be used when setting the property value through the API" (``OptionInput``, properties v3): so
    people read "Marketing qualified" while we write and read ``marketing_qualified``."""
    return {"label": option_label(value), "value": value, "displayOrder": order, "hidden": False}


class Fields:
    """Ensures and checks our properties on contacts."""

    def __init__(self, client: HubSpotClient, group: str, crm_name: Callable[[str], str],
                 enum_options: Mapping[str, Sequence[str]]) -> None:
        self.client = client
        self.group = group
        self.crm_name = crm_name
        self.enum_options = {k: list(v) for k, v in enum_options.items()}

    def _existing(self) -> dict[str, dict[str, Any]]:
        body = self.client.call("list properties", "crm.properties.core_api", "get_all", "contacts")
        return {p["name"]: p for p in body.get("results", [])}

    def ensure(self, specs: Sequence[FieldSpec]) -> list[FieldStatus]:
        """Make sure our property group and ``clm_*`` properties exist with the right types."""
        groups = self.client.call("list property groups", "crm.properties.groups_api", "get_all", "contacts")
        if not any(g.get("name") == self.group for g in groups.get("results", [])):
            try:
                self.client.call("create property group", "crm.properties.groups_api", "create", "contacts",
                                 {"name": self.group, "label": "CRM Lifecycle", "displayOrder": -1})
            except HubSpotApiError as exc:
                if exc.status != 409:  # created meanwhile by another run: fine
                    raise
        existing = self._existing()
        return [self._ensure_one(spec, existing.get(self.crm_name(spec.name))) for spec in specs]

    def _ensure_one(self, spec: FieldSpec, current: Mapping[str, Any] | None) -> FieldStatus:
        crm_name = self.crm_name(spec.name)
        want_type, field_type = PROPERTY_TYPES[spec.type]
        options = self.options(spec)
        if current is None:
            body: dict[str, Any] = {"name": crm_name, "label": spec.label, "description": spec.description,
                                    "groupName": self.group, "type": want_type, "fieldType": field_type}
            if options:
                body["options"] = [option(o, i) for i, o in enumerate(options)]
            try:
                self.client.call("create property", "crm.properties.core_api", "create", "contacts", body)
                return FieldStatus(spec.name, crm_name, "created")
            except HubSpotApiError as exc:
                return FieldStatus(spec.name, crm_name, "exists" if exc.status == 409 else "failed",
                                   str(exc.body.get("message", "")))
        if current.get("type") != want_type:
            return FieldStatus(spec.name, crm_name, "conflict",
                               f"exists as type '{current.get('type')}', we need '{want_type}'; left unchanged — "
                               "rename or delete it, or set hubspot.property_prefix")
        present = current.get("options") or []
        have = {o.get("value") for o in present}
        missing = [o for o in options if o not in have]
        # Options an earlier version created labelled with their raw value get the readable label; a label
        # someone changed in HubSpot is theirs and stays.
        relabel = {str(o.get("value")) for o in present if o.get("value") in options
                   and o.get("label") == o.get("value") != option_label(str(o.get("value")))}
        if not missing and not relabel:
            return FieldStatus(spec.name, crm_name, "exists")
        kept = [{"label": option_label(str(o.get("value"))) if o.get("value") in relabel
                 else str(o.get("label", o.get("value"))), "value": str(o.get("value")),
                 "displayOrder": int(o.get("displayOrder", i)), "hidden": bool(o.get("hidden", False))}
                for i, o in enumerate(present)]
        merged = kept + [option(o, len(have) + i) for i, o in enumerate(missing)]
        self.client.call("update property options", "crm.properties.core_api", "update", "contacts", crm_name,
                         {"options": merged})
        done = ([f"added options: {', '.join(missing)}"] if missing else []) + (
            [f"labelled options: {', '.join(sorted(relabel))}"] if relabel else [])
        return FieldStatus(spec.name, crm_name, "updated", "; ".join(done))

    def options(self, spec: FieldSpec) -> list[str]:
        """The enumeration options a field needs (none for non-enumerations)."""
        if spec.type is FieldType.BOOL:
            return ["true", "false"]
        return list(spec.options) or self.enum_options.get(spec.name, [])

    def check(self, specs: Sequence[FieldSpec], base_url: str) -> list[CheckResult]:
        """Token, scopes, reachability and our properties, each with a fix."""
        checks = []
        try:
            self.client.call("read contacts", "crm.contacts.basic_api", "get_page", limit=1)
            checks.append(CheckResult("HubSpot reachable, token accepted, contacts readable", True, base_url))
        except (AuthError, ConnectorError) as exc:
            checks.append(CheckResult("HubSpot reachable, token accepted, contacts readable", False, exc.message,
                                      exc.hint or ""))
            return checks
        try:
            self.client.call("read deals", "crm.deals.basic_api", "get_page", limit=1)
            checks.append(CheckResult("deals readable", True))
        except (AuthError, ConnectorError) as exc:
            checks.append(CheckResult("deals readable", False, exc.message, exc.hint or ""))
        try:
            existing = self._existing()
            missing = [self.crm_name(s.name) for s in specs if self.crm_name(s.name) not in existing]
            # A property of ours recreated by hand with another type is never written (ensure leaves it alone):
            # the check must say so, not count it as present.
            conflicts = [f"{self.crm_name(s.name)} is '{existing[self.crm_name(s.name)].get('type')}', we need "
                         f"'{PROPERTY_TYPES[s.type][0]}'" for s in specs if self.crm_name(s.name) in existing
                         and existing[self.crm_name(s.name)].get("type") != PROPERTY_TYPES[s.type][0]]
            problems = ([f"missing: {', '.join(missing)}"] if missing else []) + (
                [f"of another type: {'; '.join(conflicts)}"] if conflicts else [])
            fixes = (["run `clm fields ensure` (or `clm sync`, which creates them)"] if missing else []) + (
                ["delete or rename the conflicting properties in HubSpot (then `clm fields ensure` recreates "
                 "them), or set hubspot.property_prefix to use other names"] if conflicts else [])
            checks.append(CheckResult("our properties exist with our types", not problems,
                                      "; ".join(problems) or f"{len(specs)} present", "; ".join(fixes)))
        except (AuthError, ConnectorError) as exc:
            checks.append(CheckResult("properties readable", False, exc.message, exc.hint or ""))
        return checks
