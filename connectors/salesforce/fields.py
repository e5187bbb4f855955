"""Our custom fields (``CLM_<Name>__c``): created through the Tooling API, then made visible with field-level
security on a permission set assigned to the integration user.

Salesforce gives a field created through the Tooling API no field-level security at all, so it is absent from
describe, "No such column" in SOQL and refused on writes until a ``FieldPermissions`` row on a permission set
*assigned to the user* grants it (FieldPermissions object reference: "To grant a user access to a field,
associate a FieldPermissions record with a PermissionSet that's assigned to a user",
https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_fieldpermissions.htm).
Existence is therefore checked with the Tooling ``CustomField`` table, which sees hidden fields too.

Existing fields are never changed except to add missing picklist values; a field of another type is reported
as a conflict and left alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simple_salesforce.api import Salesforce

from connectors.base import CheckResult, FieldStatus
from connectors.salesforce.client import SalesforceApiError, SalesforceClient
from connectors.salesforce.records import ObjectSchema, soql_ids
from core.config import SalesforceConfig
from core.errors import AuthError, ConnectorError
from core.models import FieldSpec, FieldType

#: Describe types an existing field may have for each of our types.
ACCEPTED: dict[FieldType, frozenset[str]] = {
    FieldType.NUMBER: frozenset({"double", "currency", "percent", "int"}),
    FieldType.STRING: frozenset({"string", "textarea", "picklist"}),
    FieldType.ENUM: frozenset({"picklist", "string"}),
    FieldType.DATETIME: frozenset({"datetime"}),
    FieldType.BOOL: frozenset({"boolean"}),
}
#: Tooling ``Metadata.type`` -> describe type (for fields hidden from describe).
METADATA_TYPES = {"Number": "double", "Currency": "currency", "Percent": "percent", "Text": "string",
                  "TextArea": "textarea", "LongTextArea": "textarea", "Html": "textarea", "Picklist": "picklist",
                  "DateTime": "datetime", "Date": "date", "Checkbox": "boolean", "Email": "email", "Phone": "phone",
                  "Url": "url"}
#: sObject Collections take at most 200 records per call.
COLLECTION_LIMIT = 200
_API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
PERMISSION_HINT = ("the integration user needs 'Customize Application' (to create fields) and 'Manage Profiles and "
                   "Permission Sets' (to grant access); or ask an admin to create the field and grant read/edit on "
                   "it to permission set {ps}")


def metadata(spec: FieldSpec, options: Sequence[str]) -> dict[str, Any]:
    """Tooling ``CustomField.Metadata`` for one of our fields.

    Numbers are Number(18, 4); enumerations are unrestricted picklists (so a new stage name never fails a write
    while its value is being added) or Text(255) when no options are known; text is Text(255); booleans are
    checkboxes defaulting to false; datetimes DateTime.
    """
    body: dict[str, Any] = {"label": spec.label[:40], "description": spec.description[:1000]}
    if spec.type is FieldType.NUMBER:
        body.update({"type": "Number", "precision": 18, "scale": 4})
    elif spec.type is FieldType.DATETIME:
        body["type"] = "DateTime"
    elif spec.type is FieldType.BOOL:
        body.update({"type": "Checkbox", "defaultValue": "false"})
    elif spec.type is FieldType.ENUM and options:
        body.update({"type": "Picklist", "valueSet": {"restricted": False, "valueSetDefinition": {
            "sorted": False, "value": [picklist_value(o) for o in options]}}})
    else:
        body.update({"type": "Text", "length": 255})
    return body


def picklist_value(value: str) -> dict[str, Any]:
    """One picklist value of ``Metadata.valueSet``."""
    return {"fullName": value, "default": False, "label": value}


@dataclass
class _Existing:
    tooling_id: str
    kind: str | None
    visible: bool
    editable: bool
    values: tuple[str, ...] = ()


@dataclass
class FieldsReport:
    """Our fields on one object: missing, hidden (no read access), read-only, conflicting."""

    sobject: str
    missing: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)
    read_only: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


class FieldManager:
    """Ensures and inspects our fields on the configured objects."""

    def __init__(self, client: SalesforceClient, config: SalesforceConfig, crm_name: Callable[[str], str],
                 options: Callable[[FieldSpec], list[str]]) -> None:
        self.client = client
        self.config = config
        self.crm_name = crm_name
        self.options = options

    # --- reading ---------------------------------------------------------------------------------------

    def describe(self, sobject: str) -> ObjectSchema:
        """``GET sobjects/{Object}/describe``."""
        body = self.client.call(f"describe {sobject}", lambda sf: sf.restful(f"sobjects/{sobject}/describe",
                                                                            timeout=self.client.timeout))
        return ObjectSchema.from_describe(body or {})

    def _tooling(self, operation: str, soql: str) -> list[dict[str, Any]]:
        body = self.client.call(operation, lambda sf: sf.toolingexecute("query/", params={"q": soql},
                                                                        timeout=self.client.timeout))
        return list(body.get("records") or []) if isinstance(body, Mapping) else []

    def _existing(self, sobject: str, names: Sequence[str], schema: ObjectSchema) -> dict[str, _Existing]:
        developer = ", ".join(f"'{n[:-3] if n.endswith('__c') else n}'" for n in names)
        rows = self._tooling(f"list custom fields of {sobject}",
                             f"SELECT Id, DeveloperName FROM CustomField WHERE TableEnumOrId = '{sobject}' "
                             f"AND DeveloperName IN ({developer})")
        by_developer = {str(r["DeveloperName"]).lower(): str(r["Id"]) for r in rows}
        out = {}
        for name in names:
            tooling_id = by_developer.get((name[:-3] if name.endswith("__c") else name).lower())
            if tooling_id is None:
                continue
            canonical = schema.canonical(name)
            if canonical is not None:
                out[name] = _Existing(tooling_id, schema.kinds[canonical], True, canonical in schema.updateable,
                                      schema.picklists.get(canonical, ()))
            else:
                out[name] = _Existing(tooling_id, None, False, False)
        return out

    def _metadata(self, tooling_id: str) -> dict[str, Any]:
        body = self.client.call("read custom field", lambda sf: sf.toolingexecute(
            f"sobjects/CustomField/{tooling_id}", timeout=self.client.timeout))
        found = body.get("Metadata") if isinstance(body, Mapping) else None
        return dict(found) if isinstance(found, Mapping) else {}

    def _tooling_kind(self, tooling_id: str, meta: Mapping[str, Any] | None = None) -> str:
        """The describe type of a field from its Tooling ``Metadata.type`` (for fields hidden from describe)."""
        kind = str((meta if meta is not None else self._metadata(tooling_id)).get("type"))
        return METADATA_TYPES.get(kind, kind)

    def inspect(self, specs: Sequence[FieldSpec]) -> list[FieldsReport]:
        """Where our fields stand on each configured object (for ``clm check``)."""
        reports = []
        for sobject in self.config.objects:
            schema = self.describe(sobject)
            names = [self.crm_name(s.name) for s in specs]
            existing = self._existing(sobject, names, schema)
            report = FieldsReport(sobject)
            for spec, name in zip(specs, names, strict=True):
                found = existing.get(name)
                if found is None:
                    report.missing.append(name)
                    continue
                # A hidden field's type is only known to the Tooling API; one of another type is a conflict that
                # granting access would not fix, so it must not be reported as merely hidden.
                kind = found.kind if found.visible else self._tooling_kind(found.tooling_id)
                if kind not in ACCEPTED[spec.type]:
                    report.conflicts.append(f"{name} ({kind})")
                elif not found.visible:
                    report.hidden.append(name)
                elif not found.editable:
                    report.read_only.append(name)
            reports.append(report)
        return reports

    # --- ensuring --------------------------------------------------------------------------------------

    def ensure(self, specs: Sequence[FieldSpec]) -> list[FieldStatus]:
        """Create missing fields, add missing picklist values, grant read/edit; report per field and object."""
        out: list[FieldStatus] = []
        grant: list[tuple[int, str, str]] = []  # (index in out, object, field API name)
        for sobject in self.config.objects:
            schema = self.describe(sobject)
            names = [self.crm_name(s.name) for s in specs]
            existing = self._existing(sobject, names, schema)
            for spec, name in zip(specs, names, strict=True):
                status = self._ensure_one(sobject, spec, name, existing.get(name))
                if status.action not in ("conflict", "failed"):
                    grant.append((len(out), sobject, name))
                out.append(status)
        if grant:
            self._grant(out, grant)
        return out

    def _ensure_one(self, sobject: str, spec: FieldSpec, name: str, found: _Existing | None) -> FieldStatus:
        qualified = f"{sobject}.{name}"
        options = self.options(spec)
        if found is None:
            try:
                self.client.call(f"create field {qualified}", lambda sf: sf.toolingexecute(
                    "sobjects/CustomField", method="POST", data={"FullName": qualified,
                                                                 "Metadata": metadata(spec, options)},
                    timeout=self.client.timeout))
            except SalesforceApiError as exc:
                if exc.code == "DUPLICATE_DEVELOPER_NAME":  # created meanwhile by another run
                    return FieldStatus(spec.name, qualified, "exists", "created meanwhile by another run")
                return FieldStatus(spec.name, qualified, "failed", _failure(exc, self.config.permission_set))
            except AuthError as exc:
                return FieldStatus(spec.name, qualified, "failed", _failure(exc, self.config.permission_set))
            return FieldStatus(spec.name, qualified, "created")
        kind = found.kind
        meta: dict[str, Any] | None = None
        if kind is None:  # hidden from describe: ask the Tooling API what it is
            meta = self._metadata(found.tooling_id)
            kind = self._tooling_kind(found.tooling_id, meta)
        if kind not in ACCEPTED[spec.type]:
            return FieldStatus(spec.name, qualified, "conflict",
                               f"exists as type '{kind}', we need one of {sorted(ACCEPTED[spec.type])}; left "
                               f"unchanged — rename or delete it, or set salesforce.field_prefix")
        if kind == "picklist" and options:
            return self._add_values(spec, qualified, found, options, meta)
        return FieldStatus(spec.name, qualified, "exists")

    def _add_values(self, spec: FieldSpec, qualified: str, found: _Existing, options: Sequence[str],
                    meta: dict[str, Any] | None) -> FieldStatus:
        have = set(found.values)
        if not found.visible or not have:
            meta = meta if meta is not None else self._metadata(found.tooling_id)
            definition = (meta.get("valueSet") or {}).get("valueSetDefinition") or {}
            have = {str(v.get("fullName")) for v in definition.get("value") or []}
        missing = [o for o in options if o not in have]
        if not missing:
            return FieldStatus(spec.name, qualified, "exists")
        meta = meta if meta is not None else self._metadata(found.tooling_id)
        value_set = dict(meta.get("valueSet") or {})
        definition = dict(value_set.get("valueSetDefinition") or {"sorted": False})
        definition["value"] = list(definition.get("value") or []) + [picklist_value(o) for o in missing]
        value_set["valueSetDefinition"] = definition
        meta = {**meta, "valueSet": value_set}
        try:
            self.client.call(f"add picklist values to {qualified}", lambda sf: sf.toolingexecute(
                f"sobjects/CustomField/{found.tooling_id}", method="PATCH", data={"Metadata": meta},
                timeout=self.client.timeout))
        except (SalesforceApiError, AuthError) as exc:
            return FieldStatus(spec.name, qualified, "exists",
                               f"could not add picklist values {', '.join(missing)}: {exc.message}")
        return FieldStatus(spec.name, qualified, "updated", f"added picklist values: {', '.join(missing)}")

    # --- field-level security --------------------------------------------------------------------------

    def _grant(self, out: list[FieldStatus], wanted: Sequence[tuple[int, str, str]]) -> None:
        ps_name = self.config.permission_set
        try:
            ps_id = self.permission_set(create=True)
            assert ps_id is not None
            self._assign(ps_id)
            rows = self.client.call("read field permissions", lambda sf: sf.query_all(
                f"SELECT Id, Field, PermissionsRead, PermissionsEdit FROM FieldPermissions WHERE ParentId = "
                f"'{ps_id}'", timeout=self.client.timeout))["records"]
        except (SalesforceApiError, AuthError, ConnectorError) as exc:
            for index, _, _ in wanted:
                out[index] = _grant_failed(out[index], exc.message, ps_name)
            return
        current = {str(r["Field"]).lower(): r for r in rows}
        create: list[tuple[int, dict[str, Any]]] = []
        update: list[tuple[int, dict[str, Any]]] = []
        for index, sobject, name in wanted:
            row = current.get(f"{sobject}.{name}".lower())
            if row is None:
                create.append((index, {"attributes": {"type": "FieldPermissions"}, "ParentId": ps_id,
                                       "SobjectType": sobject, "Field": f"{sobject}.{name}",
                                       "PermissionsRead": True, "PermissionsEdit": True}))
            elif not (row.get("PermissionsRead") and row.get("PermissionsEdit")):
                update.append((index, {"attributes": {"type": "FieldPermissions"}, "Id": row["Id"],
                                       "PermissionsRead": True, "PermissionsEdit": True}))
        for method, items in (("POST", create), ("PATCH", update)):
            for start in range(0, len(items), COLLECTION_LIMIT):
                part = items[start:start + COLLECTION_LIMIT]
                def send(sf: Salesforce, rows: Sequence[tuple[int, dict[str, Any]]] = part, verb: str = method) -> Any:
                    return sf.restful("composite/sobjects", method=verb, timeout=self.client.timeout,
                                      json={"allOrNone": False, "records": [r for _, r in rows]})

                try:
                    results = self.client.call(f"grant field access ({method})", send)
                except (SalesforceApiError, AuthError) as exc:
                    for index, _ in part:
                        out[index] = _grant_failed(out[index], exc.message, ps_name)
                    continue
                for (index, _), result in zip(part, results or [], strict=False):
                    status = out[index]
                    if not result.get("success"):
                        errors = result.get("errors") or [{}]
                        out[index] = _grant_failed(status, f"{errors[0].get('statusCode')}: "
                                                           f"{errors[0].get('message')}", ps_name)
                    elif status.action == "exists":
                        out[index] = FieldStatus(status.name, status.crm_name, "updated",
                                                 f"granted read/edit through permission set {ps_name}")

    def permission_set(self, *, create: bool) -> str | None:
        """The configured permission set's Id (created when missing and ``create``)."""
        name = self.config.permission_set
        if not _API_NAME.match(name):
            raise ConnectorError(f"salesforce.permission_set '{name}' is not a valid API name",
                                 hint="use letters, digits and underscores, starting with a letter")
        rows = self.client.call("find permission set", lambda sf: sf.query(
            f"SELECT Id FROM PermissionSet WHERE Name = '{name}'", timeout=self.client.timeout))["records"]
        if rows:
            return str(rows[0]["Id"])
        if not create:
            return None
        created = self.client.call("create permission set", lambda sf: sf.restful(
            "sobjects/PermissionSet", method="POST", json={
                "Name": name, "Label": name.replace("_", " ")[:80],
                "Description": "Read/edit access to the CLM_* fields written by crm-lifecycle"},
            timeout=self.client.timeout))
        return str((created or {})["id"])

    def user_id(self) -> str:
        """The integration user's Id (identity: OAuth ``userinfo``, else Chatter's ``users/me``)."""
        try:
            body = self.client.call("who am I", lambda sf: sf.oauth2("userinfo"))
            if isinstance(body, Mapping) and body.get("user_id"):
                return str(body["user_id"])
        except (SalesforceApiError, AuthError):
            pass
        me = self.client.call("who am I", lambda sf: sf.restful("chatter/users/me", timeout=self.client.timeout))
        return str((me or {})["id"])

    def _assign(self, ps_id: str) -> None:
        user = self.user_id()
        rows = self.client.call("find permission set assignment", lambda sf: sf.query(
            f"SELECT Id FROM PermissionSetAssignment WHERE PermissionSetId IN ({soql_ids([ps_id])}) "
            f"AND AssigneeId IN ({soql_ids([user])})", timeout=self.client.timeout))["records"]
        if not rows:
            self.client.call("assign permission set", lambda sf: sf.restful(
                "sobjects/PermissionSetAssignment", method="POST", json={"AssigneeId": user, "PermissionSetId": ps_id},
                timeout=self.client.timeout))

    def checks(self, specs: Sequence[FieldSpec]) -> list[CheckResult]:
        """One ``clm check`` line per object: our fields present, visible and writable."""
        out = []
        for report in self.inspect(specs):
            problems = []
            if report.missing:
                problems.append(f"missing: {', '.join(report.missing)}")
            if report.hidden:
                problems.append(f"hidden by field-level security: {', '.join(report.hidden)}")
            if report.read_only:
                problems.append(f"read-only for the integration user: {', '.join(report.read_only)}")
            if report.conflicts:
                problems.append(f"of another type: {', '.join(report.conflicts)}")
            fix = ""
            if report.missing or report.hidden or report.read_only:
                fix = (f"run `clm fields ensure` (or `clm sync`), which creates them and grants read/edit through "
                       f"permission set {self.config.permission_set} assigned to the integration user")
            if report.conflicts:
                fix = (fix + "; " if fix else "") + "rename or delete the conflicting fields, or set " \
                                                    "salesforce.field_prefix"
            out.append(CheckResult(f"our fields on {report.sobject} exist and are visible", not problems,
                                   "; ".join(problems) or f"{len(specs)} present, readable and writable", fix))
        return out


def _failure(exc: SalesforceApiError | AuthError, permission_set: str) -> str:
    code = exc.code if isinstance(exc, SalesforceApiError) else "PERMISSION"
    hint = PERMISSION_HINT.format(ps=permission_set) if code.startswith("INSUFFICIENT") or code == "PERMISSION" \
        else "check the field definition"
    detail = exc.detail if isinstance(exc, SalesforceApiError) else exc.message
    return f"could not create it ({code}: {detail}); {hint}"


def _grant_failed(status: FieldStatus, reason: str, permission_set: str) -> FieldStatus:
    return FieldStatus(status.name, status.crm_name, "failed",
                       f"{'created' if status.action == 'created' else 'exists'}, but read/edit could not be granted "
                       f"({reason}); until then Salesforce hides it from the API — "
                       f"{PERMISSION_HINT.format(ps=permission_set)}")
