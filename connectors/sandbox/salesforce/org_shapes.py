"""Org features that change the shape of people data: person accounts and contacts related to several accounts.

Both are off in a new org and are turned on by an admin (person accounts through Salesforce, for good), as here.

**Person accounts** (B2C): one person is an Account *and* a Contact. The Account carries ``IsPersonAccount``,
``PersonContactId`` and the person's fields (``FirstName``, ``LastName``, ``PersonEmail``, ``PersonTitle``...);
the Contact carries ``IsPersonAccount`` = true and ``AccountId`` = that Account, so a Contact's ``Account.*``
fields are the person's own, not a company's ("Person accounts are accounts that can also be used as
contacts", Account object reference,
https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_account.htm;
"PersonContactId ... the ID of the contact associated with this person account"). A person is edited through
its Account; Contact triggers do not fire then (sfb2csolutionarchitects/b2c-crm-sync#26: "When a personAccount
is updated, the Contact trigger ... doesn't fire"). Whether the Contact's ``SystemModstamp`` moves is not
documented: the emulator takes the harder case and stamps the Account only, while the Contact's fields read the
new values.

**Contacts to multiple accounts**: ``AccountContactRelation`` rows relate a contact to accounts besides its own;
the contact's ``AccountId`` account is its direct relation (``IsDirect`` = true, created for it), the others are
indirect (AccountContactRelation object reference,
https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_accountcontactrelation.htm).
The emulator creates direct relations for the contacts that have an account when the feature is turned on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.sandbox.salesforce.schema import ChildRelationship, FieldDef, ObjectDef
from connectors.sandbox.salesforce.store import Store

#: Person fields of a person account (Account field -> the Contact field it is).
PERSON_FIELDS = {"FirstName": "FirstName", "LastName": "LastName", "PersonEmail": "Email", "PersonTitle": "Title",
                 "PersonMailingCountry": "MailingCountry"}
#: Key prefix of AccountContactRelation (as in real orgs' Ids, 07k...).
RELATION_PREFIX = "07k"


def enable_person_accounts(store: Store) -> None:
    """Turn person accounts on: the Account and Contact fields they bring."""
    with store.lock:
        account, contact = store.objects["Account"], store.objects["Contact"]
        if account.field("IsPersonAccount") is not None:
            raise ValueError("person accounts are on already (Salesforce cannot turn them off)")
        account.add(FieldDef("IsPersonAccount", "Is Person Account", "boolean", createable=False, updateable=False,
                             nillable=False, default_value=False))
        account.add(FieldDef("PersonContactId", "Person Contact ID", "reference", length=18, reference_to=["Contact"],
                             relationship_name="PersonContact", createable=False, updateable=False))
        account.add(FieldDef("FirstName", "First Name", "string", length=40))
        account.add(FieldDef("LastName", "Last Name", "string", length=80))
        account.add(FieldDef("PersonEmail", "Email", "email", length=80))
        account.add(FieldDef("PersonTitle", "Title", "string", length=80))
        account.add(FieldDef("PersonMailingCountry", "Mailing Country", "string", length=80))
        contact.add(FieldDef("IsPersonAccount", "Is Person Account", "boolean", createable=False, updateable=False,
                             nillable=False, default_value=False))
        for record in store.records["Account"].values():
            record.setdefault("IsPersonAccount", False)
        for record in store.records["Contact"].values():
            record.setdefault("IsPersonAccount", False)
        store.fields_changed()


def create_person_account(store: Store, first: str | None, last: str, email: str | None,
                          **values: Any) -> tuple[str, str]:
    """A person account and its contact, as a person creates one; returns (Account Id, Contact Id)."""
    with store.lock:
        account_obj, contact_obj = store.objects["Account"], store.objects["Contact"]
        if account_obj.field("IsPersonAccount") is None:
            raise ValueError("person accounts are not enabled in this org")
        person = {"FirstName": first, "LastName": last, "PersonEmail": email, **values}
        name = " ".join(p for p in (first, last) if p)
        account = store.insert_seed(account_obj, {**person, "Name": name, "IsPersonAccount": True})
        contact = store.insert_seed(contact_obj, {
            **{target: person.get(source) for source, target in PERSON_FIELDS.items()},
            "AccountId": account["Id"], "IsPersonAccount": True})
        account["PersonContactId"] = contact["Id"]
        return str(account["Id"]), str(contact["Id"])


def edit_person_account(store: Store, account_id: str, values: Mapping[str, Any]) -> None:
    """Edit a person through its Account: the Account is stamped, the Contact's fields read the new values."""
    with store.lock:
        account = store.edit(account_id, values, commit_after=0.0)
        contact = store.get(str(account.get("PersonContactId") or ""))
        if contact is None:
            raise KeyError(f"{account_id} is not a person account")
        changes = {PERSON_FIELDS[name]: account.get(name) for name in values if name in PERSON_FIELDS}
        contact.update(changes)
        if {"FirstName", "LastName"} & changes.keys():
            contact["Name"] = " ".join(p for p in (contact.get("FirstName"), contact.get("LastName")) if p)


def _relation_object() -> ObjectDef:
    obj = ObjectDef("AccountContactRelation", "Account Contact Relationship", "Account Contact Relationships",
                    RELATION_PREFIX)
    obj.add(FieldDef("Id", "Record ID", "id", length=18, createable=False, updateable=False, nillable=False,
                     system=True))
    obj.add(FieldDef("AccountId", "Account ID", "reference", length=18, reference_to=["Account"],
                     relationship_name="Account", updateable=False, nillable=False, required=True))
    obj.add(FieldDef("ContactId", "Contact ID", "reference", length=18, reference_to=["Contact"],
                     relationship_name="Contact", updateable=False, nillable=False, required=True))
    obj.add(FieldDef("IsDirect", "Direct", "boolean", createable=False, updateable=False, nillable=False,
                     default_value=False))
    obj.add(FieldDef("IsActive", "Active", "boolean", nillable=False, default_value=True))
    obj.add(FieldDef("Roles", "Roles", "string", length=4099))
    obj.add(FieldDef("StartDate", "Start Date", "date"))
    obj.add(FieldDef("EndDate", "End Date", "date"))
    for name, label in (("CreatedDate", "Created Date"), ("LastModifiedDate", "Last Modified Date"),
                        ("SystemModstamp", "System Modstamp")):
        obj.add(FieldDef(name, label, "datetime", createable=False, updateable=False, nillable=False, system=True))
    obj.add(FieldDef("IsDeleted", "Deleted", "boolean", createable=False, updateable=False, nillable=False,
                     system=True, default_value=False))
    return obj


def enable_contacts_to_multiple_accounts(store: Store) -> None:
    """Turn "Contacts to Multiple Accounts" on: the relation object, and a direct relation per contact."""
    with store.lock:
        if "AccountContactRelation" in store.objects:
            raise ValueError("contacts to multiple accounts are on already")
        relation = store.add_object(_relation_object())
        store.objects["Account"].children.append(
            ChildRelationship("AccountContactRelations", "AccountContactRelation", "AccountId"))
        store.objects["Contact"].children.append(
            ChildRelationship("AccountContactRelations", "AccountContactRelation", "ContactId"))
        for contact in list(store.records["Contact"].values()):
            if contact.get("AccountId") and not contact.get("IsDeleted"):
                row = store.insert_seed(relation, {"AccountId": contact["AccountId"], "ContactId": contact["Id"],
                                                   "IsActive": True}, created=contact["CreatedDate"])
                row["IsDirect"] = True
        store.fields_changed()


def relate(store: Store, contact_id: str, account_id: str, roles: str | None = None) -> str:
    """An indirect relation of a contact to another account (a consultant, a board member); returns its Id."""
    with store.lock:
        relation = store.objects.get("AccountContactRelation")
        if relation is None:
            raise ValueError("contacts to multiple accounts are not enabled in this org")
        if store.get(contact_id) is None or store.get(account_id) is None:
            raise KeyError(contact_id if store.get(contact_id) is None else account_id)
        row = store.insert_seed(relation, {"AccountId": account_id, "ContactId": contact_id, "IsActive": True,
                                           "Roles": roles})
        return str(row["Id"])
