"""Object and field definitions of the emulated org, and their describe metadata.

Only what our connector touches is modelled: Contact, Lead, Account, Opportunity, OpportunityContactRole,
the setup objects behind field-level security (PermissionSet, PermissionSetAssignment, FieldPermissions),
User/Profile/Organization for "who am I", and the Tooling ``CustomField``. Field names, types, lengths and
flags follow the Object Reference (e.g.
https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_contact.htm).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from connectors.sandbox.salesforce.ids import KEY_PREFIXES

STRING_TYPES = frozenset({"string", "textarea", "email", "phone", "url", "picklist", "id", "reference"})
NUMBER_TYPES = frozenset({"double", "currency", "percent", "int"})

_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "string": "xsd:string",
    "textarea": "xsd:string",
    "email": "xsd:string",
    "phone": "xsd:string",
    "url": "xsd:string",
    "picklist": "xsd:string",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "int": "xsd:int",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
    "boolean": "xsd:boolean",
    "complexvalue": "urn:JsonNode",
}


@dataclass
class FieldDef:
    """One field of an sObject, with what describe reports and what field-level security needs."""

    name: str
    label: str
    type: str
    length: int = 0
    precision: int = 0
    scale: int = 0
    digits: int = 0
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    required: bool = False
    custom: bool = False
    calculated: bool = False
    unique: bool = False
    external_id: bool = False
    default_value: Any = None
    picklist: list[str] = field(default_factory=list)
    picklist_labels: dict[str, str] = field(default_factory=dict)
    """Label per picklist value where it differs from the value: records store the value (the Metadata API
    ``CustomValue.fullName``), people see the ``label``; describe returns both in each ``PicklistEntry``
    (https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_describesobjects_describesobjectresult.htm)."""
    restricted: bool = False
    reference_to: list[str] = field(default_factory=list)
    relationship_name: str | None = None
    profile_read: bool = True
    """Readable through the integration user's profile, without any permission set."""
    profile_edit: bool = True
    """Editable through the profile (only meaningful when ``updateable``)."""
    system: bool = False
    """Always visible (Id, audit fields): not subject to field-level security."""
    tooling_id: str | None = None
    """Id of the Tooling ``CustomField`` row for fields created through the Tooling API."""
    inline_help: str | None = None
    description: str | None = None

    @property
    def permissionable(self) -> bool:
        """Whether field-level security applies (Salesforce exempts required and system fields)."""
        return not (self.system or self.required or self.type == "id")

    def describe(self) -> dict[str, Any]:
        """The field's entry in ``sobjects/{Object}/describe``."""
        string_like = self.type in STRING_TYPES or self.type in ("textarea",)
        return {
            "aggregatable": self.type not in ("textarea", "complexvalue"),
            "autoNumber": False,
            "byteLength": self.length * 3 if string_like else 0,
            "calculated": self.calculated,
            "caseSensitive": False,
            "createable": self.createable,
            "custom": self.custom,
            "defaultValue": self.default_value,
            "defaultedOnCreate": self.default_value is not None or self.system,
            "digits": self.digits,
            "externalId": self.external_id,
            "filterable": self.type not in ("textarea", "complexvalue"),
            "groupable": self.type not in ("double", "currency", "percent", "textarea", "datetime", "complexvalue"),
            "idLookup": self.type == "id" or self.name == "Email",
            "inlineHelpText": self.inline_help,
            "label": self.label,
            "length": self.length,
            "name": self.name,
            "nameField": self.name == "Name",
            "nillable": self.nillable,
            "permissionable": self.permissionable,
            "picklistValues": [
                {"active": True, "defaultValue": False, "label": self.picklist_labels.get(value, value),
                 "validFor": None, "value": value}
                for value in self.picklist
            ],
            "precision": self.precision,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "restrictedPicklist": self.restricted,
            "scale": self.scale,
            "soapType": _SOAP_TYPES.get(self.type, "xsd:anyType"),
            "sortable": self.type not in ("textarea", "complexvalue"),
            "type": self.type,
            "unique": self.unique,
            "updateable": self.updateable,
        }


@dataclass(frozen=True)
class ChildRelationship:
    """A parent-to-children relationship usable in a SOQL sub-query (e.g. ``Opportunity.OpportunityContactRoles``)."""

    name: str
    child_object: str
    field: str


@dataclass
class ObjectDef:
    """One sObject type: its fields (in describe order) and how it behaves."""

    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: dict[str, FieldDef] = field(default_factory=dict)
    children: list[ChildRelationship] = field(default_factory=list)
    soft_delete: bool = True
    """Deleted records go to the recycle bin (``IsDeleted``, visible to queryAll) rather than vanish."""
    tooling: bool = False
    custom: bool = False
    _lower: dict[str, str] = field(default_factory=dict, repr=False)

    def add(self, definition: FieldDef) -> FieldDef:
        """Add (or replace) a field."""
        self.fields[definition.name] = definition
        self._lower[definition.name.lower()] = definition.name
        return definition

    def remove(self, name: str) -> None:
        """Remove a field (Tooling delete)."""
        canonical = self._lower.pop(name.lower(), None)
        if canonical:
            self.fields.pop(canonical, None)

    def field(self, name: str) -> FieldDef | None:
        """A field by name, case-insensitively (as SOQL and the REST API resolve names)."""
        canonical = self._lower.get(name.lower())
        return self.fields[canonical] if canonical else None

    def relationship(self, name: str) -> FieldDef | None:
        """The reference field behind relationship ``name`` (``Account`` → ``AccountId``)."""
        lowered = name.lower()
        for definition in self.fields.values():
            if definition.relationship_name and definition.relationship_name.lower() == lowered:
                return definition
        return None

    def child(self, name: str) -> ChildRelationship | None:
        """A child relationship by name, case-insensitively."""
        lowered = name.lower()
        return next((c for c in self.children if c.name.lower() == lowered), None)

    def __iter__(self) -> Iterator[FieldDef]:
        return iter(self.fields.values())


# ---------------------------------------------------------------- standard definitions


def _id() -> FieldDef:
    return FieldDef("Id", "Record ID", "id", length=18, createable=False, updateable=False, nillable=False,
                    system=True)


def _ref(name: str, label: str, target: str, *, rel: str | None = None, createable: bool = True,
         updateable: bool = True, nillable: bool = True, required: bool = False, system: bool = False) -> FieldDef:
    return FieldDef(name, label, "reference", length=18, reference_to=[target],
                    relationship_name=rel if rel is not None else name[:-2], createable=createable,
                    updateable=updateable, nillable=nillable, required=required, system=system)


def _audit(soft_delete: bool = True) -> list[FieldDef]:
    fields = []
    if soft_delete:
        fields.append(FieldDef("IsDeleted", "Deleted", "boolean", createable=False, updateable=False,
                               nillable=False, system=True, default_value=False))
    fields += [
        FieldDef("CreatedDate", "Created Date", "datetime", createable=False, updateable=False, nillable=False,
                 system=True),
        _ref("CreatedById", "Created By ID", "User", createable=False, updateable=False, nillable=False,
             system=True),
        FieldDef("LastModifiedDate", "Last Modified Date", "datetime", createable=False, updateable=False,
                 nillable=False, system=True),
        _ref("LastModifiedById", "Last Modified By ID", "User", createable=False, updateable=False,
             nillable=False, system=True),
        FieldDef("SystemModstamp", "System Modstamp", "datetime", createable=False, updateable=False,
                 nillable=False, system=True),
    ]
    return fields


def _text(name: str, label: str, length: int, **kw: Any) -> FieldDef:
    return FieldDef(name, label, "string", length=length, **kw)


def _picklist(name: str, label: str, values: Iterable[str], **kw: Any) -> FieldDef:
    return FieldDef(name, label, "picklist", length=255, picklist=list(values), **kw)


def _number(name: str, label: str, kind: str, precision: int, scale: int, **kw: Any) -> FieldDef:
    return FieldDef(name, label, kind, precision=precision, scale=scale, **kw)


def _readonly(definition: FieldDef, *, calculated: bool = False) -> FieldDef:
    definition.createable = False
    definition.updateable = False
    definition.calculated = calculated
    return definition


OPPORTUNITY_STAGES: list[tuple[str, int, bool, bool, str]] = [
    # name, default probability, IsClosed, IsWon, forecast category (the default Sales Process stages)
    ("Prospecting", 10, False, False, "Pipeline"),
    ("Qualification", 10, False, False, "Pipeline"),
    ("Needs Analysis", 20, False, False, "Pipeline"),
    ("Value Proposition", 50, False, False, "Pipeline"),
    ("Id. Decision Makers", 60, False, False, "Pipeline"),
    ("Perception Analysis", 70, False, False, "Pipeline"),
    ("Proposal/Price Quote", 75, False, False, "Pipeline"),
    ("Negotiation/Review", 90, False, False, "Commit"),
    ("Closed Won", 100, True, True, "Closed"),
    ("Closed Lost", 0, True, False, "Omitted"),
]

LEAD_SOURCES = ["Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other"]
INDUSTRIES = ["Agriculture", "Apparel", "Banking", "Biotechnology", "Chemicals", "Communications", "Construction",
              "Consulting", "Education", "Electronics", "Energy", "Engineering", "Entertainment", "Environmental",
              "Finance", "Food & Beverage", "Government", "Healthcare", "Hospitality", "Insurance", "Machinery",
              "Manufacturing", "Media", "Not For Profit", "Other", "Recreation", "Retail", "Shipping", "Technology",
              "Telecommunications", "Transportation", "Utilities"]
CONTACT_ROLES = ["Business User", "Decision Maker", "Economic Buyer", "Economic Decision Maker", "Evaluator",
                 "Executive Sponsor", "Influencer", "Technical Buyer", "Other"]


def _owned(name: str, label: str, plural: str, *, soft_delete: bool = True, owner: bool = True) -> ObjectDef:
    obj = ObjectDef(name, label, plural, KEY_PREFIXES[name], soft_delete=soft_delete)
    obj.add(_id())
    if owner:
        obj.add(_ref("OwnerId", "Owner ID", "User", rel="Owner", nillable=False))
    return obj


def _account() -> ObjectDef:
    obj = _owned("Account", "Account", "Accounts")
    obj.add(_readonly(_ref("MasterRecordId", "Master Record ID", "Account", rel="MasterRecord")))
    obj.add(_text("Name", "Account Name", 255, nillable=False, required=True))
    obj.add(_picklist("Type", "Account Type", ["Prospect", "Customer - Direct", "Customer - Channel",
                                               "Channel Partner / Reseller", "Installation Partner",
                                               "Technology Partner", "Other"]))
    obj.add(_picklist("Industry", "Industry", INDUSTRIES))
    obj.add(_number("AnnualRevenue", "Annual Revenue", "currency", 18, 0))
    obj.add(FieldDef("NumberOfEmployees", "Employees", "int", digits=8))
    obj.add(_text("BillingCity", "Billing City", 40))
    obj.add(_text("BillingCountry", "Billing Country", 80))
    obj.add(FieldDef("Website", "Website", "url", length=255))
    obj.add(FieldDef("Phone", "Account Phone", "phone", length=40))
    obj.add(FieldDef("Description", "Account Description", "textarea", length=32000))
    for audit in _audit():
        obj.add(audit)
    obj.children += [ChildRelationship("Contacts", "Contact", "AccountId"),
                     ChildRelationship("Opportunities", "Opportunity", "AccountId")]
    return obj


def _contact() -> ObjectDef:
    obj = _owned("Contact", "Contact", "Contacts")
    obj.add(_readonly(_ref("MasterRecordId", "Master Record ID", "Contact", rel="MasterRecord")))
    obj.add(_ref("AccountId", "Account ID", "Account"))
    obj.add(_text("LastName", "Last Name", 80, nillable=False, required=True))
    obj.add(_text("FirstName", "First Name", 40))
    obj.add(_picklist("Salutation", "Salutation", ["Mr.", "Ms.", "Mrs.", "Dr.", "Prof."]))
    obj.add(_readonly(_text("Name", "Full Name", 121, nillable=False), calculated=True))
    obj.add(FieldDef("Email", "Email", "email", length=80))
    obj.add(FieldDef("Phone", "Business Phone", "phone", length=40))
    obj.add(FieldDef("MobilePhone", "Mobile Phone", "phone", length=40))
    obj.add(_text("Title", "Title", 128))
    obj.add(_text("Department", "Department", 80))
    obj.add(_picklist("LeadSource", "Lead Source", LEAD_SOURCES))
    obj.add(_text("MailingCity", "Mailing City", 40))
    obj.add(_text("MailingCountry", "Mailing Country", 80))
    obj.add(_text("MailingPostalCode", "Mailing Zip/Postal Code", 20))
    obj.add(FieldDef("Birthdate", "Birthdate", "date"))
    obj.add(FieldDef("HasOptedOutOfEmail", "Email Opt Out", "boolean", nillable=False, default_value=False))
    obj.add(FieldDef("DoNotCall", "Do Not Call", "boolean", nillable=False, default_value=False))
    obj.add(FieldDef("Description", "Contact Description", "textarea", length=32000))
    obj.add(_readonly(FieldDef("LastActivityDate", "Last Activity", "date")))
    for audit in _audit():
        obj.add(audit)
    obj.children += [ChildRelationship("OpportunityContactRoles", "OpportunityContactRole", "ContactId")]
    return obj


def _lead() -> ObjectDef:
    obj = _owned("Lead", "Lead", "Leads")
    obj.add(_readonly(_ref("MasterRecordId", "Master Record ID", "Lead", rel="MasterRecord")))
    obj.add(_text("LastName", "Last Name", 80, nillable=False, required=True))
    obj.add(_text("FirstName", "First Name", 40))
    obj.add(_readonly(_text("Name", "Full Name", 121, nillable=False), calculated=True))
    obj.add(_text("Company", "Company", 255, nillable=False, required=True))
    obj.add(FieldDef("Email", "Email", "email", length=80))
    obj.add(FieldDef("Phone", "Phone", "phone", length=40))
    obj.add(_text("Title", "Title", 128))
    obj.add(_picklist("Status", "Lead Status", ["Open - Not Contacted", "Working - Contacted",
                                                "Closed - Converted", "Closed - Not Converted"],
                      nillable=False, required=True, default_value="Open - Not Contacted"))
    obj.add(_picklist("LeadSource", "Lead Source", LEAD_SOURCES))
    obj.add(_picklist("Industry", "Industry", INDUSTRIES))
    obj.add(_picklist("Rating", "Rating", ["Hot", "Warm", "Cold"]))
    obj.add(_number("AnnualRevenue", "Annual Revenue", "currency", 18, 0))
    obj.add(FieldDef("NumberOfEmployees", "Employees", "int", digits=8))
    obj.add(_text("City", "City", 40))
    obj.add(_text("Country", "Country", 80))
    obj.add(_readonly(FieldDef("IsConverted", "Converted", "boolean", nillable=False, default_value=False)))
    obj.add(_readonly(FieldDef("ConvertedDate", "Converted Date", "date")))
    obj.add(_readonly(_ref("ConvertedContactId", "Converted Contact ID", "Contact")))
    obj.add(_readonly(_ref("ConvertedAccountId", "Converted Account ID", "Account")))
    obj.add(_readonly(_ref("ConvertedOpportunityId", "Converted Opportunity ID", "Opportunity")))
    for audit in _audit():
        obj.add(audit)
    return obj


def _opportunity() -> ObjectDef:
    obj = _owned("Opportunity", "Opportunity", "Opportunities")
    obj.add(_ref("AccountId", "Account ID", "Account"))
    obj.add(_text("Name", "Name", 120, nillable=False, required=True))
    obj.add(_number("Amount", "Amount", "currency", 18, 2))
    # StageName behaves as restricted: only stages of the org's sales process are accepted.
    obj.add(_picklist("StageName", "Stage", [s[0] for s in OPPORTUNITY_STAGES], nillable=False, required=True,
                      restricted=True))
    obj.add(_number("Probability", "Probability (%)", "percent", 3, 0))
    obj.add(FieldDef("CloseDate", "Close Date", "date", nillable=False, required=True))
    obj.add(_readonly(FieldDef("IsClosed", "Closed", "boolean", nillable=False, default_value=False),
                      calculated=True))
    obj.add(_readonly(FieldDef("IsWon", "Won", "boolean", nillable=False, default_value=False), calculated=True))
    obj.add(_picklist("ForecastCategoryName", "Forecast Category",
                      ["Omitted", "Pipeline", "Best Case", "Commit", "Closed"]))
    obj.add(_picklist("Type", "Opportunity Type", ["Existing Customer - Upgrade", "Existing Customer - Replacement",
                                                   "Existing Customer - Downgrade", "New Customer"]))
    obj.add(_picklist("LeadSource", "Lead Source", LEAD_SOURCES))
    obj.add(_text("NextStep", "Next Step", 255))
    obj.add(FieldDef("Description", "Description", "textarea", length=32000))
    obj.add(_readonly(_number("ExpectedRevenue", "Expected Amount", "currency", 18, 2), calculated=True))
    obj.add(_readonly(FieldDef("FiscalYear", "Fiscal Year", "int", digits=4), calculated=True))
    obj.add(_readonly(FieldDef("FiscalQuarter", "Fiscal Quarter", "int", digits=1), calculated=True))
    obj.add(_readonly(FieldDef("LastActivityDate", "Last Activity", "date")))
    for audit in _audit():
        obj.add(audit)
    obj.children += [ChildRelationship("OpportunityContactRoles", "OpportunityContactRole", "OpportunityId")]
    return obj


def _contact_role() -> ObjectDef:
    obj = ObjectDef("OpportunityContactRole", "Opportunity Contact Role", "Opportunity Contact Roles",
                    KEY_PREFIXES["OpportunityContactRole"])
    obj.add(_id())
    # OpportunityId can be set on create only; ContactId may be changed (Object Reference).
    obj.add(_ref("OpportunityId", "Opportunity ID", "Opportunity", updateable=False, nillable=False,
                 required=True))
    obj.add(_ref("ContactId", "Contact ID", "Contact", nillable=False, required=True))
    obj.add(_picklist("Role", "Role", CONTACT_ROLES))
    obj.add(FieldDef("IsPrimary", "Primary", "boolean", nillable=False, default_value=False))
    for audit in _audit():
        obj.add(audit)
    return obj


def _setup(name: str, label: str, plural: str) -> ObjectDef:
    obj = ObjectDef(name, label, plural, KEY_PREFIXES[name], soft_delete=False)
    obj.add(_id())
    return obj


def _setup_audit(obj: ObjectDef) -> ObjectDef:
    for audit in _audit(soft_delete=False):
        obj.add(audit)
    return obj


def _organization() -> ObjectDef:
    obj = _setup("Organization", "Organization", "Organizations")
    obj.add(_readonly(_text("Name", "Name", 80)))
    obj.add(_readonly(FieldDef("IsSandbox", "Is Sandbox", "boolean", nillable=False, default_value=False)))
    obj.add(_readonly(_picklist("OrganizationType", "Edition", ["Developer Edition", "Enterprise Edition"])))
    obj.add(_readonly(_text("InstanceName", "Instance Name", 5)))
    obj.add(_readonly(_picklist("TimeZoneSidKey", "Default Time Zone", ["GMT", "America/Los_Angeles"])))
    obj.add(_readonly(_picklist("DefaultLocaleSidKey", "Default Locale", ["en_US"])))
    return _setup_audit(obj)


def _profile() -> ObjectDef:
    obj = _setup("Profile", "Profile", "Profiles")
    obj.add(_text("Name", "Name", 255, nillable=False, required=True))
    obj.add(_picklist("UserType", "User Type", ["Standard"]))
    return _setup_audit(obj)


def _user() -> ObjectDef:
    obj = _setup("User", "User", "Users")
    obj.add(_text("Username", "Username", 80, nillable=False, required=True, unique=True))
    obj.add(FieldDef("Email", "Email", "email", length=128, nillable=False, required=True))
    obj.add(_text("FirstName", "First Name", 40))
    obj.add(_text("LastName", "Last Name", 80, nillable=False, required=True))
    obj.add(_readonly(_text("Name", "Full Name", 121), calculated=True))
    obj.add(FieldDef("IsActive", "Active", "boolean", nillable=False, default_value=True))
    obj.add(_ref("ProfileId", "Profile ID", "Profile", nillable=False, required=True))
    obj.add(_readonly(_picklist("UserType", "User Type", ["Standard"])))
    obj.add(_picklist("TimeZoneSidKey", "Time Zone", ["GMT", "America/Los_Angeles"], nillable=False,
                      default_value="GMT"))
    return _setup_audit(obj)


def _permission_set() -> ObjectDef:
    obj = _setup("PermissionSet", "Permission Set", "Permission Sets")
    obj.add(_text("Name", "Name", 80, nillable=False, required=True, unique=True))
    obj.add(_text("Label", "Label", 80, nillable=False, required=True))
    obj.add(FieldDef("Description", "Description", "textarea", length=255))
    obj.add(_readonly(FieldDef("IsOwnedByProfile", "Is Owned By Profile", "boolean", nillable=False,
                               default_value=False)))
    obj.add(_readonly(FieldDef("IsCustom", "Custom", "boolean", nillable=False, default_value=True)))
    obj.add(_readonly(_ref("ProfileId", "Profile ID", "Profile")))
    obj.add(_readonly(_text("NamespacePrefix", "Namespace Prefix", 15)))
    _setup_audit(obj)
    obj.children += [ChildRelationship("FieldPerms", "FieldPermissions", "ParentId"),
                     ChildRelationship("Assignments", "PermissionSetAssignment", "PermissionSetId")]
    return obj


def _permission_set_assignment() -> ObjectDef:
    obj = _setup("PermissionSetAssignment", "Permission Set Assignment", "Permission Set Assignments")
    obj.add(_ref("AssigneeId", "Assignee ID", "User", updateable=False, nillable=False, required=True))
    obj.add(_ref("PermissionSetId", "Permission Set ID", "PermissionSet", updateable=False, nillable=False,
                 required=True))
    return _setup_audit(obj)


def _field_permissions(object_names: Iterable[str]) -> ObjectDef:
    # https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_fieldpermissions.htm
    # Field and SobjectType are *restricted picklists*: an unknown field is refused as a bad picklist value.
    obj = _setup("FieldPermissions", "Field Permissions", "Field Permissions")
    obj.add(_ref("ParentId", "Parent ID", "PermissionSet", rel="Parent", updateable=False, nillable=False,
                 required=True))
    obj.add(_picklist("SobjectType", "SObject Type Name", sorted(object_names), updateable=False, nillable=False,
                      required=True, restricted=True))
    # The Field picklist's values are all permissionable fields; the store checks them when a row is created.
    obj.add(_picklist("Field", "Field Name", [], updateable=False, nillable=False, required=True))
    obj.add(FieldDef("PermissionsRead", "Read Field", "boolean", nillable=False, default_value=False))
    obj.add(FieldDef("PermissionsEdit", "Edit Field", "boolean", nillable=False, default_value=False))
    return _setup_audit(obj)


def _custom_field() -> ObjectDef:
    # Tooling API CustomField: https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/tooling_api_objects_customfield.htm
    obj = ObjectDef("CustomField", "Custom Field Definition", "Custom Field Definitions",
                    KEY_PREFIXES["CustomField"], soft_delete=False, tooling=True)
    obj.add(_id())
    obj.add(_readonly(_text("DeveloperName", "Field Name", 40)))
    obj.add(_readonly(_text("TableEnumOrId", "Table Enum or ID", 40)))
    obj.add(_readonly(_text("NamespacePrefix", "Namespace Prefix", 15)))
    obj.add(_text("FullName", "Full Name", 255))
    obj.add(FieldDef("Metadata", "Metadata", "complexvalue"))
    obj.add(_text("Description", "Description", 1000))
    for audit in _audit(soft_delete=False):
        obj.add(audit)
    return obj


DATA_OBJECTS = ("Account", "Contact", "Lead", "Opportunity", "OpportunityContactRole")
"""Objects that hold CRM data (soft-deleted, counted in seeding and writes)."""


def standard_objects() -> dict[str, ObjectDef]:
    """A fresh set of object definitions for one emulated org."""
    objects = [_account(), _contact(), _lead(), _opportunity(), _contact_role(), _organization(), _profile(),
               _user(), _permission_set(), _permission_set_assignment()]
    objects.append(_field_permissions(DATA_OBJECTS))
    return {o.name: o for o in objects}


def tooling_objects() -> dict[str, ObjectDef]:
    """Objects only reachable through the Tooling API."""
    return {"CustomField": _custom_field()}


def describe_object(obj: ObjectDef, fields: Iterable[FieldDef], version: str) -> dict[str, Any]:
    """``sobjects/{Object}/describe`` for the given (already security-filtered) fields."""
    base = f"/services/data/v{version}/{'tooling/' if obj.tooling else ''}sobjects/{obj.name}"
    return {
        "actionOverrides": [],
        "activateable": False,
        "childRelationships": [
            {"cascadeDelete": c.child_object == "OpportunityContactRole", "childSObject": c.child_object,
             "deprecatedAndHidden": False, "field": c.field, "relationshipName": c.name}
            for c in obj.children
        ],
        "compactLayoutable": not obj.tooling,
        "createable": True,
        "custom": obj.custom,
        "customSetting": False,
        "deletable": True,
        "deprecatedAndHidden": False,
        "feedEnabled": obj.name in ("Account", "Contact", "Lead", "Opportunity"),
        "fields": [f.describe() for f in fields],
        "keyPrefix": obj.key_prefix,
        "label": obj.label,
        "labelPlural": obj.label_plural,
        "layoutable": not obj.tooling,
        "mergeable": obj.name in ("Account", "Contact", "Lead"),
        "name": obj.name,
        "queryable": True,
        "recordTypeInfos": [],
        "replicateable": not obj.tooling,
        "retrieveable": True,
        "searchable": obj.name in ("Account", "Contact", "Lead", "Opportunity"),
        "triggerable": not obj.tooling,
        "undeletable": obj.soft_delete,
        "updateable": True,
        "urls": {
            "compactLayouts": f"{base}/describe/compactLayouts",
            "rowTemplate": f"{base}/{{ID}}",
            "describe": f"{base}/describe",
            "sobject": base,
        },
    }


def object_summary(obj: ObjectDef, version: str) -> dict[str, Any]:
    """The object's entry in ``GET sobjects/`` (describeGlobal)."""
    base = f"/services/data/v{version}/{'tooling/' if obj.tooling else ''}sobjects/{obj.name}"
    return {
        "activateable": False,
        "createable": True,
        "custom": obj.custom,
        "customSetting": False,
        "deletable": True,
        "deprecatedAndHidden": False,
        "feedEnabled": obj.name in ("Account", "Contact", "Lead", "Opportunity"),
        "keyPrefix": obj.key_prefix,
        "label": obj.label,
        "labelPlural": obj.label_plural,
        "layoutable": not obj.tooling,
        "mergeable": obj.name in ("Account", "Contact", "Lead"),
        "name": obj.name,
        "queryable": True,
        "replicateable": not obj.tooling,
        "retrieveable": True,
        "searchable": obj.name in ("Account", "Contact", "Lead", "Opportunity"),
        "triggerable": not obj.tooling,
        "undeletable": obj.soft_delete,
        "updateable": True,
        "urls": {"rowTemplate": f"{base}/{{ID}}", "describe": f"{base}/describe", "sobject": base},
    }
