"""Our ``clm_*`` custom fields on EngageBay contacts: created in the CONTACT scope where missing, checked where
present, and the account's contact and deal fields listed for the property preflight.

Custom fields are listed per scope (``GET customfields/list/{CONTACT|DEAL|COMPANY|TICKET}``) and created by
``POST customfields/`` with ``field_label``, ``scope``, ``field_description`` and ``field_type``
(github.com/engagebay/restapi README §12.1, §12.2). A field listed by the API carries both a ``field_label`` and a
``field_name`` (``Sample Field`` -> ``Sample_Field``), and the README's property examples name custom values by
label: our labels are the names themselves (``clm_stage``, no spaces), so either reading finds them.

Types: LIST needs its options in ``field_data``, whose format the README does not give, so enumerations are TEXT
(the values are still checked by us before they are written); datetimes are DATE, written in the account's
date format (:class:`connectors.engagebay.records.DateText`).

EngageBay's REST API key acts as the user it belongs to and has no scopes to narrow: least privilege means the
key of a user who may edit contacts and custom fields, nothing more (README "Authentication").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from connectors.base import CheckResult, FieldStatus
from connectors.engagebay.client import EngageBayApiError, EngageBayClient
from core.errors import AuthError, ConnectorError
from core.models import FieldSpec, FieldType

FIELD_TYPES = {
    FieldType.NUMBER: "NUMBER",
    FieldType.STRING: "TEXT",
    FieldType.ENUM: "TEXT",
    FieldType.BOOL: "CHECKBOX",
    FieldType.DATETIME: "DATE",
}

#: The system fields of each scope (README "System Fields"); custom ones come from the API.
SYSTEM_FIELDS = {
    "contact": {"name": "TEXT", "last_name": "TEXT", "email": "TEXT", "role": "TEXT", "phone": "TEXT",
                "website": "TEXT", "address": "TEXT", "tags": "TAGS", "score": "NUMBER", "owner_id": "NUMBER"},
    "deal": {"name": "TEXT", "dealname": "TEXT", "unique_id": "NUMBER", "description": "TEXT", "track_id": "NUMBER",
             "amount": "NUMBER", "currency_type": "TEXT", "closed_date": "DATE", "tags": "TAGS",
             "owner_id": "NUMBER"},
}
SCOPES = {"contact": "CONTACT", "deal": "DEAL"}


class Fields:
    """Ensures and checks our custom fields; lists each scope's fields."""

    def __init__(self, client: EngageBayClient, crm_name: Callable[[str], str]) -> None:
        self.client = client
        self.crm_name = crm_name

    def listed(self, scope: str) -> dict[str, dict[str, Any]]:
        """A scope's custom fields by name (``field_name`` and ``field_label`` both map to the field)."""
        body = self.client.call(f"list {scope} custom fields", "GET", f"customfields/list/{scope}")
        out: dict[str, dict[str, Any]] = {}
        for item in body if isinstance(body, list) else []:
            for key in ("field_label", "field_name"):
                if item.get(key):
                    out.setdefault(str(item[key]), item)
        return out

    def ensure(self, specs: Sequence[FieldSpec]) -> list[FieldStatus]:
        """Create the missing ones of our fields in the CONTACT scope; report type conflicts."""
        existing = self.listed("CONTACT")
        return [self._ensure_one(spec, existing.get(self.crm_name(spec.name))) for spec in specs]

    def _ensure_one(self, spec: FieldSpec, current: dict[str, Any] | None) -> FieldStatus:
        name, want = self.crm_name(spec.name), FIELD_TYPES[spec.type]
        if current is not None:
            have = str(current.get("field_type", "")).upper()
            if have != want:
                return FieldStatus(spec.name, name, "conflict",
                                   f"exists as a {have} field, we need {want}; left unchanged — rename or delete it "
                                   "in Admin Settings -> Custom Fields -> Contact, or set engagebay.field_prefix")
            return FieldStatus(spec.name, name, "exists")
        body = {"field_label": name, "scope": "CONTACT", "field_description": spec.description or spec.label,
                "field_type": want, "is_required": "false", "is_searchable": "false"}
        try:
            self.client.call("create custom field", "POST", "customfields/", body=body)
        except EngageBayApiError as exc:
            return FieldStatus(spec.name, name, "failed", exc.reason)
        return FieldStatus(spec.name, name, "created")

    def properties(self, object_type: str) -> dict[str, str]:
        """Every field of contacts or deals: system fields and the scope's custom fields -> EngageBay's type."""
        out = dict(SYSTEM_FIELDS[object_type])
        for name, item in self.listed(SCOPES[object_type]).items():
            out[name] = str(item.get("field_type", ""))
        return out

    def check(self, specs: Sequence[FieldSpec], base_url: str) -> list[CheckResult]:
        """Key, reachability, contacts and deals readable, our fields present."""
        checks = []
        title = "EngageBay reachable, REST API key accepted, contacts readable"
        try:
            self.client.call("read contacts", "POST", "subscribers", form={"page_size": 1})
            checks.append(CheckResult(title, True, base_url))
        except (AuthError, ConnectorError) as exc:
            checks.append(CheckResult(title, False, exc.message, exc.hint or ""))
            return checks
        try:
            self.client.call("list deal tracks", "GET", "tracks")
            checks.append(CheckResult("deal tracks readable", True))
        except (AuthError, ConnectorError) as exc:
            checks.append(CheckResult("deal tracks readable", False, exc.message, exc.hint or ""))
        try:
            existing = self.listed("CONTACT")
            missing = [self.crm_name(s.name) for s in specs if self.crm_name(s.name) not in existing]
            checks.append(CheckResult("our custom fields exist", not missing,
                                      f"missing: {', '.join(missing)}" if missing else f"{len(specs)} present",
                                      "run `clm fields ensure` (or `clm sync`, which creates them)" if missing
                                      else ""))
        except (AuthError, ConnectorError) as exc:
            checks.append(CheckResult("custom fields readable", False, exc.message, exc.hint or ""))
        return checks
