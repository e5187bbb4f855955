"""Pulling contacts (Contact, and Lead when configured) and deals (Opportunity + OpportunityContactRole).

Each object is read in one stable order, ``ORDER BY SystemModstamp, Id``, after its cursor (see
:class:`connectors.salesforce.records.HighWater`); each page carries the cursor to store once the page is in
the mirror, so a stopped pull resumes where it stopped. An incremental pull uses ``queryAll`` so that deleted
records (``IsDeleted``, with ``MasterRecordId`` when merged away) come in the same ordered window and are
reported as deleted; a converted lead is reported as merged into its ``ConvertedContactId`` when Contacts are
pulled too (else as deleted), so its history follows the person.

In a multi-currency org each opportunity's ``Amount`` is converted to the corporate currency with the org's
rates (:mod:`connectors.salesforce.currency`), on the REST and the Bulk path alike.

Above ``bulk_threshold`` records in the window (``SELECT COUNT()``, one call) a Bulk API 2.0 query job is used
instead of REST paging. A Bulk result is not trusted to be ordered, so its pages carry the cursor only at the
end. Both paths produce identical records.

Deal -> people: the opportunity's contact roles, primary first (a parent-to-child sub-query on the REST path;
one Bulk job over all contact roles on the Bulk path); an opportunity without roles falls back to the contacts
of its Account, oldest first. Role changes do not touch the opportunity's ``SystemModstamp``, so an
incremental pull also reads the roles changed since their own cursor and re-reads those opportunities.

What ``queryAll`` cannot show comes from the delete log (getDeleted, one call per object and pull): a contact
role deleted by itself is hard-deleted, so only the log says a deal lost a person, and then every opportunity
is read again with its roles (the mirror stores the unchanged ones once). The log and the Recycle Bin keep 15
days at most, less when the bin is emptied (getDeleted answers ``INVALID_REPLICATION_DATE``): a deletion older
than that is in neither, so such a pull ends with a reconciling sweep, every live Id of every object, and the
mirror drops what is not among them. The sweep also runs every ``reconcile_days``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import Page
from connectors.salesforce.client import SalesforceApiError
from connectors.salesforce.currency import OrgRates
from connectors.salesforce.reader import Reader, chunks
from connectors.salesforce.records import (
    HighWater,
    ObjectSchema,
    Role,
    Row,
    RowReader,
    ordered_contacts,
    soql_datetime,
    soql_ids,
    to_contact,
    to_deal,
    utc_datetime,
)
from core.errors import DataError
from core.models import Deal

PEOPLE_FIELDS = ("Id", "Email", "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted", "MasterRecordId")
LEAD_FIELDS = ("IsConverted", "ConvertedContactId")
DEAL_FIELDS = ("Id", "AccountId", "Amount", "CurrencyIsoCode", "StageName", "IsWon", "IsClosed", "CloseDate",
               "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted")
ROLE_FIELDS = ("Id", "OpportunityId", "ContactId", "IsPrimary", "CreatedDate", "IsDeleted", "SystemModstamp")
ROLES = "OpportunityContactRoles"
#: Ids per ``IN (...)`` list: 200 x 21 characters keeps the GET query URL far below its 16 KB limit.
IDS_PER_QUERY = 200
#: Cursor keys besides the people objects'.
DEAL_KEY, ROLE_KEY = "Opportunity", "OpportunityContactRole"
#: Cursor keys of times (ISO 8601): how far the delete log was read, and the last reconciling sweep (or full pull).
LOG_KEY, RECONCILED_KEY = "deleted_log", "reconciled"
#: getDeleted windows shorter than a minute are refused ("startDate must chronologically precede the specified
#: endDate value by more than one minute", getDeleted() rules,
#: https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_getdeleted.htm).
MIN_DELETED_WINDOW = timedelta(minutes=2)


@dataclass
class PullPlan:
    """What to read: schemas from describe and the properties the configuration asks for."""

    schemas: Mapping[str, ObjectSchema]
    people: Sequence[str]
    contact_properties: Sequence[str]
    owned_fields: Sequence[str]
    deal_properties: Sequence[str]
    parents: Mapping[str, Sequence[tuple[str, str]]] = field(default_factory=dict)
    """People object -> the parent objects its configured parent fields come from, with the lookup field
    (``Contact`` -> ``[("Account", "AccountId")]``); each parent object is pulled under its own cursor key."""


class Puller:
    """Yields pages for :meth:`SalesforceConnector.pull`."""

    def __init__(self, reader: Reader, plan: PullPlan, bulk_threshold: int, page_size: int, *,
                 lookback: float = 0.0, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 log_since: str | None = None) -> None:
        self.lookback = lookback
        self.clock = clock
        self.started = clock().astimezone(UTC)
        """Where this pull's delete-log windows end (the next pull's begin there, less the lookback)."""
        self.log_since = _time(log_since)
        self.expired: list[str] = []
        """Objects whose delete log no longer reaches back to their cursor: a reconciling sweep is due."""
        self.live_deals: set[str] | None = None
        """Every live opportunity Id, once a pull read them all."""
        self._deal_read: tuple[list[str], RowReader, RowReader, dict[str, str], str] | None = None
        self.reader = reader
        self.plan = plan
        self.bulk_threshold = bulk_threshold
        self.page_size = page_size
        self.problems: list[str] = []
        self.used_bulk: dict[str, bool] = {}
        self._account_contacts: dict[str, tuple[str, ...]] = {}
        self._rates: OrgRates | None = None
        self._people_fields: dict[str, tuple[list[str], dict[str, str]]] = {}

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
        self._people_fields[sobject] = (fields, wanted)
        rows = RowReader(schema, fields)
        state = HighWater(cursor, self.lookback)
        ordered = True
        for chunk, ordered in self._rows(sobject, fields, state, rows):
            page = Page()
            for row, _ in chunk:
                record_id = str(row["Id"])
                if not state.fresh(row["SystemModstamp"], record_id, ordered=ordered):
                    continue
                if row.get("IsConverted") and row.get("ConvertedContactId") and "Contact" in self.plan.people:
                    # The person lives on as the Contact: reported as merged into it, so the lead's stage
                    # history (and what we wrote on it) follows, as a HubSpot merge does.
                    page.merged_contacts[record_id] = str(row["ConvertedContactId"])
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
        if state.incremental:
            gone = self._deleted_since(sobject, state)
            if gone:
                yield Page(deleted_contact_ids=gone, cursor=_cursor(sobject, state))

    # --- parent fields -------------------------------------------------------------------------------------

    def people_with_parents(self, sobject: str, cursor: Mapping[str, str]) -> Iterator[Page]:
        """:meth:`people`, then the people whose parent records changed, re-read with fresh parent fields.

        Editing an Account stamps the Account only: its Contacts' ``Account.Industry`` reads the new value but
        their ``SystemModstamp`` stays (Heroku Connect docs, quoted in github.com/heroku/roadmap/issues/319:
        "Changes to formula fields that are driven by a change in a parent object don't update the
        SystemModStamp of the child object"), so the people window alone would keep the old values forever. Each
        parent object is read under its own cursor key (``Account``); on a full pull (no cursor for it) its high
        water is taken before the people are read, as the people read then carries fresh parent values.
        """
        parents = self.plan.parents.get(sobject, ())
        pending = {parent: self._high_water(parent) for parent, _ in parents
                   if cursor.get(parent) is None or cursor.get(sobject) is None}
        yield from self.people(sobject, cursor.get(sobject))
        for parent, lookup in parents:
            if parent not in pending:
                yield from self._parent_changes(sobject, parent, lookup, str(cursor[parent]))
        if pending:
            yield Page(cursor=pending)

    def _parent_changes(self, sobject: str, parent: str, lookup: str, parent_cursor: str) -> Iterator[Page]:
        """Re-read the people of the parent records changed after ``parent_cursor``, then advance it."""
        state = HighWater(parent_cursor, self.lookback)
        changed: set[str] = set()
        stamps = _stamp_reader(parent)
        for chunk, ordered in self._rows(parent, ["Id", "SystemModstamp"], state, stamps):
            for row, _ in chunk:
                if state.fresh(row["SystemModstamp"], str(row["Id"]), ordered=ordered):
                    changed.add(str(row["Id"]))
        fields, wanted = self._people_fields[sobject]
        rows = RowReader(self.plan.schemas[sobject], fields)
        for part in chunks(sorted(changed), IDS_PER_QUERY):
            soql = self._select(sobject, fields, f"{lookup} IN ({soql_ids(part)})", ordered=False)
            page = Page()
            for raw in self.reader.all_rows(f"re-read {sobject} of changed {parent}", soql):
                try:
                    page.contacts.append(to_contact(rows.from_json(raw), wanted))
                except DataError as exc:
                    page.problems.append(exc.message)
                except (ValueError, TypeError) as exc:
                    page.problems.append(f"{sobject} {raw.get('Id')}: unreadable record ({exc.__class__.__name__})")
            yield page
        yield Page(cursor=_cursor(parent, state))

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
        self._deal_read = (fields, rows, role_rows, wanted, sub)
        state = HighWater(cursor.get(DEAL_KEY), self.lookback)
        role_cursor = cursor.get(ROLE_KEY)
        # Taken before the opportunities are read: a role changed while they are read is caught next time.
        pending = {ROLE_KEY: self._high_water(ROLE_KEY)} if role_cursor is None or not state.incremental \
            else {}
        seen: set[str] = set()

        def admit(deal_id: str, row: Row, page: Page) -> bool:
            seen.add(deal_id)
            if row.get("IsDeleted"):
                page.deleted_deal_ids.append(deal_id)
                return False
            return True

        ordered = True
        for page, ordered in self._deal_pages(state, admit):
            if ordered:
                page.cursor = {**_cursor(DEAL_KEY, state), **pending}
                pending = {}
            yield page
        if not ordered or pending:
            yield Page(cursor={**(_cursor(DEAL_KEY, state) if not ordered else {}), **pending})
        if state.incremental:
            gone = self._deleted_since(DEAL_KEY, state)
            if gone:
                yield Page(deleted_deal_ids=gone, cursor=_cursor(DEAL_KEY, state))
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
                page.deals.append(self._in_corporate_currency(to_deal(row, people, wanted), row))
            except DataError as exc:
                page.problems.append(exc.message)
            except (ValueError, TypeError) as exc:
                page.problems.append(f"Opportunity {row.get('Id')}: unreadable record ({exc.__class__.__name__})")

    def _in_corporate_currency(self, deal: Deal, row: Row) -> Deal:
        """A multi-currency org's opportunity with its amount in the corporate currency (see
        :mod:`connectors.salesforce.currency`; the org's rates are read once per pull, on first need)."""
        if deal.currency is None or "CurrencyIsoCode" not in self.plan.schemas[DEAL_KEY].kinds:
            return deal
        if self._rates is None:
            self._rates = OrgRates.load(self.reader)
        return self._rates.to_corporate(deal, row.get("CloseDate"))

    def _load_account_contacts(self, accounts: set[str]) -> None:
        """Contacts of Accounts whose opportunities have no contact roles, oldest first (cached per pull).

        Only the account's own contacts (``Contact.AccountId``, the direct ``AccountContactRelation``): with
        "Contacts to Multiple Accounts" a consultant or board member is related to many accounts indirectly
        (AccountContactRelation object reference, ``IsDirect``), and giving them every role-less opportunity of
        each would add up other companies' purchases into one person's value. An opportunity that involves them
        names them in a contact role, which is read first.
        """
        missing = sorted(accounts - self._account_contacts.keys())
        for part in chunks(missing, IDS_PER_QUERY):
            found: dict[str, list[str]] = {account: [] for account in part}
            soql = (f"SELECT Id, AccountId FROM Contact WHERE AccountId IN ({soql_ids(part)}) "
                    "ORDER BY CreatedDate, Id")
            for raw in self.reader.all_rows("read Account contacts", soql):
                found.setdefault(str(raw["AccountId"]), []).append(str(raw["Id"]))
            self._account_contacts.update({k: tuple(v) for k, v in found.items()})

    def _high_water(self, sobject: str) -> str:
        """An object's cursor as of now: the latest second and every version stamped from the lookback before it
        (which the next window reads again and must not count as changes)."""
        rows = _stamp_reader(sobject)
        last = self.reader.query_page(
            f"read latest {sobject}", f"SELECT Id, SystemModstamp FROM {sobject} ORDER BY SystemModstamp DESC "
                                      "LIMIT 1", include_deleted=True).get("records") or []
        state = HighWater(None, self.lookback)
        if last:
            top = HighWater(None, self.lookback)
            top.fresh(rows.from_json(last[0])["SystemModstamp"], "", ordered=True)
            soql = f"SELECT Id, SystemModstamp FROM {sobject} WHERE {top.where()}"
            for raw in self.reader.all_rows(f"read latest {sobject}", soql, include_deleted=True):
                state.fresh(rows.from_json(raw)["SystemModstamp"], str(raw["Id"]), ordered=False)
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
        """Re-read the opportunities whose contact roles changed (added, edited, moved by a merge, deleted); all of
        them when the delete log lists roles the window does not show (hard-deleted) or no longer covers it."""
        state = HighWater(role_cursor or None, self.lookback)
        affected: set[str] = set()
        in_window: set[str] = set()
        for chunk, ordered in self._rows(ROLE_KEY, ["Id", "OpportunityId", "SystemModstamp"], state, role_rows):
            for row, _ in chunk:
                in_window.add(str(row["Id"]))
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
        hard_deleted = set(self._deleted_since(ROLE_KEY, state)) - in_window
        if hard_deleted or ROLE_KEY in self.expired:
            yield from self._reread_deals(seen | affected)
        yield Page(cursor=_cursor(ROLE_KEY, state))

    # --- the delete log and reconciling sweeps ---------------------------------------------------------------

    def _deleted_since(self, sobject: str, state: HighWater) -> list[str]:
        """Ids the delete log lists from where the last pull stopped reading it (else the window's start), less
        the lookback, until this pull started, and not delivered yet: a deletion is a version of its record dated
        by its ``SystemModstamp`` ("deletedDate ... is obtained using the SystemModstamp system field if
        available", GetDeletedResult), so ``state`` knows those its window returned and remembers the others.
        A log that no longer reaches back that far (``INVALID_REPLICATION_DATE``) puts the object in
        :attr:`expired` instead.

        getDeleted reads whole minutes (it "ignores the seconds portion", salesforcer's ``sf_get_deleted``
        notes), and the window is at least :data:`MIN_DELETED_WINDOW` long; consecutive pulls' windows overlap
        by the lookback, so no deletion falls between them.
        """
        begin = self.log_since or state.start_second
        assert begin is not None
        end = self.started
        start = min(begin - timedelta(milliseconds=state.lookback_ms), end - MIN_DELETED_WINDOW)
        start = start.replace(second=0, microsecond=0)
        client = self.reader.client
        params = {"start": soql_datetime(start), "end": soql_datetime(end)}
        try:
            body = client.call(f"read deleted {sobject}", lambda sf: sf.restful(
                f"sobjects/{sobject}/deleted/", params=params, timeout=client.timeout))
        except SalesforceApiError as exc:
            if exc.code != "INVALID_REPLICATION_DATE":
                raise
            self.expired.append(sobject)
            return []
        out = []
        for entry in (body or {}).get("deletedRecords") or []:
            try:
                when = utc_datetime(str(entry["deletedDate"]))
            except (KeyError, ValueError):
                when = end
            if entry.get("id") and state.remember(when, str(entry["id"])):
                out.append(str(entry["id"]))
        return out

    def _reread_deals(self, skip: set[str]) -> Iterator[Page]:
        """Every live opportunity again with its people (those in ``skip`` were just read); notes their Ids."""
        live_ids: set[str] = set()

        def admit(deal_id: str, row: Row, page: Page) -> bool:
            live_ids.add(deal_id)
            return deal_id not in skip

        for page, _ in self._deal_pages(HighWater(None), admit):
            yield page
        self.live_deals = live_ids

    def _deal_pages(self, state: HighWater, admit: Callable[[str, Row, Page], bool]) -> Iterator[tuple[Page, bool]]:
        """The opportunities of the window after ``state`` with their people, a page per chunk, with whether the
        chunk came in ``SystemModstamp`` order. Each new version is shown to ``admit`` with its page first; only
        those it admits are read as live deals (their roles from the sub-query, or from one Bulk read of all
        roles once a chunk comes from Bulk, which cannot sub-query)."""
        assert self._deal_read is not None
        fields, rows, role_rows, wanted, sub = self._deal_read
        roles_by_deal: dict[str, list[Role]] | None = None
        for chunk, ordered in self._rows(DEAL_KEY, fields, state, rows, sub=sub):
            if not ordered and roles_by_deal is None:
                roles_by_deal = self._all_roles(role_rows)
            page = Page()
            live: list[tuple[Row, tuple[str, ...]]] = []
            for row, raw in chunk:
                deal_id = str(row["Id"])
                if not state.fresh(row["SystemModstamp"], deal_id, ordered=ordered) or not admit(deal_id, row, page):
                    continue
                if raw is not None:
                    roles = [Role.from_row(role_rows.from_json(r))
                             for r in self.reader.children(f"read {ROLES}", raw.get(ROLES))]
                else:
                    roles = (roles_by_deal or {}).get(deal_id, [])
                live.append((row, ordered_contacts(roles)))
            self._add_deals(page, live, wanted)
            yield page, ordered

    def sweep_due(self, cursor: Mapping[str, str], every: timedelta | None) -> bool:
        """Whether this incremental pull ends with a reconciling sweep: a delete log that no longer covers a
        cursor, no sweep (or full pull) on record, or ``every`` since the last one."""
        last = _time(cursor.get(RECONCILED_KEY))
        if self.expired or last is None:
            return True
        return every is not None and self.started - last >= every

    def sweep(self) -> Iterator[Page]:
        """Every live Id of the people objects and of the opportunities, for the mirror to drop the others."""
        live_contacts: set[str] = set()
        for sobject in self.plan.people:
            live_contacts |= self._live_ids(sobject, "IsConverted = false" if sobject == "Lead" else "")
        if self.live_deals is None:
            if ROLE_KEY in self.expired:
                yield from self._reread_deals(set())
            else:
                self.live_deals = self._live_ids(DEAL_KEY, "")
        assert self.live_deals is not None
        yield Page(live_contact_ids=sorted(live_contacts), live_deal_ids=sorted(self.live_deals),
                   cursor={RECONCILED_KEY: self.started.isoformat()})

    def _live_ids(self, sobject: str, where: str) -> set[str]:
        """The Ids of an object's live records (Bulk above the threshold)."""
        soql = f"SELECT Id FROM {sobject}" + (f" WHERE {where}" if where else "")
        if self.reader.count(sobject, where, include_deleted=False) > self.bulk_threshold:
            return {cells[0] for header, lines in self.reader.bulk(f"{sobject} Ids", sobject, soql,
                                                                  include_deleted=False) for cells in lines if cells}
        return {str(raw["Id"]) for page in self.reader.rest(f"{sobject} Ids", lambda: soql, include_deleted=False)
                for raw in page}


def count_windows(people: Sequence[str], parents: Sequence[str], cursor: Mapping[str, str], lookback: float = 0.0
                  ) -> list[tuple[str, str, bool]]:
    """The ``SELECT COUNT()`` windows a pull from ``cursor`` starts with, as ``(object, where, queryAll)``,
    most needed first: the people, the opportunities, their changed roles, the changed parents (an object
    missing from the cursor is counted in full, without deleted records)."""
    def window(sobject: str, value: str | None) -> tuple[str, str, bool]:
        state = HighWater(value or None, lookback)
        return sobject, state.where(), state.incremental

    out = [window(o, cursor.get(o)) for o in people]
    deals = window(DEAL_KEY, cursor.get(DEAL_KEY))
    out.append(deals)
    if deals[2] and cursor.get(ROLE_KEY) is not None:
        out.append(window(ROLE_KEY, cursor[ROLE_KEY]))
    out += [window(parent, cursor[parent]) for parent in parents
            if cursor.get(parent) and any(cursor.get(o) for o in people)]
    return out


def _time(text: str | None) -> datetime | None:
    """A stored ISO 8601 time (None when absent or unreadable: the caller then takes the safe path)."""
    try:
        return datetime.fromisoformat(text).astimezone(UTC) if text else None
    except ValueError:
        return None


def _stamp_reader(sobject: str) -> RowReader:
    """Reads ``Id`` and ``SystemModstamp`` of any object (their types are the same on every sObject)."""
    return RowReader(ObjectSchema(sobject, "", {"Id": "id", "SystemModstamp": "datetime"}, frozenset()),
                     ["Id", "SystemModstamp"])


def _cursor(key: str, state: HighWater) -> dict[str, str]:
    value = state.value()
    return {key: value} if value is not None else {}
