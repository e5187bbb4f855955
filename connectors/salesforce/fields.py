"""Our custom fields (``CLM_<Name>__c``): created through the Tooling API, then made visible with field-level
security on a permission set assigned to the integration user.

Salesforce gives a field created through the Tooling API no field-level security at all, so it is absent from
describe, "No such column" in SOQL and refused on writes until a ``FieldPermissions`` row on a permission set
*assigned to the user* grants it (FieldPermissions object reference: "To grant a user access to a field,
associate a FieldPermissions record with a PermissionSet that's assigned to a user",
https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_fieldpermissions.htm).
Existence is therefore checked with the Tooling ``CustomField`` table, which sees hidden fields too.

Creating fields and granting access are setup work for an admin, done once with ``clm fields ensure``
(:meth:`FieldManager.ensure`): an integration user normally has none of the rights it needs ("Customize
Application", "Manage Profiles and Permission Sets", "Assign Permission Sets"), and without "View Setup and
Configuration" even the Tooling query is refused. A sync only asks describe what the logged-in user may write
(:meth:`FieldManager.access`): describe's ``updateable`` "Indicates whether the field can be edited by the current
user" (DescribeSObjectResult Field,
https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_describesobjects_describesobjectresult.htm),
so granted fields are written whatever the grant path, and each of the others is named with the missing step.

Existing fields are never changed except to add missing picklist values and to give values an earlier version
labelled with their API name ("marketing_qualified") their readable label ("Marketing qualified"); a label an
admin chose stays; a field of another type is reported as a conflict and left alone.
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
from core.fields import option_label
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
PERMISSION_HINT = ("run `clm fields ensure --assign-to <integration username>` with an admin's credentials: creating "
                   "fields needs 'Customize Application', granting them 'Manage Profiles and Permission Sets' and "
                   "'Assign Permission Sets'; or ask an admin to create the field and grant read/edit on it through "
                   "permission set {ps} assigned to the integration user")
ADMIN_HINT = ("`clm fields ensure` is an admin step: run it with the credentials of a user with 'View Setup and "
              "Configuration', 'Customize Application', 'Manage Profiles and Permission Sets' and 'Assign Permission "
              "Sets', naming the integration user with --assign-to")


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
    """One picklist value of ``Metadata.valueSet``: ``fullName`` is the API name records store, ``label`` what
    people see (Metadata API ``CustomValue``,
    https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/customvalue.htm), so the picklist
    reads "Marketing qualified" while we write ``marketing_qualified``."""
    return {"fullName": value, "default": False, "label": option_label(value)}


@dataclass
class _Existing:
    tooling_id: str
    kind: str | None
    visible: bool
    editable: bool
    values: tuple[str, ...] = ()


@dataclass
class FieldsReport:
    """Our fields on one object as the logged-in user meets them.

    ``unknown``: absent from describe while the Tooling API, which alone tells a missing field from a hidden one,
    was refused (``tooling_refused`` says how). ``conflicts`` maps a field to its type.
    """

    sobject: str
    writable: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)
    read_only: list[str] = field(default_factory=list)
    conflicts: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    tooling_refused: str = ""


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

    def _custom_field_ids(self, sobject: str, names: Sequence[str]) -> dict[str, str]:
        """Tooling ``CustomField`` Ids of the named fields that exist, hidden or not, by lower-case API name."""
        developer = ", ".join(f"'{_developer(n)}'" for n in names)
        rows = self._tooling(f"list custom fields of {sobject}",
                             f"SELECT Id, DeveloperName FROM CustomField WHERE TableEnumOrId = '{sobject}' "
                             f"AND DeveloperName IN ({developer})")
        by_developer = {str(r["DeveloperName"]).lower(): str(r["Id"]) for r in rows}
        return {n.lower(): by_developer[_developer(n).lower()] for n in names if _developer(n).lower() in by_developer}

    def _existing(self, sobject: str, names: Sequence[str], schema: ObjectSchema) -> dict[str, _Existing]:
        ids = self._custom_field_ids(sobject, names)
        out = {}
        for name in names:
            tooling_id = ids.get(name.lower())
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
        """Where our fields stand on each configured object for the logged-in user (sync and ``clm check``).

        Describe decides what is writable; the Tooling API is asked only about fields describe does not show,
        and a refusal there (no "View Setup and Configuration") leaves them ``unknown`` instead of failing.
        """
        reports = []
        for sobject in self.config.objects:
            schema = self.describe(sobject)
            names = [self.crm_name(s.name) for s in specs]
            report = FieldsReport(sobject)
            absent = [n for n in names if schema.canonical(n) is None]
            ids: dict[str, str] = {}
            if absent:
                try:
                    ids = self._custom_field_ids(sobject, absent)
                except (SalesforceApiError, AuthError) as exc:
                    report.tooling_refused = _reason(exc)
            for spec, name in zip(specs, names, strict=True):
                canonical = schema.canonical(name)
                if canonical is not None:
                    kind = schema.kinds[canonical]
                elif report.tooling_refused:
                    report.unknown.append(name)
                    continue
                elif name.lower() not in ids:
                    report.missing.append(name)
                    continue
                else:
                    # A hidden field's type is only known to the Tooling API; one of another type is a conflict that
                    # granting access would not fix, so it must not be reported as merely hidden.
                    kind = self._tooling_kind(ids[name.lower()])
                if kind not in ACCEPTED[spec.type]:
                    report.conflicts[name] = kind
                elif canonical is None:
                    report.hidden.append(name)
                elif canonical in schema.updateable:
                    report.writable.append(name)
                else:
                    report.read_only.append(name)
            reports.append(report)
        return reports

    def access(self, specs: Sequence[FieldSpec]) -> list[FieldStatus]:
        """What the logged-in user may write, one status per field and object, changing nothing in the org.

        ``exists`` when describe says the field is ``updateable`` for this user; ``failed`` with the missing step
        otherwise (create it: ``clm fields ensure`` as an admin; or grant Read/Edit to this user); ``conflict``
        for a field of another type. Needs no setup rights: a refused Tooling query is reported, not raised.
        """
        who = self.who()
        ps_name = self.config.permission_set
        out = []
        for report in self.inspect(specs):
            sobject = report.sobject
            for spec in specs:
                name = self.crm_name(spec.name)
                qualified = f"{sobject}.{name}"
                grant = (f"via a permission set assigned to {who} (`clm fields ensure --assign-to <its username>`, "
                         f"run as an admin, grants it through {ps_name})")
                if name in report.writable:
                    out.append(FieldStatus(spec.name, qualified, "exists", f"writable by {who}"))
                elif name in report.conflicts:
                    out.append(FieldStatus(spec.name, qualified, "conflict",
                                           f"exists as type '{report.conflicts[name]}', we need one of "
                                           f"{sorted(ACCEPTED[spec.type])}; rename or delete it, or set "
                                           f"salesforce.field_prefix"))
                elif name in report.read_only:
                    out.append(FieldStatus(spec.name, qualified, "failed",
                                           f"read-only for {who}: grant Edit on {name} on {sobject} {grant}"))
                elif name in report.hidden:
                    out.append(FieldStatus(spec.name, qualified, "failed",
                                           f"exists, but {who} may not read it: grant Read and Edit on {name} on "
                                           f"{sobject} {grant}"))
                elif name in report.missing:
                    out.append(FieldStatus(spec.name, qualified, "failed",
                                           f"does not exist on {sobject}: run `clm fields ensure` as an admin"))
                else:
                    out.append(FieldStatus(spec.name, qualified, "failed",
                                           f"not visible to {who}: either it does not exist (run `clm fields "
                                           f"ensure` as an admin) or {who} may not read it (grant Read and Edit on "
                                           f"{name} on {sobject} {grant}); the Tooling API, which tells which, was "
                                           f"refused ({report.tooling_refused}): it needs 'View Setup and "
                                           f"Configuration'"))
        return out

    # --- ensuring --------------------------------------------------------------------------------------

    def ensure(self, specs: Sequence[FieldSpec], assign_to: str | None = None) -> list[FieldStatus]:
        """Create missing fields, add missing picklist values, grant read/edit; report per field and object.

        An admin step: read/edit are granted through the configured permission set, assigned to the user named
        ``assign_to`` (the integration user's username), or to the logged-in user when it is not given.
        """
        out: list[FieldStatus] = []
        grant: list[tuple[int, str, str]] = []  # (index in out, object, field API name)
        for sobject in self.config.objects:
            schema = self.describe(sobject)
            names = [self.crm_name(s.name) for s in specs]
            try:
                existing = self._existing(sobject, names, schema)
            except (SalesforceApiError, AuthError) as exc:
                out.extend(FieldStatus(spec.name, f"{sobject}.{name}", "failed",
                                       f"could not list the fields of {sobject} ({_reason(exc)}); {ADMIN_HINT}")
                           for spec, name in zip(specs, names, strict=True))
                continue
            for spec, name in zip(specs, names, strict=True):
                status = self._ensure_one(sobject, spec, name, existing.get(name))
                if status.action not in ("conflict", "failed"):
                    grant.append((len(out), sobject, name))
                out.append(status)
        if grant:
            self._grant(out, grant, assign_to)
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
        # The Tooling metadata, not describe, holds the values' labels: read it (an admin step, one GET a picklist).
        meta = meta if meta is not None else self._metadata(found.tooling_id)
        value_set = dict(meta.get("valueSet") or {})
        definition = dict(value_set.get("valueSetDefinition") or {"sorted": False})
        present = [dict(v) for v in definition.get("value") or []]
        have = {str(v.get("fullName")) for v in present} or set(found.values)
        missing = [o for o in options if o not in have]
        # Values an earlier version created labelled with their API name get the readable label; a label an admin
        # changed is theirs and stays.
        relabel = sorted(str(v["fullName"]) for v in present if v.get("fullName") in options
                         and v.get("label") == v.get("fullName") != option_label(str(v["fullName"])))
        if not missing and not relabel:
            return FieldStatus(spec.name, qualified, "exists")
        for value in present:
            if value.get("fullName") in relabel:
                value["label"] = option_label(str(value["fullName"]))
        definition["value"] = present + [picklist_value(o) for o in missing]
        value_set["valueSetDefinition"] = definition
        meta = {**meta, "valueSet": value_set}
        done = ([f"added picklist values: {', '.join(missing)}"] if missing else []) + (
            [f"labelled picklist values: {', '.join(relabel)}"] if relabel else [])
        try:
            self.client.call(f"update picklist values of {qualified}", lambda sf: sf.toolingexecute(
                f"sobjects/CustomField/{found.tooling_id}", method="PATCH", data={"Metadata": meta},
                timeout=self.client.timeout))
        except (SalesforceApiError, AuthError) as exc:
            return FieldStatus(spec.name, qualified, "exists", f"could not update picklist values "
                               f"({'; '.join(done)}): {exc.message}")
        return FieldStatus(spec.name, qualified, "updated", "; ".join(done))

    # --- field-level security --------------------------------------------------------------------------

    def _grant(self, out: list[FieldStatus], wanted: Sequence[tuple[int, str, str]], assign_to: str | None) -> None:
        ps_name = self.config.permission_set
        try:
            ps_id = self.permission_set(create=True)
            assert ps_id is not None
            self._assign(ps_id, assign_to)
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

    def who(self) -> str:
        """The logged-in user as messages name it: by Id (usernames look like e-mail addresses, kept out of logs)."""
        try:
            return f"the integration user ({self.user_id()})"
        except (AuthError, ConnectorError):
            return "the integration user"

    def _user_named(self, username: str) -> str:
        escaped = username.replace("\\", "\\\\").replace("'", "\\'")
        rows = self.client.call("find the user to grant access to", lambda sf: sf.query(
            f"SELECT Id FROM User WHERE Username = '{escaped}' AND IsActive = true",
            timeout=self.client.timeout))["records"]
        if not rows:
            raise ConnectorError("no active Salesforce user has the username given to --assign-to",
                                 hint="give the integration user's username exactly as in Setup > Users")
        return str(rows[0]["Id"])

    def _assign(self, ps_id: str, assign_to: str | None) -> None:
        user = self.user_id() if assign_to is None else self._user_named(assign_to)
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
        reports = self.inspect(specs)
        who = self.who() if any(r.read_only or r.unknown for r in reports) else ""
        for report in reports:
            problems = []
            if report.missing:
                problems.append(f"missing: {', '.join(report.missing)}")
            if report.unknown:
                problems.append(f"missing or hidden by field-level security: {', '.join(report.unknown)}")
            if report.hidden:
                problems.append(f"hidden by field-level security: {', '.join(report.hidden)}")
            if report.read_only:
                problems.append(f"read-only for {who}: {', '.join(report.read_only)}")
            if report.conflicts:
                problems.append(f"of another type: {', '.join(f'{n} ({k})' for n, k in report.conflicts.items())}")
            fix = ""
            if report.missing or report.unknown or report.hidden or report.read_only:
                fix = (f"an admin runs `clm fields ensure --assign-to <integration username>` with admin credentials: "
                       f"it creates the fields and grants read/edit through permission set "
                       f"{self.config.permission_set} assigned to that user")
            if report.unknown:
                fix += (f"; to tell missing from hidden, give {who} 'View Setup and Configuration' (the Tooling API "
                        f"answered {report.tooling_refused})")
            if report.conflicts:
                fix = (fix + "; " if fix else "") + "rename or delete the conflicting fields, or set " \
                                                    "salesforce.field_prefix"
            out.append(CheckResult(f"our fields on {report.sobject} exist and are visible", not problems,
                                   "; ".join(problems) or f"{len(specs)} present, readable and writable", fix))
        return out


def _developer(name: str) -> str:
    """A custom field's ``DeveloperName``: its API name without ``__c``."""
    return name[:-3] if name.endswith("__c") else name


def _reason(exc: SalesforceApiError | AuthError) -> str:
    """A refusal in one line: SOQL errors repeat the query with a caret under the fault, the last line says why."""
    if not isinstance(exc, SalesforceApiError):
        return exc.message
    lines = [line.strip() for line in exc.detail.splitlines() if line.strip()]
    return f"{exc.code}: {lines[-1][:200] if lines else ''}".rstrip(": ")


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
