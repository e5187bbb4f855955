"""Pulling contacts (Contact, and Lead when configured) and deals (Opportunity + OpportunityContactRole).

Each object is read in one stable order, ``ORDER BY SystemModstamp, Id``, after its cursor (see
:class:`connectors.salesforce.records.HighWater`); each page carries the cursor to store once the page is in
the mirror, so a stopped pull resumes where it stopped. An incremental pull uses ``queryAll`` so that deleted
records (``IsDeleted``, with ``MasterRecordId`` when merged away) come in the same ordered window and are
reported as deleted; converted leads are reported as deleted too (their person lives on as a Contact).

Above ``bulk_threshold`` records in the window (``SELECT COUNT()``, one call) a Bulk API 2.0 query job is used
instead of REST paging. A Bulk result is not trusted to be ordered, so its pages carry the cursor only at the
end. Both paths produce identical records.

Deal -> people: the opportunity's contact roles, primary first (a parent-to-child sub-query on the REST path;
one Bulk job over all contact roles on the Bulk path); an opportunity without roles falls back to the contacts
of its Account, oldest first. Role changes do not touch the opportunity's ``SystemModstamp``, so an
incremental pull also reads the roles changed since their own cursor and re-reads those opportunities.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.base import Page
from connectors.salesforce.reader import Reader, chunks
from connectors.salesforce.records import (
    HighWater,
    ObjectSchema,
    Role,
    Row,
    RowReader,
    ordered_contacts,
    soql_ids,
    to_contact,
    to_deal,
)
from core.errors import DataError

PEOPLE_FIELDS = ("Id", "Email", "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted", "MasterRecordId")
LEAD_FIELDS = ("IsConverted",)
DEAL_FIELDS = ("Id", "AccountId", "Amount", "CurrencyIsoCode", "StageName", "IsWon", "IsClosed", "CloseDate",
               "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted")
ROLE_FIELDS = ("Id", "OpportunityId", "ContactId", "IsPrimary", "CreatedDate", "IsDeleted", "SystemModstamp")
ROLES = "OpportunityContactRoles"
#: Ids per ``IN (...)`` list: 200 x 21 characters keeps the GET query URL far below its 16 KB limit.
IDS_PER_QUERY = 200
#: Cursor keys besides the people objects'.
DEAL_KEY, ROLE_KEY = "Opportunity", "OpportunityContactRole"


@dataclass
class PullPlan:
    """What to read: schemas from describe and the properties the configuration asks for."""

    schemas: Mapping[str, ObjectSchema]
    people: Sequence[str]
    contact_properties: Sequence[str]
    owned_fields: Sequence[str]
    deal_properties: Sequence[str]


class Puller:
    """Yields pages for :meth:`SalesforceConnector.pull`."""

    def __init__(self, reader: Reader, plan: PullPlan, bulk_threshold: int, page_size: int) -> None:
        self.reader = reader
        self.plan = plan
        self.bulk_threshold = bulk_threshold
        self.page_size = page_size
        self.problems: list[str] = []
        self.used_bulk: dict[str, bool] = {}
        self._account_contacts: dict[str, tuple[str, ...]] = {}

    # --- helpers -----------------------------------------------------------------------------------------

    def _wanted(self, schema: ObjectSchema, names: Sequence[str], what: str) -> dict[str, str]:
        out = {}
        for name in names:
            canonical = schema.canonical(name)
            if canonical is None:
                self.problems.append(f"{schema.name} has no field '{name}' the integration user can see ({what}); it "
                                     "is not pulled — check the name, or grant read access to it")
            else:
                out[name] = canonical
        return out

    def _select(self, sobject: str, fields: Sequence[str], where: str, *, ordered: bool, sub: str = "") -> str:
        soql = f"SELECT {', '.join(fields)}{sub} FROM {sobject}"
        if where:
            soql += f" WHERE {where}"
        return soql + (" ORDER BY SystemModstamp, Id" if ordered else "")

    def _rows(self, sobject: str, fields: Sequence[str], state: HighWater, rows: RowReader, *,
              sub: str = "") -> Iterator[tuple[list[tuple[Row, Any]], bool]]:
        """Typed rows of the window after ``state`` in chunks, with whether the chunk is in order.

        REST rows come with their raw record (for sub-query children); Bulk rows with None.
        """
        include_deleted = state.incremental
        total = self.reader.count(sobject, state.where(), include_deleted=include_deleted)
        bulk = total > self.bulk_threshold
        self.used_bulk[sobject] = bulk
        if not bulk:
            for records in self.reader.rest(
                    f"query {sobject}", lambda: self._select(sobject, fields, state.where(), ordered=True, sub=sub),
                    include_deleted=include_deleted):
                yield [(rows.from_json(raw), raw) for raw in records], True
            return
        soql = self._select(sobject, fields, state.where(), ordered=False)
        for header, lines in self.reader.bulk(f"{sobject} window", sobject, soql, include_deleted=include_deleted):
            for part in chunks(lines, self.page_size):
                yield [(rows.from_csv(header, cells), None) for cells in part], False

    # --- people ------------------------------------------------------------------------------------------

    def people(self, sobject: str, cursor: str | None) -> Iterator[Page]:
        """Contacts or Leads changed after ``cursor`` (all of them when None), deletions included."""
        schema = self.plan.schemas[sobject]
        wanted = self._wanted(schema, self.plan.contact_properties, "data.contact_properties")
        wanted.update({name: schema.canonical(name) or name for name in self.plan.owned_fields
                       if schema.canonical(name)})
        base = [*PEOPLE_FIELDS, *(LEAD_FIELDS if sobject == "Lead" else ())]
        fields = schema.selectable([*base, *wanted.values()])
        wanted = {k: v for k, v in wanted.items() if v in fields}
        rows = RowReader(schema, fields)
        state = HighWater(cursor)
        ordered = True
        for chunk, ordered in self._rows(sobject, fields, state, rows):
            page = Page()
            for row, _ in chunk:
                record_id = str(row["Id"])
                if not state.fresh(row["SystemModstamp"], record_id, ordered=ordered):
                    continue
                if row.get("IsDeleted") or row.get("IsConverted"):
                    page.deleted_contact_ids.append(record_id)
                    continue
                try:
                    page.contacts.append(to_contact(row, wanted))
                except DataError as exc:
                    page.problems.append(exc.message)
                except (ValueError, TypeError) as exc:
                    page.problems.append(f"{sobject} {record_id}: unreadable record ({exc.__class__.__name__})")
            if ordered:
                page.cursor = _cursor(sobject, state)
            yield page
        if not ordered:
            yield Page(cursor=_cursor(sobject, state))

    # --- deals -------------------------------------------------------------------------------------------

    def deals(self, cursor: Mapping[str, str]) -> Iterator[Page]:
        """Opportunities changed after the cursor, with their people; then those whose roles changed."""
        schema = self.plan.schemas[DEAL_KEY]
        role_schema = self.plan.schemas[ROLE_KEY]
        wanted = self._wanted(schema, self.plan.deal_properties, "data.deal_properties / meddic")
        fields = schema.selectable([*DEAL_FIELDS, *wanted.values()])
        wanted = {k: v for k, v in wanted.items() if v in fields}
        rows = RowReader(schema, fields)
        role_fields = role_schema.selectable(ROLE_FIELDS)
        role_rows = RowReader(role_schema, role_fields)
        sub = (f", (SELECT {', '.join(role_fields)} FROM {ROLES} WHERE IsDeleted = false)")
        state = HighWater(cursor.get(DEAL_KEY))
        role_cursor = cursor.get(ROLE_KEY)
        # Taken before the opportunities are read: a role changed while they are read is caught next time.
        pending = {ROLE_KEY: self._role_high_water(role_rows)} if role_cursor is None or not state.incremental \
            else {}
        roles_by_deal: dict[str, list[Role]] | None = None
        seen: set[str] = set()
        ordered = True
        for chunk, ordered in self._rows(DEAL_KEY, fields, state, rows, sub=sub):
            if not ordered and roles_by_deal is None:
                roles_by_deal = self._all_roles(role_rows)
            page = Page()
            live: list[tuple[Row, tuple[str, ...]]] = []
            for row, raw in chunk:
                deal_id = str(row["Id"])
                if not state.fresh(row["SystemModstamp"], deal_id, ordered=ordered):
                    continue
                seen.add(deal_id)
                if row.get("IsDeleted"):
                    page.deleted_deal_ids.append(deal_id)
                    continue
                if raw is not None:
                    roles = [Role.from_row(role_rows.from_json(r))
                             for r in self.reader.children(f"read {ROLES}", raw.get(ROLES))]
                else:
                    roles = (roles_by_deal or {}).get(deal_id, [])
                live.append((row, ordered_contacts(roles)))
            self._add_deals(page, live, wanted)
            if ordered:
                page.cursor = {**_cursor(DEAL_KEY, state), **pending}
                pending = {}
            yield page
        if not ordered or pending:
            yield Page(cursor={**(_cursor(DEAL_KEY, state) if not ordered else {}), **pending})
        if state.incremental and role_cursor is not None:
            yield from self._role_changes(role_cursor, seen, fields, rows, role_rows, wanted, sub)

    def _add_deals(self, page: Page, live: Sequence[tuple[Row, tuple[str, ...]]], wanted: Mapping[str, str]) -> None:
        orphans = {str(row["AccountId"]) for row, people in live if not people and row.get("AccountId")}
        if orphans:
            self._load_account_contacts(orphans)
        for row, people in live:
            if not people and row.get("AccountId"):
                people = self._account_contacts.get(str(row["AccountId"]), ())
            try:
                page.deals.append(to_deal(row, people, wanted))
            except DataError as exc:
                page.problems.append(exc.message)
            except (ValueError, TypeError) as exc:
                page.problems.append(f"Opportunity {row.get('Id')}: unreadable record ({exc.__class__.__name__})")

    def _load_account_contacts(self, accounts: set[str]) -> None:
        """Contacts of Accounts whose opportunities have no contact roles, oldest first (cached per pull)."""
        missing = sorted(accounts - self._account_contacts.keys())
        for part in chunks(missing, IDS_PER_QUERY):
            found: dict[str, list[str]] = {account: [] for account in part}
            soql = (f"SELECT Id, AccountId FROM Contact WHERE AccountId IN ({soql_ids(part)}) "
                    "ORDER BY CreatedDate, Id")
            for raw in self.reader.all_rows("read Account contacts", soql):
                found.setdefault(str(raw["AccountId"]), []).append(str(raw["Id"]))
            self._account_contacts.update({k: tuple(v) for k, v in found.items()})

    def _role_high_water(self, role_rows: RowReader) -> str:
        """The contact-role cursor as of now: the latest second and every role Id stamped in it."""
        last = self.reader.query_page(
            "read latest contact role", f"SELECT Id, SystemModstamp FROM {ROLE_KEY} ORDER BY SystemModstamp DESC "
                                        "LIMIT 1", include_deleted=True).get("records") or []
        state = HighWater(None)
        if last:
            top = HighWater(None)
            top.fresh(role_rows.from_json(last[0])["SystemModstamp"], "", ordered=True)
            soql = f"SELECT Id, SystemModstamp FROM {ROLE_KEY} WHERE {top.where()}"
            for raw in self.reader.all_rows("read latest contact roles", soql, include_deleted=True):
                state.fresh(role_rows.from_json(raw)["SystemModstamp"], str(raw["Id"]), ordered=False)
        return state.value() or ""

    def _all_roles(self, role_rows: RowReader) -> dict[str, list[Role]]:
        """Every live contact role by opportunity, through one Bulk job (the Bulk path cannot sub-query)."""
        soql = f"SELECT {', '.join(f for f in role_rows.fields if f != 'IsDeleted')} FROM {ROLE_KEY}"
        out: dict[str, list[Role]] = {}
        for header, lines in self.reader.bulk("contact roles", ROLE_KEY, soql, include_deleted=False):
            for cells in lines:
                row = role_rows.from_csv(header, cells)
                out.setdefault(str(row["OpportunityId"]), []).append(Role.from_row(row))
        return out

    def _role_changes(self, role_cursor: str, seen: set[str], fields: Sequence[str], rows: RowReader,
                      role_rows: RowReader, wanted: Mapping[str, str], sub: str) -> Iterator[Page]:
        """Re-read the opportunities whose contact roles changed (added, edited, moved by a merge, deleted)."""
        state = HighWater(role_cursor or None)
        affected: set[str] = set()
        for chunk, ordered in self._rows(ROLE_KEY, ["Id", "OpportunityId", "SystemModstamp"], state, role_rows):
            for row, _ in chunk:
                if state.fresh(row["SystemModstamp"], str(row["Id"]), ordered=ordered) and row.get("OpportunityId"):
                    affected.add(str(row["OpportunityId"]))
        for part in chunks(sorted(affected - seen), IDS_PER_QUERY):
            soql = self._select(DEAL_KEY, fields, f"Id IN ({soql_ids(part)})", ordered=False, sub=sub)
            page = Page()
            live = []
            for raw in self.reader.all_rows("re-read opportunities", soql):
                row = rows.from_json(raw)
                roles = [Role.from_row(role_rows.from_json(r))
                         for r in self.reader.children(f"read {ROLES}", raw.get(ROLES))]
                live.append((row, ordered_contacts(roles)))
            self._add_deals(page, live, wanted)
            yield page
        yield Page(cursor=_cursor(ROLE_KEY, state))


def _cursor(key: str, state: HighWater) -> dict[str, str]:
    value = state.value()
    return {key: value} if value is not None else {}
