"""The emulated org's data: records, indexes, field-level security, custom fields and the write log.

Everything here runs under one re-entrant lock, so the HTTP layer (one thread per connection) can call in
from several threads. Records are plain dicts keyed by canonical field names; every object's records are kept
in insertion order, which is also Id order, as Salesforce returns unordered query results.

Field-level security is modelled the way a connector meets it: standard fields and pre-existing custom fields
are granted by the integration user's profile; a field created through the Tooling API is granted to nobody
until a ``FieldPermissions`` row on a permission set *assigned to the user* allows it. Until then the field is
absent from describe, "No such column" in SOQL and refused on writes (FieldPermissions object reference:
https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_fieldpermissions.htm
— "To grant a user access to a field, associate a FieldPermissions record with a PermissionSet that's assigned
to a user").

The org has two users, and every request runs as the user of its session (:meth:`Store.acting_as`): the
integration user (profile "Minimum Access - API Only Integrations", the profile Salesforce gives integration
users, https://help.salesforce.com/s/articleView?id=platform.integration_user.htm) with no setup rights, and an admin
(profile "System Administrator") with "Customize Application", "View Setup and Configuration", "Manage Users",
"Manage Profiles and Permission Sets", "Assign Permission Sets" and "Modify All Data". Field-level security
applies to both: a field created through the Tooling API is visible to nobody until granted, admins included
(restforce/restforce#353: the field stays unwritable until its accessibility is set in Setup). What a user
without the rights meets is in :data:`SETUP_PERMISSIONS` and :meth:`Store.require`.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connectors.sandbox.salesforce import ids
from connectors.sandbox.salesforce.consistency import DeleteLog, LateCommits
from connectors.sandbox.salesforce.currency import converted
from connectors.sandbox.salesforce.errors import RecordError
from connectors.sandbox.salesforce.schema import (
    DATA_OBJECTS,
    OPPORTUNITY_STAGES,
    ChildRelationship,
    FieldDef,
    ObjectDef,
    standard_objects,
    tooling_objects,
)
from connectors.sandbox.salesforce.values import check, python_value, truncate_ms

Record = dict[str, Any]

_STAGES = {s[0]: s for s in OPPORTUNITY_STAGES}

#: System permissions (PermissionSet ``Permissions<Name>`` fields) and their labels in Setup.
SETUP_PERMISSIONS = {
    "ApiEnabled": "API Enabled",
    "ViewSetup": "View Setup and Configuration",
    "CustomizeApplication": "Customize Application",
    "ManageUsers": "Manage Users",
    "ManageProfilesPermissionsets": "Manage Profiles and Permission Sets",
    "AssignPermissionSets": "Assign Permission Sets",
    "ModifyAllData": "Modify All Data",
}
ADMIN_PERMISSIONS = frozenset(SETUP_PERMISSIONS)
INTEGRATION_PERMISSIONS = frozenset({"ApiEnabled"})
#: Which permission each setup object's writes need. The SOAP API StatusCode list describes
#: ``INSUFFICIENT_ACCESS_OR_READONLY`` as "You can't perform the specified action because you don't have
#: sufficient permissions"; permission set assignment failing that way through the API is reported in
#: https://www.buildforce.io/fix/salesforce-permission-set-assignment-failed. The exact message for each object
#: is not documented; the emulator uses the platform's generic one.
_SETUP_WRITES = {"PermissionSet": "ManageProfilesPermissionsets", "FieldPermissions": "ManageProfilesPermissionsets",
                 "PermissionSetAssignment": "AssignPermissionSets"}


@dataclass(frozen=True)
class WriteEvent:
    """One field value applied to one record (the proof that nothing was written twice)."""

    record_id: str
    field: str
    value: Any
    source: str
    """``api`` (REST writes), ``bulk`` (Bulk API 2.0 ingest), ``user`` (emulated person edit)."""
    at: datetime


@dataclass
class ValidationRule:
    """A validation rule: the record (with the incoming changes applied) fails when ``condition`` is true.

    Salesforce reports it per record as ``FIELD_CUSTOM_VALIDATION_EXCEPTION`` with the rule's error message, on
    the rule's error field when it has one.
    """

    sobject: str
    name: str
    condition: Callable[[Mapping[str, Any]], bool]
    message: str
    field: str | None = None
    active: bool = True


@dataclass
class DuplicateRule:
    """An active duplicate rule on one object: a record whose ``key`` (its matching rule, e.g. the lower-cased
    e-mail) equals another live record's is a duplicate.

    Duplicate rules run when a record is created *or edited* (``actionOnUpdate``: "whether users can create a
    duplicate record while editing an existing record",
    https://developer.salesforce.com/docs/atlas.en-us.uiapi.meta/uiapi/ui_api_responses_duplicate_rule.htm).
    Whether an edit that leaves the matching fields alone is checked is not documented; the emulator takes the
    harder case and checks every edit. ``action = "block"`` refuses the save everywhere; ``"allow"`` with an
    alert refuses an API save unless the request carries ``Sforce-Duplicate-Rule-Header: allowSave=true``
    (every field of the header defaults to false,
    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_duplicaterules.htm).
    Bulk API requests carry no such header; whether Bulk honours alert rules is not documented, so the emulator
    refuses those rows too (the harder case). Either way the error is ``DUPLICATES_DETECTED``.
    """

    sobject: str
    name: str
    key: Callable[[Mapping[str, Any]], Any]
    action: str = "allow"
    message: str = "Use one of these records?"
    active: bool = True


@dataclass
class _Grant:
    read: bool = False
    edit: bool = False


@dataclass
class OrgInfo:
    """Ids of the org's fixed setup records."""

    org_id: str = ""
    profile_id: str = ""
    profile_permission_set_id: str = ""
    user_id: str = ""
    username: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    admin_user_id: str = ""
    admin_username: str = ""


class Store:
    """All records of one emulated org; thread-safe."""

    def __init__(self, *, clock: Callable[[], datetime] | None = None,
                 username: str = "integration@clm-sandbox.example", org_name: str = "crm-lifecycle sandbox",
                 is_sandbox: bool = False, admin_username: str = "admin@clm-sandbox.example",
                 late_commits: float = 0.02) -> None:
        self.lock = threading.RLock()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.duplicate_rules: list[DuplicateRule] = []
        self.objects = standard_objects()
        self.tooling = tooling_objects()
        self._names = {n.lower(): n for n in self.objects}
        self._tooling_names = {n.lower(): n for n in self.tooling}
        self.records: dict[str, dict[str, Record]] = {n: {} for n in (*self.objects, *self.tooling)}
        self.by_id: dict[str, Record] = {}
        self._type_of: dict[str, str] = {}
        self._children: dict[tuple[str, str], dict[str, list[str]]] = {}
        self.delete_log = DeleteLog()
        self.deleted_at = self.delete_log.deleted_at
        self.commits = LateCommits(late_commits)
        """Open transactions (see :mod:`.consistency`); ``late_commits`` is the fraction of person saves in them."""
        self.ids = ids.IdFactory()
        self.writes: Counter[tuple[str, str]] = Counter()
        self.write_log: list[WriteEvent] = []
        self.validation_rules: list[ValidationRule] = []
        self._perm_version = 0
        self._grants_version = -1
        self._grants: dict[str, dict[str, _Grant]] = {}
        self._acting = threading.local()
        self.user_permissions: dict[str, frozenset[str]] = {}
        """System permissions per user Id (from each user's profile)."""
        self._shapes: dict[str, tuple[dict[str, Any], list[str]]] = {}
        self.org = OrgInfo()
        self._bootstrap(username, org_name, is_sandbox, admin_username)

    # ------------------------------------------------------------ a saved org (clm sandbox serve --state)

    def __getstate__(self) -> dict[str, Any]:
        with self.lock:
            self.commits.settle_all()  # the pending commits are closures: apply them rather than lose them
            state = dict(vars(self))
        for name in ("lock", "clock", "_acting", "_grants", "_shapes"):
            state.pop(name)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)
        # A restored org runs on the wall clock (a test's fake clock is not saved) and rebuilds its caches.
        self.lock = threading.RLock()
        self.clock = lambda: datetime.now(UTC)
        self._acting = threading.local()
        self._grants, self._grants_version, self._shapes = {}, -1, {}

    # ------------------------------------------------------------ basics

    def now(self) -> datetime:
        """The current time, millisecond precision (as Salesforce stores it)."""
        return truncate_ms(self.clock().astimezone(UTC))

    def object(self, name: str) -> ObjectDef | None:
        """A data/setup object by name, case-insensitively."""
        canonical = self._names.get(name.lower())
        return self.objects[canonical] if canonical else None

    def add_object(self, obj: ObjectDef) -> ObjectDef:
        """Make an object exist in the org (one an org feature brings, such as ``CurrencyType``)."""
        with self.lock:
            self.objects[obj.name] = obj
            self._names[obj.name.lower()] = obj.name
            self.records.setdefault(obj.name, {})
            return obj

    def tooling_object(self, name: str) -> ObjectDef | None:
        """A Tooling API object by name, case-insensitively."""
        canonical = self._tooling_names.get(name.lower())
        return self.tooling[canonical] if canonical else None

    def object_of(self, record_id: str) -> ObjectDef | None:
        """The object a stored record belongs to."""
        name = self._type_of.get(record_id)
        return (self.objects.get(name) or self.tooling.get(name)) if name else None

    def get(self, record_id: str) -> Record | None:
        """A record by (15- or 18-character) Id."""
        normalized = ids.normalize(record_id)
        self.settle()
        return self.by_id.get(normalized) if normalized else None

    def scan(self, obj: ObjectDef, include_deleted: bool) -> Iterable[Record]:
        """Records of ``obj`` in Id order (a snapshot list, safe to iterate without the lock)."""
        with self.lock:
            self.settle()
            rows = list(self.records[obj.name].values())
        return rows if include_deleted else [r for r in rows if not r.get("IsDeleted")]

    def children(self, relationship: ChildRelationship, parent_id: str, include_deleted: bool) -> list[Record]:
        """Records of ``relationship.child_object`` whose ``relationship.field`` points at ``parent_id``."""
        with self.lock:
            self.settle()
            child_ids = list(self._children.get((relationship.child_object, relationship.field), {})
                             .get(parent_id, ()))
            rows = [self.by_id[i] for i in child_ids if i in self.by_id]
        return rows if include_deleted else [r for r in rows if not r.get("IsDeleted")]

    # ------------------------------------------------------------ field-level security

    def acting_user(self) -> str:
        """The Id of the user the current request runs as (the integration user outside requests)."""
        return getattr(self._acting, "user_id", None) or self.org.user_id

    @contextmanager
    def acting_as(self, user_id: str | None) -> Iterator[None]:
        """Run the block as ``user_id`` (this thread only): field-level security and setup rights follow it."""
        before = getattr(self._acting, "user_id", None)
        self._acting.user_id = user_id
        try:
            yield
        finally:
            self._acting.user_id = before

    def has_permission(self, permission: str, user_id: str | None = None) -> bool:
        """Whether a user (default: the acting one) holds a system permission (a :data:`SETUP_PERMISSIONS` key)."""
        return permission in self.user_permissions.get(user_id or self.acting_user(), frozenset())

    def require(self, obj: ObjectDef) -> None:
        """Refuse a write to a setup object the acting user has no right to change (INSUFFICIENT_ACCESS_OR_READONLY)."""
        needed = _SETUP_WRITES.get(obj.name)
        if needed is not None and not self.has_permission(needed):
            raise RecordError("INSUFFICIENT_ACCESS_OR_READONLY",
                              f"insufficient access rights on object id (needs '{SETUP_PERMISSIONS[needed]}')", [])

    def _grant_table(self) -> dict[str, _Grant]:
        if self._grants_version != self._perm_version:
            self._grants = {}
            self._grants_version = self._perm_version
        user = self.acting_user()
        grants = self._grants.get(user)
        if grants is None:
            assigned = {r["PermissionSetId"] for r in self.records["PermissionSetAssignment"].values()
                        if r["AssigneeId"] == user}
            grants = {}
            for row in self.records["FieldPermissions"].values():
                if row["ParentId"] in assigned:
                    grant = grants.setdefault(row["Field"].lower(), _Grant())
                    grant.read = grant.read or bool(row.get("PermissionsRead"))
                    grant.edit = grant.edit or bool(row.get("PermissionsEdit"))
            self._grants[user] = grants
        return grants

    def readable(self, obj: ObjectDef, definition: FieldDef) -> bool:
        """Whether the acting user can see the field (describe, SOQL, results)."""
        if obj.tooling or obj.name not in DATA_OBJECTS or not definition.permissionable or definition.profile_read:
            return True
        with self.lock:
            grant = self._grant_table().get(f"{obj.name}.{definition.name}".lower())
        return bool(grant and grant.read)

    def editable(self, obj: ObjectDef, definition: FieldDef, *, create: bool = False) -> bool:
        """Whether the acting user can write the field (it must also be readable)."""
        if not (definition.createable if create else definition.updateable):
            return False
        if obj.tooling or obj.name not in DATA_OBJECTS or not definition.permissionable:
            return True
        if definition.profile_read and definition.profile_edit:
            return True
        with self.lock:
            grant = self._grant_table().get(f"{obj.name}.{definition.name}".lower())
        return bool(grant and grant.read and grant.edit)

    def visible_fields(self, obj: ObjectDef) -> list[FieldDef]:
        """The fields describe shows to the acting user."""
        return [f for f in obj if self.readable(obj, f)]

    # ------------------------------------------------------------ writes (internal)

    def _shape(self, obj: ObjectDef) -> tuple[dict[str, Any], list[str]]:
        """Defaults and reference fields of an object (cached; seeding inserts many records per object)."""
        shape = self._shapes.get(obj.name)
        if shape is None:
            defaults = {f.name: f.default_value for f in obj if f.default_value is not None}
            shape = self._shapes[obj.name] = (defaults, [f.name for f in obj if f.type == "reference"])
        return shape

    def fields_changed(self) -> None:
        """Forget cached object shapes after fields were added, changed or removed."""
        with self.lock:
            self._shapes.clear()
            self._perm_version += 1

    def _index(self, obj: ObjectDef, record: Record, old: Mapping[str, Any] | None = None) -> None:
        for name in self._shape(obj)[1]:
            key = (obj.name, name)
            before = old.get(name) if old is not None else None
            after = record.get(name)
            if old is not None and before == after:
                continue
            table = self._children.setdefault(key, {})
            if before and record["Id"] in table.get(before, ()):
                table[before].remove(record["Id"])
            if after:
                table.setdefault(after, []).append(record["Id"])

    def _derive(self, obj: ObjectDef, record: Record, changed: Iterable[str]) -> None:
        """Recompute calculated fields, as Salesforce does on save."""
        changed = set(changed)
        if obj.name in ("Contact", "Lead", "User") and {"FirstName", "LastName"} & changed:
            record["Name"] = " ".join(p for p in (record.get("FirstName"), record.get("LastName")) if p)
        if obj.name == "Opportunity":
            stage = _STAGES.get(record.get("StageName") or "")
            if stage and "StageName" in changed:
                record["IsClosed"], record["IsWon"] = stage[2], stage[3]
                if "Probability" not in changed:
                    record["Probability"] = float(stage[1])
                if "ForecastCategoryName" not in changed:
                    record["ForecastCategoryName"] = stage[4]
            amount, probability = record.get("Amount"), record.get("Probability")
            record["ExpectedRevenue"] = (round(amount * probability / 100, 2)
                                         if amount is not None and probability is not None else None)
            close = record.get("CloseDate")
            if isinstance(close, date):
                record["FiscalYear"], record["FiscalQuarter"] = close.year, (close.month - 1) // 3 + 1

    def _insert_raw(self, obj: ObjectDef, values: Mapping[str, Any], *, created: datetime | None = None,
                    modified: datetime | None = None, record_id: str | None = None) -> Record:
        created = truncate_ms(created) if created else self.now()
        modified = truncate_ms(modified) if modified else created
        record: Record = {"Id": record_id or self.ids.new(obj.key_prefix)}
        record.update(self._shape(obj)[0])
        if "OwnerId" in obj.fields:
            record["OwnerId"] = self.org.user_id
        record.update(values)
        record.update({"CreatedDate": created, "LastModifiedDate": modified, "SystemModstamp": modified,
                       "CreatedById": self.org.user_id or record["Id"],
                       "LastModifiedById": self.org.user_id or record["Id"]})
        if obj.soft_delete:
            record.setdefault("IsDeleted", False)
        self._derive(obj, record, record.keys())
        self.records[obj.name][record["Id"]] = record
        self.by_id[record["Id"]] = record
        self._type_of[record["Id"]] = obj.name
        self._index(obj, record)
        if obj.name in ("FieldPermissions", "PermissionSetAssignment"):
            self._perm_version += 1
        return record

    def _touch(self, record: Record, when: datetime) -> None:
        record["LastModifiedDate"] = when
        record["SystemModstamp"] = when
        record["LastModifiedById"] = self.org.user_id

    # ------------------------------------------------------------ bootstrap

    def _bootstrap(self, username: str, org_name: str, is_sandbox: bool, admin_username: str) -> None:
        org = self._insert_raw(self.objects["Organization"], {
            "Name": org_name, "IsSandbox": is_sandbox, "OrganizationType": "Enterprise Edition",
            "InstanceName": "CS42" if is_sandbox else "NA42", "TimeZoneSidKey": "GMT",
            "DefaultLocaleSidKey": "en_US"})
        profile = self._insert_raw(self.objects["Profile"], {"Name": "Minimum Access - API Only Integrations",
                                                             "UserType": "Standard"})
        user = self._insert_raw(self.objects["User"], {
            "Username": username, "Email": username, "FirstName": "CLM", "LastName": "Integration",
            "IsActive": True, "ProfileId": profile["Id"], "UserType": "Standard", "TimeZoneSidKey": "GMT"})
        self.org = OrgInfo(org["Id"], profile["Id"], "", user["Id"], username)
        for record in (org, profile, user):
            record["CreatedById"] = record["LastModifiedById"] = user["Id"]
        # Every profile owns a permission set; its assignment to the user is visible through the API.
        owned = self._insert_raw(self.objects["PermissionSet"], {
            "Name": f"X{profile['Id'][:15]}_sysadmin", "Label": profile["Id"][:15], "IsOwnedByProfile": True,
            "IsCustom": False, "ProfileId": profile["Id"]})
        self.org.profile_permission_set_id = owned["Id"]
        self._insert_raw(self.objects["PermissionSetAssignment"], {
            "AssigneeId": user["Id"], "PermissionSetId": owned["Id"]})
        self.user_permissions[user["Id"]] = INTEGRATION_PERMISSIONS
        admin_profile = self._insert_raw(self.objects["Profile"], {"Name": "System Administrator",
                                                                   "UserType": "Standard"})
        admin = self._insert_raw(self.objects["User"], {
            "Username": admin_username, "Email": admin_username, "FirstName": "CLM", "LastName": "Admin",
            "IsActive": True, "ProfileId": admin_profile["Id"], "UserType": "Standard", "TimeZoneSidKey": "GMT"})
        admin_owned = self._insert_raw(self.objects["PermissionSet"], {
            "Name": f"X{admin_profile['Id'][:15]}_sysadmin", "Label": admin_profile["Id"][:15],
            "IsOwnedByProfile": True, "IsCustom": False, "ProfileId": admin_profile["Id"]})
        self._insert_raw(self.objects["PermissionSetAssignment"], {
            "AssigneeId": admin["Id"], "PermissionSetId": admin_owned["Id"]})
        self.user_permissions[admin["Id"]] = ADMIN_PERMISSIONS
        self.org.admin_user_id, self.org.admin_username = admin["Id"], admin_username

    # ------------------------------------------------------------ custom fields

    def define_field(self, obj: ObjectDef, definition: FieldDef, metadata: Mapping[str, Any],
                     *, visible: bool) -> FieldDef:
        """Add a custom field (and its Tooling ``CustomField`` row); ``visible`` grants it through the profile."""
        with self.lock:
            definition.custom = True
            definition.profile_read = visible
            definition.profile_edit = visible
            row = self._insert_raw(self.tooling["CustomField"], {
                "DeveloperName": definition.name[:-3], "TableEnumOrId": obj.name, "NamespacePrefix": None,
                "FullName": f"{obj.name}.{definition.name}", "Metadata": dict(metadata),
                "Description": metadata.get("description")})
            definition.tooling_id = row["Id"]
            obj.add(definition)
            self.fields_changed()
            return definition

    def remove_field(self, obj: ObjectDef, name: str) -> None:
        """Delete a custom field and its values."""
        with self.lock:
            definition = obj.field(name)
            if definition is None:
                return
            obj.remove(name)
            for record in self.records[obj.name].values():
                record.pop(definition.name, None)
            if definition.tooling_id:
                self.records["CustomField"].pop(definition.tooling_id, None)
                self.by_id.pop(definition.tooling_id, None)
            self.fields_changed()

    def field_for_tooling_id(self, tooling_id: str) -> tuple[ObjectDef, FieldDef] | None:
        """The object and field behind a Tooling ``CustomField`` Id."""
        for obj in self.objects.values():
            for definition in obj:
                if definition.tooling_id == tooling_id:
                    return obj, definition
        return None

    # ------------------------------------------------------------ validated writes

    def rules_for(self, obj: ObjectDef) -> list[ValidationRule]:
        """Active validation rules of an object."""
        return [r for r in self.validation_rules if r.active and r.sobject.lower() == obj.name.lower()]

    def _run_rules(self, obj: ObjectDef, merged: Mapping[str, Any]) -> None:
        for rule in self.rules_for(obj):
            if rule.condition(merged):
                raise RecordError("FIELD_CUSTOM_VALIDATION_EXCEPTION", rule.message,
                                  [rule.field] if rule.field else [])

    def _run_duplicate_rules(self, obj: ObjectDef, record: Record, merged: Mapping[str, Any],
                             allow_save: bool) -> None:
        for rule in self.duplicate_rules:
            if not rule.active or rule.sobject.lower() != obj.name.lower():
                continue
            if allow_save and rule.action != "block":
                continue
            key = rule.key(merged)
            if key in (None, ""):
                continue
            for other in self.scan(obj, include_deleted=False):
                if other["Id"] != record["Id"] and rule.key(other) == key:
                    raise RecordError("DUPLICATES_DETECTED", rule.message, [])

    def prepare_update(self, obj: ObjectDef, raw_id: Any, values: Mapping[str, Any], *, allow_save: bool = False
                       ) -> tuple[Record, dict[str, Any]]:
        """Validate an update of one record; returns the record and the checked changes, or raises RecordError.

        Checks, in Salesforce's order: the Id (missing → ``MISSING_ARGUMENT``, malformed or of another object →
        ``MALFORMED_ID``, unknown → ``INVALID_CROSS_REFERENCE_KEY``, in the recycle bin →
        ``ENTITY_IS_DELETED``; a converted lead → ``CANNOT_UPDATE_CONVERTED_LEAD``), writable fields
        (``INVALID_FIELD_FOR_INSERT_UPDATE``), each value, validation rules, then duplicate rules (``allow_save``:
        the request's ``Sforce-Duplicate-Rule-Header: allowSave=true``). The Data Loader error article lists the
        Id errors: https://help.salesforce.com/s/articleView?id=000387915&type=1
        """
        if raw_id is None or raw_id == "":
            raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call", [])
        normalized = ids.normalize(raw_id)
        if normalized is None or normalized[:3] != obj.key_prefix:
            raise RecordError("MALFORMED_ID", f"{obj.label} ID: id value of incorrect type: {raw_id}", ["Id"])
        with self.lock:
            record = self.by_id.get(normalized)
            if record is None:
                raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
            if record.get("IsDeleted"):
                raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [])
            if obj.name == "Lead" and record.get("IsConverted"):
                # A converted lead is read-only to the API ("CANNOT_UPDATE_CONVERTED_LEAD: A converted lead could
                # not be updated", SOAP API StatusCode reference,
                # https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_concepts_core_data_objects.htm).
                raise RecordError("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", [])
            refused = [name for name in values if not self.editable(obj, obj.fields[name])]
            if refused:
                raise RecordError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {', '.join(refused)}. Please check the security settings of "
                    "this field and verify that it is read/write for your profile or permission set.", refused)
            checked = {name: check(obj.fields[name], value) for name, value in values.items()}
            self._check_setup_update(obj, record, checked)
            merged = {**record, **checked}
            self._run_rules(obj, merged)
            self._run_duplicate_rules(obj, record, merged, allow_save)
            return record, checked

    def apply_update(self, obj: ObjectDef, record: Record, changes: Mapping[str, Any], when: datetime,
                     source: str) -> None:
        """Apply validated changes to one record and stamp it (one save)."""
        with self.lock:
            self.commits.flush(record["Id"])
            old = dict(record)
            record.update(changes)
            self._derive(obj, record, changes.keys())
            self._index(obj, record, old)
            self._touch(record, when)
            if source in ("api", "bulk"):
                for name, value in changes.items():
                    self.writes[(record["Id"], name)] += 1
                    self.write_log.append(WriteEvent(record["Id"], name, value, source, when))
            if obj.name == "FieldPermissions":
                self._perm_version += 1
                if not record.get("PermissionsRead"):
                    # "A FieldPermissions record must have at minimum PermissionsRead set to true, or it will be
                    # deleted" (FieldPermissions object reference).
                    self.delete(record["Id"], when)

    def create(self, obj: ObjectDef, values: Mapping[str, Any], source: str = "api") -> Record:
        """Validate and insert one record (REST create); raises RecordError."""
        with self.lock:
            refused = [name for name in values if not self.editable(obj, obj.fields[name], create=True)]
            if refused:
                raise RecordError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {', '.join(refused)}. Please check the security settings of "
                    "this field and verify that it is read/write for your profile or permission set.", refused)
            checked = {name: check(obj.fields[name], value) for name, value in values.items()}
            missing = [f.name for f in obj if f.required and f.createable and checked.get(f.name) is None
                       and f.default_value is None]
            if missing:
                raise RecordError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                                  missing)
            checked = self._check_setup_insert(obj, checked)
            self._run_rules(obj, checked)
            record = self._insert_raw(obj, checked)
            if source in ("api", "bulk"):
                for name, value in checked.items():
                    self.writes[(record["Id"], name)] += 1
                    self.write_log.append(WriteEvent(record["Id"], name, value, source, record["CreatedDate"]))
            return record

    def _check_setup_insert(self, obj: ObjectDef, values: dict[str, Any]) -> dict[str, Any]:
        self.require(obj)
        duplicate = RecordError("DUPLICATE_VALUE",
                                "duplicate value found: <unknown> duplicates value on record with id: <unknown>", [])
        if obj.name == "FieldPermissions":
            parent = self.by_id.get(values.get("ParentId") or "")
            if parent is None or self._type_of.get(parent["Id"]) != "PermissionSet":
                raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["ParentId"])
            sobject, field_name = values.get("SobjectType"), values.get("Field") or ""
            target = self.object(sobject or "")
            object_part, _, field_part = field_name.partition(".")
            definition = target.field(field_part) if target and object_part.lower() == target.name.lower() else None
            if target is None or definition is None or not definition.permissionable:
                raise RecordError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                  f"Field Name: bad value for restricted picklist field: {field_name}", ["Field"])
            if values.get("PermissionsEdit") and not values.get("PermissionsRead"):
                raise RecordError("FIELD_INTEGRITY_EXCEPTION",
                                  "Permission Edit Field depends on permission(s): Read Field", ["PermissionsEdit"])
            key = f"{target.name}.{definition.name}".lower()
            if any(r["ParentId"] == parent["Id"] and r["Field"].lower() == key
                   for r in self.records["FieldPermissions"].values()):
                raise duplicate
            # Stored with the API names' own case, as Salesforce returns them.
            values = {**values, "SobjectType": target.name, "Field": f"{target.name}.{definition.name}"}
        elif obj.name == "PermissionSetAssignment":
            if self._type_of.get(values.get("AssigneeId") or "") != "User":
                raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["AssigneeId"])
            if self._type_of.get(values.get("PermissionSetId") or "") != "PermissionSet":
                raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["PermissionSetId"])
            if any(r["AssigneeId"] == values["AssigneeId"] and r["PermissionSetId"] == values["PermissionSetId"]
                   for r in self.records["PermissionSetAssignment"].values()):
                raise duplicate
        elif obj.name == "PermissionSet":
            name = str(values.get("Name") or "")
            if any(r["Name"].lower() == name.lower() for r in self.records["PermissionSet"].values()):
                raise RecordError("DUPLICATE_DEVELOPER_NAME", "The API name you entered is already in use.", ["Name"])
        elif obj.name in DATA_OBJECTS:
            for name, value in values.items():
                definition = obj.fields[name]
                if definition.type == "reference" and value and value not in self.by_id:
                    raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [name])
        return values

    def _check_setup_update(self, obj: ObjectDef, record: Record, changes: Mapping[str, Any]) -> None:
        self.require(obj)
        if obj.name == "FieldPermissions" and changes.get("PermissionsEdit") and not (
                changes.get("PermissionsRead", record.get("PermissionsRead"))):
            raise RecordError("FIELD_INTEGRITY_EXCEPTION",
                              "Permission Edit Field depends on permission(s): Read Field", ["PermissionsEdit"])
        if obj.name in DATA_OBJECTS:
            for name, value in changes.items():
                if obj.fields[name].type == "reference" and value and value not in self.by_id:
                    raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [name])

    # ------------------------------------------------------------ lifecycle (people, recycle bin, merges)

    def delete(self, record_id: str, when: datetime | None = None) -> bool:
        """Delete a record: data objects go to the recycle bin (``IsDeleted``), setup rows are removed.

        Deleting an Opportunity or a Contact also deletes its contact roles, as Salesforce cascades them. A
        contact role deleted by itself is hard-deleted: it never reaches the Recycle Bin, so ``queryAll`` does not
        return it, and only the delete log (getDeleted) knows it. The OpportunityContactRole reference lists
        getDeleted() among its supported calls
        (https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_opportunitycontactrole.htm);
        replication vendors list tables Salesforce deletes "without using the recycle bin" and that a
        ``queryAll`` replica never sees deleted (learn.capstorm.com/best-practices/deleted-record-management); the
        emulator takes that, the harder case, for contact roles deleted directly (issue 19).
        Returns False if the record does not exist or is already deleted.
        """
        with self.lock:
            record = self.get(record_id)
            obj = self.object_of(record["Id"]) if record else None
            if record is None or obj is None or record.get("IsDeleted"):
                return False
            when = when or self.now()
            self.commits.flush(record["Id"])
            if obj.name == "OpportunityContactRole":
                self.deleted_at[record["Id"]] = when
                self._remove(record["Id"])
                return True
            if not obj.soft_delete:
                del self.records[obj.name][record["Id"]]
                del self.by_id[record["Id"]]
                if obj.name in ("FieldPermissions", "PermissionSetAssignment"):
                    self._perm_version += 1
                return True
            record["IsDeleted"] = True
            self._touch(record, when)
            self.deleted_at[record["Id"]] = when
            if obj.name in ("Opportunity", "Contact"):
                field_name = "OpportunityId" if obj.name == "Opportunity" else "ContactId"
                for child in self.children(ChildRelationship("", "OpportunityContactRole", field_name),
                                           record["Id"], False):
                    child["IsDeleted"] = True
                    self._touch(child, when)
                    self.deleted_at[child["Id"]] = when
            return True

    def discard(self, record_id: str) -> None:
        """Remove a record as if it had never been created (a rolled-back insert)."""
        with self.lock:
            record = self.by_id.pop(record_id, None)
            name = self._type_of.pop(record_id, None)
            if record is None or name is None:
                return
            obj = self.objects.get(name) or self.tooling[name]
            del self.records[name][record_id]
            for definition in obj:
                parent = record.get(definition.name) if definition.type == "reference" else None
                siblings = self._children.get((name, definition.name), {}).get(parent or "", [])
                if record_id in siblings:
                    siblings.remove(record_id)
            for key in [k for k in self.writes if k[0] == record_id]:
                del self.writes[key]
            self.write_log = [w for w in self.write_log if w.record_id != record_id]
            if name in ("FieldPermissions", "PermissionSetAssignment"):
                self._perm_version += 1

    def undelete(self, record_id: str) -> bool:
        """Restore a record from the recycle bin."""
        with self.lock:
            record = self.get(record_id)
            if record is None or not record.get("IsDeleted") or record.get("MasterRecordId"):
                return False
            record["IsDeleted"] = False
            self._touch(record, self.now())
            self.deleted_at.pop(record["Id"], None)
            return True

    def merge(self, master_id: str, loser_ids: Iterable[str]) -> None:
        """Merge records into ``master_id`` as a person would: losers are deleted with ``MasterRecordId`` set,
        their contact roles move to the master, and the master is stamped."""
        with self.lock:
            master = self.get(master_id)
            if master is None:
                raise KeyError(master_id)
            obj = self.object_of(master["Id"])
            assert obj is not None
            when = self.now()
            for loser_id in loser_ids:
                loser = self.get(loser_id)
                if loser is None or self.object_of(loser["Id"]) is not obj:
                    raise KeyError(loser_id)
                if obj.name == "Contact":
                    roles = self.children(ChildRelationship("", "OpportunityContactRole", "ContactId"),
                                          loser["Id"], False)
                    role_obj = self.objects["OpportunityContactRole"]
                    for role in roles:
                        old = dict(role)
                        role["ContactId"] = master["Id"]
                        self._index(role_obj, role, old)
                        self._touch(role, when)
                loser["MasterRecordId"] = master["Id"]
                loser["IsDeleted"] = True
                self._touch(loser, when)
                self.deleted_at[loser["Id"]] = when
            self._touch(master, when)

    def convert_lead(self, lead_id: str, *, contact_id: str | None = None, account_id: str | None = None,
                     field_map: Mapping[str, str] | None = None) -> str:
        """Convert a lead as a salesperson would (``convertLead()``); returns the Contact's Id.

        Without ``contact_id``/``account_id`` a new Account (from ``Company`` and the company fields) and a new
        Contact are created; into existing ones, "only empty fields in the target object are overwritten"
        (https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_convertlead.htm).
        Standard fields map by name; custom lead fields only where the admin mapped them (``field_map``: lead
        field -> contact field, Setup's "Map Lead Fields"). The lead stays, stamped, with ``IsConverted``,
        ``ConvertedDate``, ``ConvertedContactId`` and ``ConvertedAccountId`` set (the lead update of a conversion,
        https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_standard_objects_lead_conversion.htm);
        it cannot be updated any more.
        """
        with self.lock:
            lead = self.get(lead_id)
            if lead is None or self._type_of.get(lead["Id"]) != "Lead" or lead.get("IsDeleted"):
                raise KeyError(lead_id)
            if lead.get("IsConverted"):
                raise RecordError("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", [])
            when = self.now()
            account_obj, contact_obj = self.objects["Account"], self.objects["Contact"]
            company = {"Name": lead.get("Company"), "Industry": lead.get("Industry"),
                       "AnnualRevenue": lead.get("AnnualRevenue"), "NumberOfEmployees": lead.get("NumberOfEmployees")}
            person = {name: lead.get(name) for name in ("FirstName", "LastName", "Email", "Phone", "Title",
                                                        "LeadSource")}
            person.update({target: lead.get(source) for source, target in (field_map or {}).items()})
            account = self._converted_into(account_obj, account_id, company, when)
            person["AccountId"] = account["Id"]
            contact = self._converted_into(contact_obj, contact_id, person, when)
            lead.update({"IsConverted": True, "ConvertedDate": when.date(), "ConvertedContactId": contact["Id"],
                         "ConvertedAccountId": account["Id"], "Status": "Closed - Converted"})
            self._touch(lead, when)
            return str(contact["Id"])

    def _converted_into(self, obj: ObjectDef, record_id: str | None, values: Mapping[str, Any],
                        when: datetime) -> Record:
        """The record a lead converts into: a new one, or an existing one whose empty fields are filled."""
        values = {k: v for k, v in values.items() if v is not None}
        if record_id is None:
            return self._insert_raw(obj, values, created=when)
        record = self.get(record_id)
        if record is None or self._type_of.get(record["Id"]) != obj.name:
            raise KeyError(record_id)
        old = dict(record)
        record.update({k: v for k, v in values.items() if record.get(k) in (None, "")})
        self._derive(obj, record, values.keys())
        self._index(obj, record, old)
        self._touch(record, when)
        return record

    def edit(self, record_id: str, values: Mapping[str, Any], *, commit_after: float | None = None) -> Record:
        """Change a record as a person would in the UI (no API write counted; stamps the record).

        The save is stamped now and readable once its transaction commits, ``commit_after`` seconds later (None:
        the store's share of late person saves, see :mod:`.consistency`); until then readers see the record as
        it was, which is what is returned.

        Only this record is stamped: its children's parent fields (``Contact.Account.Industry``) and cross-object
        formulas read the new value, but their ``SystemModstamp`` stays ("Changes to formula fields that are
        driven by a change in a parent object don't update the SystemModStamp of the child object", Heroku
        Connect docs quoted in github.com/heroku/roadmap/issues/319; Salesforce Help article 000396215: values
        computed at query time change no timestamp).

        Raises KeyError for unknown records/fields and RecordError for values the field refuses.
        """
        with self.lock:
            record = self.get(record_id)
            obj = self.object_of(record["Id"]) if record else None
            if record is None or obj is None:
                raise KeyError(record_id)
            changes = {}
            for name, value in values.items():
                definition = obj.field(name)
                if definition is None:
                    raise KeyError(f"{obj.name}.{name}")
                changes[definition.name] = check(definition, python_value(value))
            when = self.now()
            self.commits.flush(record["Id"])
            late = obj.name in DATA_OBJECTS
            delay = commit_after if commit_after is not None else self.commits.person_delay() if late else 0.0

            def commit() -> None:
                old = dict(record)
                record.update(changes)
                self._derive(obj, record, changes.keys())
                self._index(obj, record, old)
                self._touch(record, when)
                if obj.name in ("FieldPermissions", "PermissionSetAssignment"):
                    # An admin changing access in Setup: the cached grant table must not keep the old access.
                    self._perm_version += 1
                for name, value in changes.items():
                    self.write_log.append(WriteEvent(record["Id"], name, value, "user", when))

            if delay > 0:
                self.commits.schedule(when + timedelta(seconds=delay), record["Id"], commit)
            else:
                commit()
            return record

    def insert_seed(self, obj: ObjectDef, values: Mapping[str, Any], *, created: datetime | None = None,
                    modified: datetime | None = None, deleted: bool = False, record_id: str | None = None) -> Record:
        """Insert a record from seed data (trusted values, given timestamps, optionally a given Id)."""
        with self.lock:
            record = self._insert_raw(obj, values, created=created, modified=modified, record_id=record_id)
            if deleted and obj.soft_delete:
                record["IsDeleted"] = True
                self.deleted_at[record["Id"]] = record["SystemModstamp"]
            return record

    def insert(self, obj: ObjectDef, values: Mapping[str, Any], *, commit_after: float = 0.0) -> str:
        """Create a record as a person or another integration would (validated; not counted as our API write),
        stamped now and readable ``commit_after`` seconds later; returns its Id."""
        with self.lock:
            record = self.create(obj, values, source="user")
            if commit_after > 0:
                self._remove(record["Id"])
                self.commits.schedule(self.now() + timedelta(seconds=commit_after), record["Id"],
                                      lambda: self._restore(obj, record))
            return str(record["Id"])

    # ------------------------------------------------------------ late commits, the Recycle Bin's retention

    def settle(self) -> None:
        """Commit the open transactions and physically delete the expired deletions whose time has come."""
        if not len(self.commits) and not self.deleted_at:
            return
        with self.lock:
            now = self.now()
            self.commits.settle(now)
            for record_id in self.delete_log.due(now):
                self._purge(record_id)

    def empty_recycle_bin(self) -> int:
        """An administrator empties the Recycle Bin: every deleted record is physically deleted now."""
        with self.lock:
            gone = list(self.deleted_at)
            for record_id in gone:
                self._purge(record_id)
            return len(gone)

    def _purge(self, record_id: str) -> None:
        record = self.by_id.get(record_id)
        if record is not None and record.get("IsDeleted"):
            self._remove(record_id)
        self.delete_log.forget(record_id, purged=True)

    def _remove(self, record_id: str) -> None:
        """Take a record out of every table and index (its writes stay in the log)."""
        record = self.by_id.pop(record_id, None)
        name = self._type_of.pop(record_id, None)
        if record is None or name is None:
            return
        del self.records[name][record_id]
        for field_name in self._shape(self.objects.get(name) or self.tooling[name])[1]:
            siblings = self._children.get((name, field_name), {}).get(record.get(field_name) or "", [])
            if record_id in siblings:
                siblings.remove(record_id)

    def _restore(self, obj: ObjectDef, record: Record) -> None:
        self.records[obj.name][record["Id"]] = record
        self.by_id[record["Id"]] = record
        self._type_of[record["Id"]] = obj.name
        self._index(obj, record)

    def count(self, obj_name: str, include_deleted: bool = False) -> int:
        """How many records an object holds."""
        with self.lock:
            self.settle()
            rows = self.records[obj_name].values()
            return len(rows) if include_deleted else sum(1 for r in rows if not r.get("IsDeleted"))


class View:
    """The catalog a SOQL query runs against: data objects, or Tooling objects."""

    def __init__(self, store: Store, tooling: bool = False) -> None:
        self.store = store
        self.tooling = tooling

    def object(self, name: str) -> ObjectDef | None:
        if self.tooling and not self.store.has_permission("ViewSetup"):
            # Without "View Setup and Configuration" the Tooling API's setup objects do not exist for the user:
            # a non-admin's Tooling query of CustomField answers INVALID_TYPE "sObject type ... is not supported"
            # (afawcett/apex-toolingapi#19: "When a non-admin (it works for admins) calls those methods").
            return None
        return self.store.tooling_object(name) if self.tooling else self.store.object(name)

    def readable(self, obj: ObjectDef, definition: FieldDef) -> bool:
        return self.store.readable(obj, definition)

    def get(self, record_id: str) -> Record | None:
        return self.store.get(record_id)

    def children(self, relationship: ChildRelationship, parent_id: str, include_deleted: bool) -> list[Record]:
        return self.store.children(relationship, parent_id, include_deleted)

    def scan(self, obj: ObjectDef, include_deleted: bool) -> Iterable[Record]:
        return self.store.scan(obj, include_deleted)

    def now(self) -> datetime:
        return self.store.now()

    def convert_currency(self, obj: ObjectDef, record: Record, field_name: str) -> Any:
        if "CurrencyType" not in self.store.objects:
            return None
        return converted(self.store, obj, record, field_name)


__all__ = ["OrgInfo", "Record", "Store", "ValidationRule", "View", "WriteEvent"]
