"""The emulated portal's data: contacts and deals, their property definitions, deal↔contact associations.

Compact on purpose (a portal of 1,000,000 contacts must fit in memory): a record is a ``__slots__`` object
whose values live in a list indexed by the property's slot in its table, datetimes are epoch-ms ints, and
properties HubSpot calculates (``hs_object_id``, ``lastmodifieddate``, ``hs_is_closed_won``...) are derived
when read instead of stored. One re-entrant lock guards everything; callers hold it for a whole request.
"""

from __future__ import annotations

import base64
import bisect
import heapq
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

import numpy as np

from connectors.sandbox.hubspot.schema import (
    MODIFIED,
    OBJECT_TYPES,
    STAGES,
    Option,
    PropertyDef,
    PropertyGroup,
    default_groups,
    default_properties,
    infer_type,
)
from connectors.sandbox.hubspot.values import Stored, iso_ms, parse_time, plain_number, render, to_ms
from core.models import Contact, Deal, DealStatus, FieldType

#: v4 association type ids HubSpot defines for deals and contacts (HUBSPOT_DEFINED; deal_to_contact 3,
#: contact_to_deal 4 — developers.hubspot.com/docs/api/crm/associations/v4#association-type-id-values).
ASSOCIATION_TYPE_IDS = {("deals", "contacts"): 3, ("contacts", "deals"): 4}
ASSOCIATION_NAMES = {("deals", "contacts"): "deal_to_contact", ("contacts", "deals"): "contact_to_deal"}
_FIRST_ID = {"contacts": 101, "deals": 1001}
#: Object type ids, as association paging tokens carry them.
TYPE_IDS = {"contacts": "0-1", "deals": "0-3"}
#: Associations returned inline per association type by v3 object reads and lists: "if your request returns
#: more than 100 associations, you will need to use the value of the after field returned in the response to
#: get the next set" (developers.hubspot.com/changelog/announcing-a-change-to-how-v3-crm-apis-return-association-data).
INLINE_ASSOCIATIONS = 100


def association_token(to_type: str, last_id: int) -> str:
    """A paging token after ``last_id``, shaped like HubSpot's: base64 of ``{toObjectTypeId}-{lastId}``,
    URL-encoded (``MC0yLTc1MDI%3D`` is ``0-2-7502``, as quoted in github.com/HubSpot/hubspot-api-python/issues/135
    and developers.hubspot.com/changelog/bug-fix-batch-read-limit-for-hubspot-associations-api)."""
    return quote(base64.b64encode(f"{TYPE_IDS[to_type]}-{last_id}".encode()).decode(), safe="")


def association_after(token: str | None) -> int | None:
    """The last id a paging token names (None for no token); ValueError when it is not one of ours."""
    if not token:
        return None
    text = base64.b64decode(unquote(token), validate=True).decode()
    return int(text.rsplit("-", 1)[1])


class Record:
    """One contact or deal (values aligned to its table's property slots)."""

    __slots__ = ("archived_at", "created", "id", "updated", "values")

    def __init__(self, record_id: int, created: int, updated: int) -> None:
        self.id = record_id
        self.created = created
        self.updated = updated
        self.archived_at: int | None = None
        self.values: list[Stored | None] = []


class Table:
    """All records and property definitions of one object type."""

    def __init__(self, object_type: str) -> None:
        self.object_type = object_type
        self.props: dict[str, PropertyDef] = {p.name: p for p in default_properties(object_type)}
        self.groups: dict[str, PropertyGroup] = {g.name: g for g in default_groups(object_type)}
        self.slots: dict[str, int] = {}
        self.records: dict[int, Record] = {}
        self.order: list[int] = []  # ids ascending: list paging walks it from the `after` id
        self.merged_into: dict[int, int] = {}  # merged-away id -> surviving id
        self.merged_ids: dict[int, list[int]] = {}  # surviving id -> ids merged into it
        self.next_id = _FIRST_ID[object_type]
        self.unique: dict[str, dict[str, int]] = {}  # lazily built indexes of unique-valued properties
        # The search index (see :class:`SearchView`): what search sees, which lags behind the records.
        self.search = SearchView()

    def slot(self, name: str) -> int:
        """The value slot of a property (allocated on first use)."""
        index = self.slots.get(name)
        if index is None:
            index = self.slots[name] = len(self.slots)
        return index

    def stored(self, record: Record, name: str) -> Stored | None:
        """The stored (not derived) value of a property."""
        index = self.slots.get(name)
        return record.values[index] if index is not None and index < len(record.values) else None

    def put(self, record: Record, name: str, value: Stored | None) -> None:
        """Store a value (``None`` clears it), keeping unique indexes current."""
        index = self.slot(name)
        values = record.values
        if index >= len(values):
            if value is None:
                return
            values.extend([None] * (index + 1 - len(values)))
        old = values[index]
        values[index] = value
        unique = self.unique.get(name)
        if unique is not None:
            if isinstance(old, str) and unique.get(old.casefold()) == record.id:
                del unique[old.casefold()]
            if isinstance(value, str):
                unique[value.casefold()] = record.id

    def add(self, record: Record) -> None:
        """Insert a new record, keeping ``order`` sorted."""
        self.records[record.id] = record
        if not self.order or record.id > self.order[-1]:
            self.order.append(record.id)
        else:
            bisect.insort(self.order, record.id)
        self.next_id = max(self.next_id, record.id + 1)

    def unique_index(self, name: str) -> dict[str, int]:
        """Value (case-folded) -> id for a unique property such as a contact's email; built on first use."""
        index = self.unique.get(name)
        if index is None:
            index = {}
            slot = self.slots.get(name)
            if slot is not None:
                for record in self.records.values():
                    if record.archived_at is None and slot < len(record.values):
                        value = record.values[slot]
                        if isinstance(value, str):
                            index[value.casefold()] = record.id
            self.unique[name] = index
        return index

    def iter_from(self, after: int, archived: bool) -> Iterator[Record]:
        """Records with id >= ``after`` in id order, archived or not (walks ``order`` in place: a list page
        costs O(log n + page), not a copy of the id list)."""
        order, records = self.order, self.records
        index = bisect.bisect_left(order, after)
        while index < len(order):
            record = records[order[index]]
            index += 1
            if (record.archived_at is not None) == archived:
                yield record

    def forget_unique(self, record: Record) -> None:
        """Drop a record's entries from the unique-value indexes (it is archived or merged away)."""
        for name, index in self.unique.items():
            value = self.stored(record, name)
            if isinstance(value, str) and index.get(value.casefold()) == record.id:
                del index[value.casefold()]


def _snapshot(record: Record) -> Record:
    copy = Record(record.id, record.created, record.updated)
    copy.archived_at = record.archived_at
    copy.values = list(record.values)
    return copy


class SearchView:
    """What search sees of one table: HubSpot's search index is eventually consistent.

    An edit becomes searchable some seconds after its modified time; until then search answers from the record
    as previously indexed (old values and modified time; a record created within the lag not at all), while
    list and read endpoints are consistent at once. Mature connectors re-read a lookback window for it:
    Airbyte's source-hubspot added ``lookback_window`` for "records ... delayed by the HubSpot API" in CRM search
    streams (github.com/airbytehq/airbyte/pull/69203, issue #31176), Estuary holds its search stream back "to
    account for the eventual consistency of the HubSpot APIs" (github.com/estuary/connectors/issues/1861, PR
    #2210), and supaglue's "records that don't show up in search endpoint immediately"
    (github.com/supaglue-labs/supaglue/issues/665). HubSpot publishes no figure for the lag.

    ``pending`` holds, per record changed within the lag, when its change becomes visible and its indexed
    state (a snapshot, or None when it was not searchable): only those records cost a copy. ``mods``/``ids``
    are the searchable records sorted by (indexed modified time, id), as numpy arrays, brought up to date
    lazily from ``dirty`` (record id -> the modified time the arrays hold for it, None when they hold none),
    so writes stay O(1) and a window on the modified time is two binary searches. A settle with few changes
    removes and inserts them in place (O(changes × log n) searches plus one array copy), not a re-sort of the
    whole index: a sync's writes interleaved with searches must not cost O(n log n) per search page.
    """

    def __init__(self) -> None:
        self.pending: dict[int, tuple[int, Record | None]] = {}  # id -> (visible at ms, indexed state)
        self.due: list[tuple[int, int]] = []  # heap of (visible at ms, id); stale entries are skipped
        self.dirty: dict[int, int | None] = {}
        self.mods: np.ndarray[Any, np.dtype[np.int64]] = np.zeros(0, dtype=np.int64)
        self.ids: np.ndarray[Any, np.dtype[np.int64]] = np.zeros(0, dtype=np.int64)
        self.generation = 0  # bumped whenever what search sees changes (cached results key on it)

    def _mark(self, record_id: int, indexed: Record | None) -> None:
        """Record that ``record_id``'s indexed state is stale; ``indexed`` is what the arrays hold for it now
        (the first mark since the last settle wins: later ones describe states the arrays never held)."""
        if record_id not in self.dirty:
            self.dirty[record_id] = indexed.updated if indexed is not None and indexed.archived_at is None else None

    def changing(self, record: Record, *, is_new: bool, due: int | None) -> None:
        """Call before a record's searchable state changes; ``due`` is when the change becomes searchable
        (None: at once)."""
        known = self.pending.pop(record.id, None)
        if known is not None:
            state: Record | None = known[1]
        elif is_new:
            state = None
        else:
            state = _snapshot(record) if due is not None else record
        if due is None:
            if record.id not in self.dirty:  # inline :meth:`_mark`: seeding calls this once per record
                self.dirty[record.id] = state.updated if state is not None and state.archived_at is None else None
            return
        self.pending[record.id] = (due, state)
        heapq.heappush(self.due, (due, record.id))

    def view(self, table: Table, record_id: int) -> Record | None:
        """A searchable record as search sees it."""
        known = self.pending.get(record_id)
        if known is not None:
            return known[1]
        return table.records.get(record_id)

    def settle(self, table: Table, now: int) -> None:
        """Make the changes whose time has come searchable, and bring the sorted arrays up to date."""
        pending, heap = self.pending, self.due
        while heap and heap[0][0] <= now:
            due, record_id = heapq.heappop(heap)
            known = pending.get(record_id)
            if known is not None and known[0] == due:  # not superseded by a later change
                del pending[record_id]
                self._mark(record_id, known[1])
        if not self.dirty:
            return
        dirty, self.dirty = self.dirty, {}
        fresh = [(r.updated, r.id) for r in (self.view(table, i) for i in dirty)
                 if r is not None and r.archived_at is None]
        held = [(i, m) for i, m in dirty.items() if m is not None]
        gone: list[int] | None = None
        if len(dirty) * 16 <= len(self.ids):
            gone = [self._position(self.mods, self.ids, m, i) for i, m in held]
            if any(p >= len(self.ids) or int(self.ids[p]) != i for p, (i, _) in zip(gone, held, strict=True)):
                gone = None  # the arrays do not hold what was recorded (never expected): re-sort them
        if gone is None:
            keep = ~np.isin(self.ids, np.fromiter(dirty, dtype=np.int64, count=len(dirty)))
            mods = np.concatenate([self.mods[keep], np.array([m for m, _ in fresh], dtype=np.int64)])
            ids = np.concatenate([self.ids[keep], np.array([i for _, i in fresh], dtype=np.int64)])
            order = np.lexsort((ids, mods))
            self.mods, self.ids = mods[order], ids[order]
        else:
            self.mods, self.ids = self._splice(gone, fresh)
        self.generation += 1

    def _splice(self, gone: list[int], fresh: list[tuple[int, int]]) -> tuple[
            np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.int64]]]:
        """The arrays without the entries at ``gone`` and with ``fresh`` (mod, id) pairs in place, built in one
        copy: the pieces between the changes are concatenated once (a delete then an insert copy twice)."""
        # Positions in the current arrays; a pair is inserted before the entry at its position, and at a
        # position both inserted and removed, the insertion comes first (it sorts before that entry).
        events = sorted([(self._position(self.mods, self.ids, m, i), 0, m, i) for m, i in fresh]
                        + [(p, 1, 0, 0) for p in gone])
        mod_parts: list[np.ndarray[Any, np.dtype[np.int64]]] = []
        id_parts: list[np.ndarray[Any, np.dtype[np.int64]]] = []
        start = 0
        for position, removed, mod, record_id in events:
            mod_parts.append(self.mods[start:position])
            id_parts.append(self.ids[start:position])
            if removed:
                start = position + 1
            else:
                mod_parts.append(np.array([mod], dtype=np.int64))
                id_parts.append(np.array([record_id], dtype=np.int64))
                start = position
        mod_parts.append(self.mods[start:])
        id_parts.append(self.ids[start:])
        return np.concatenate(mod_parts), np.concatenate(id_parts)

    @staticmethod
    def _position(mods: np.ndarray[Any, np.dtype[np.int64]], ids: np.ndarray[Any, np.dtype[np.int64]],
                  mod: int, record_id: int) -> int:
        """Where (mod, id) sits, or would be inserted, in arrays sorted by (mod, id)."""
        lo = int(np.searchsorted(mods, mod, side="left"))
        hi = int(np.searchsorted(mods, mod, side="right"))
        return lo + int(np.searchsorted(ids[lo:hi], record_id))

    def rebuild(self, table: Table) -> None:
        """Index every live record as it is now (after seeding or loading)."""
        self.pending.clear()
        self.due.clear()
        self.dirty = dict.fromkeys(table.records)
        self.mods = np.zeros(0, dtype=np.int64)
        self.ids = np.zeros(0, dtype=np.int64)
        self.settle(table, 0)
        self.generation += 1


@dataclass
class SeedResult:
    """How our record ids map to the HubSpot ids the emulator gave them."""

    contact_ids: dict[str, str] = field(default_factory=dict)
    deal_ids: dict[str, str] = field(default_factory=dict)


class Store:
    """The portal: tables, associations, the write log. Hold ``lock`` around every use."""

    def __init__(self, clock: Callable[[], float] | None = None, *, search_lag_ms: int = 3000,
                 association_page_size: int = 100) -> None:
        self.lock = threading.RLock()
        self.clock = clock or time.time
        self.search_lag_ms = search_lag_ms
        # Each change is indexed after its own delay, up to ``search_lag_ms``: HubSpot publishes no figure or
        # order, and delays that differ per record are the harder case (a record changed later can become
        # searchable first, so "highest modified time seen" is not a safe cursor). Seeded for repeatable runs.
        self._lag_draw = random.Random(0)
        self.association_page_size = association_page_size
        self.tables = {t: Table(t) for t in OBJECT_TYPES}
        self.deal_contacts: dict[int, list[int]] = {}
        self.contact_deals: dict[int, list[int]] = {}
        self.writes: Counter[tuple[str, str]] = Counter()
        self.property_writes: Counter[tuple[str, str, str]] = Counter()
        self.version = 0  # bumped by every change, so cached search results know they are stale
        # A new portal has one currency (knowledge.hubspot.com: multiple currencies are added in Account
        # defaults > Currency); ``set_currencies`` adds others with their exchange rates.
        self.company_currency = "USD"
        self.exchange_rates: dict[str, list[tuple[int, float]]] = {}

    def now_ms(self) -> int:
        """Current time in epoch ms (never goes backwards, so modified times strictly order writes)."""
        return int(self.clock() * 1000)

    def _changing(self, table: Table, record: Record, *, is_new: bool = False, source: str = "api") -> None:
        """Tell the search index a record is about to change (seeded data is indexed at once)."""
        lag = self.search_lag_ms
        due = None if lag <= 0 or source == "seed" else self.now_ms() + max(1, round(lag * self._lag_draw.random()))
        table.search.changing(record, is_new=is_new, due=due)

    # ----------------------------------------------------------------- reading

    def value(self, table: Table, record: Record, name: str) -> Stored | None:
        """A property's value as HubSpot would have it, derived properties included."""
        if name == "hs_object_id":
            return str(record.id)
        if name == "createdate":
            return record.created
        if name == MODIFIED[table.object_type]:
            return record.updated
        if name == "hs_merged_object_ids":
            merged = table.merged_ids.get(record.id)
            return ";".join(str(i) for i in merged) if merged else None
        if table.object_type == "deals":
            if name in ("hs_is_closed_won", "hs_is_closed", "hs_deal_stage_probability"):
                stage = STAGES.get(str(table.stored(record, "dealstage") or ""))
                if stage is None:
                    return None
                if name == "hs_deal_stage_probability":
                    return plain_number(stage[2])
                return "true" if (stage[4] if name == "hs_is_closed_won" else stage[3]) else "false"
            if name == "num_associated_contacts":
                return str(len(self.deal_contacts.get(record.id, ())))
            if name == "amount_in_home_currency":
                return self.home_amount(table, record)
        elif name == "num_associated_deals":
            return str(len(self.contact_deals.get(record.id, ())))
        return table.stored(record, name)

    def home_amount(self, table: Table, record: Record) -> Stored | None:
        """A deal's ``amount_in_home_currency``: its amount times the exchange rate of its currency to the company
        currency (HubSpot's currencies API: ``conversionRate``, "the exchange rate from the additional currency to
        your company currency", developers.hubspot.com/docs/api/settings/currencies).

        Which rate, as HubSpot's help describes "Amount in company currency": a closed deal with a close date
        uses the rate in effect at its close date, else the one in effect closest to it; an open deal follows
        the current rate. A currency the portal has no rate for (a code set before HubSpot validated it, July
        2023: developers.hubspot.com/changelog/deal-currenct-code-validation) is not documented: the value is
        left empty, the harder case for a reader.
        """
        raw = table.stored(record, "amount")
        if raw is None or raw == "":
            return None
        code = str(table.stored(record, "deal_currency_code") or self.company_currency)
        if code == self.company_currency:
            return raw
        periods = self.exchange_rates.get(code)
        if not periods:
            return None
        stage = STAGES.get(str(table.stored(record, "dealstage") or ""))
        close = table.stored(record, "closedate")
        at = int(close) if stage is not None and stage[3] and close not in (None, "") else self.now_ms()
        starts = [start for start, _ in periods]
        index = bisect.bisect_right(starts, at) - 1
        rate = periods[max(index, 0)][1]  # before the first rate: the closest one, which is the first
        return plain_number(float(raw) * rate)

    def set_currencies(self, company: str, rates: Mapping[str, float | list[tuple[datetime, float]]]) -> None:
        """The portal's company currency and exchange rates to it (one rate, or rates from given times)."""
        self.company_currency = company
        self.exchange_rates = {
            code: sorted((to_ms(at), float(r)) for at, r in rate) if isinstance(rate, list) else [(0, float(rate))]
            for code, rate in rates.items()}
        self.version += 1

    def resolve(self, object_type: str, id_text: str, *, archived: bool = False,
                id_property: str | None = None) -> Record | None:
        """The record an API id names: merged-away ids resolve to the surviving record, as HubSpot keeps a
        merged record's old id pointing at the merge result (knowledge.hubspot.com/records/merge-records)."""
        table = self.tables[object_type]
        if id_property and id_property != "hs_object_id":
            found = table.unique_index(id_property).get(id_text.casefold())
            record = table.records.get(found) if found is not None else None
        else:
            try:
                record_id = int(id_text)
            except ValueError:
                return None
            record_id = table.merged_into.get(record_id, record_id)
            record = table.records.get(record_id)
        if record is None or (record.archived_at is not None) != archived:
            return None
        return record

    def to_json(self, table: Table, record: Record, names: Iterable[str],
                associations: Iterable[str] = ()) -> dict[str, Any]:
        """The spec's ``SimplePublicObject`` (with ``associations`` when asked for)."""
        props: dict[str, str] = {}
        defs = table.props
        created, updated = iso_ms(record.created), iso_ms(record.updated)
        # The creation and modification properties render as createdAt/updatedAt do: formatted once (timestamp
        # formatting is most of a search page's cost).
        same = {"createdate": created, MODIFIED[table.object_type]: updated}
        for name in names:
            definition = defs.get(name)
            if definition is None:
                continue  # HubSpot ignores requested properties that do not exist
            known = same.get(name)
            if known is not None:
                props[name] = known
                continue
            value = self.value(table, record, name)
            if value is not None:
                props[name] = render(definition, value)
        out: dict[str, Any] = {"id": str(record.id), "properties": props, "createdAt": created,
                               "updatedAt": updated, "archived": record.archived_at is not None}
        if record.archived_at is not None:
            out["archivedAt"] = iso_ms(record.archived_at)
        linked: dict[str, Any] = {}
        for other in associations:
            key = (table.object_type, other)
            if key not in ASSOCIATION_TYPE_IDS:
                continue
            ids = (self.deal_contacts if table.object_type == "deals" else self.contact_deals).get(record.id)
            if ids:
                shown = ids[:INLINE_ASSOCIATIONS]
                listing: dict[str, Any] = {"results": [{"id": str(i), "type": ASSOCIATION_NAMES[key]}
                                                       for i in shown]}
                if len(ids) > len(shown):
                    after = association_token(other, shown[-1])
                    # The rest is read per record (v4 GET .../associations/{toObjectType} takes the same token).
                    listing["paging"] = {"next": {"after": after, "link": (
                        f"https://api.hubapi.com/crm/v4/objects/{table.object_type}/{record.id}/associations/"
                        f"{other}?after={after}")}}
                linked[other] = listing
        if linked:
            out["associations"] = linked
        return out

    # ----------------------------------------------------------------- writing

    def create(self, object_type: str, values: Mapping[str, Stored | None], *, record_id: int | None = None,
               created: int | None = None, source: str = "api") -> Record:
        """A new record; ``createdate`` in ``values`` sets its creation time."""
        table = self.tables[object_type]
        now = self.now_ms()
        if record_id is None:
            record_id = table.next_id
        born = created if created is not None else now
        given = values.get("createdate")
        if isinstance(given, int):
            born = given
        record = Record(record_id, born, max(now, born) if source == "api" else born)
        self._changing(table, record, is_new=True, source=source)
        table.add(record)
        for name, value in values.items():
            if name != "createdate":
                table.put(record, name, value)
        if source == "api":
            self._count(object_type, record, values)
        self.version += 1
        return record

    def update(self, object_type: str, record: Record, values: Mapping[str, Stored | None], *,
               source: str = "api", when: int | None = None) -> None:
        """Set values as HubSpot would (bumping the modified time); ``source="api"`` counts the write."""
        table = self.tables[object_type]
        self._changing(table, record)
        for name, value in values.items():
            if name == "createdate" and isinstance(value, int):
                record.created = value
            else:
                table.put(record, name, value)
        # Modified times strictly increase per record, so a cursor on them never misses an edit.
        record.updated = max(when if when is not None else self.now_ms(), record.updated + 1)
        if source == "api":
            self._count(object_type, record, values)
        self.version += 1

    def _count(self, object_type: str, record: Record, values: Mapping[str, Stored | None]) -> None:
        key = str(record.id)
        self.writes[(object_type, key)] += 1
        for name in values:
            self.property_writes[(object_type, key, name)] += 1

    def archive(self, object_type: str, record: Record) -> None:
        """Archive (soft-delete) a record, as HubSpot's delete does."""
        if record.archived_at is None:
            table = self.tables[object_type]
            self._changing(table, record)
            record.archived_at = max(self.now_ms(), record.updated)
            record.updated = record.archived_at
            table.forget_unique(record)
            self.version += 1

    def restore(self, object_type: str, record: Record) -> None:
        """Restore an archived record."""
        if record.archived_at is not None:
            self._changing(self.tables[object_type], record)
            record.archived_at = None
            record.updated = max(self.now_ms(), record.updated + 1)
            self.tables[object_type].unique.clear()
            self.version += 1

    def merge(self, object_type: str, primary: Record, secondary: Record) -> Record:
        """Merge two records into a NEW record with a new id, as HubSpot does since its merge change
        ("a new record with a new ID will be created for the resulting merged record, with both records merged
        into the new one ... both of the previous IDs will point to the resulting merged record",
        developers.hubspot.com/changelog/updated-merge-functionality-for-contacts-and-companies; deals, tickets
        and custom objects already merged that way, which the change made contacts and companies consistent
        with).

        The new record takes "the latest property values of the primary record as the current value", blanks
        filled from the secondary (so our own ``clm_*`` values arrive on it like fresh values on a new record);
        its creation time is the primary's and its modified time the merge time. ``hs_merged_object_ids``
        lists both old ids and every id they had absorbed. Associations of both move to the new id, the
        primary's first ("associations from the primary record will be prioritized"). Both old records vanish
        from lists and searches and their ids resolve to the new record. Whether they are listed with
        ``archived=true`` is not documented (a third-party write-up says the originals are archived,
        cleanupcrm.com/blog/hubspot-merge-records-child-objects-api-integrations; Fivetran found merged contacts
        "not flagged as either deleted or inactive", github.com/fivetran/dbt_hubspot/issues/46): the emulator
        takes the harder case for a connector and does not list them, so ``hs_merged_object_ids`` on the new
        record is the only trace of a merge.
        """
        table = self.tables[object_type]
        now = self.now_ms()
        values: dict[str, Stored | None] = {}
        for name, index in table.slots.items():
            value = primary.values[index] if index < len(primary.values) else None
            if value is None and index < len(secondary.values):
                value = secondary.values[index]
            if value is not None:
                values[name] = value
        for old in (primary, secondary):
            self._changing(table, old)
            table.forget_unique(old)
        merged = Record(table.next_id, primary.created, max(now, primary.updated + 1, secondary.updated + 1))
        self._changing(table, merged, is_new=True)
        table.add(merged)
        for name, value in values.items():
            table.put(merged, name, value)
        if object_type == "contacts":
            own, other = self.contact_deals, self.deal_contacts
        else:
            own, other = self.deal_contacts, self.contact_deals
        linked_all: list[int] = []
        for old in (primary, secondary):
            for linked in own.pop(old.id, []):
                back = other.get(linked, [])
                if old.id in back:
                    back.remove(old.id)
                if merged.id not in back:
                    bisect.insort(back, merged.id)
                if linked not in linked_all:
                    linked_all.append(linked)
        if linked_all:
            own[merged.id] = sorted(linked_all)
        absorbed = [primary.id, *table.merged_ids.pop(primary.id, []), secondary.id,
                    *table.merged_ids.pop(secondary.id, [])]
        table.merged_ids[merged.id] = absorbed
        for loser in absorbed:  # every id ever merged into either now resolves in one hop
            table.merged_into[loser] = merged.id
        for old in (primary, secondary):
            del table.records[old.id]
            del table.order[bisect.bisect_left(table.order, old.id)]
        self.version += 1
        return merged

    def associate(self, deal_id: int, contact_id: int) -> None:
        """Associate a deal with a contact (both directions; lists kept in id order, which association paging
        relies on). Neither record's modified time changes: HubSpot does not document that an association
        change bumps ``lastmodifieddate``, and connectors that sync on it miss association changes
        (github.com/airbytehq/airbyte/issues/27199), so the emulator takes that harder case."""
        contacts = self.deal_contacts.setdefault(deal_id, [])
        if contact_id not in contacts:
            bisect.insort(contacts, contact_id)
            bisect.insort(self.contact_deals.setdefault(contact_id, []), deal_id)
            self.version += 1

    def dissociate(self, deal_id: int, contact_id: int) -> bool:
        """Remove a deal↔contact association (modified times unchanged, as for :meth:`associate`)."""
        contacts = self.deal_contacts.get(deal_id, [])
        if contact_id not in contacts:
            return False
        contacts.remove(contact_id)
        deals = self.contact_deals.get(contact_id, [])
        if deal_id in deals:
            deals.remove(deal_id)
        for links, key in ((self.deal_contacts, deal_id), (self.contact_deals, contact_id)):
            if not links.get(key):
                links.pop(key, None)
        self.version += 1
        return True

    # ----------------------------------------------------------------- seeding

    def define(self, object_type: str, name: str, sample: object) -> PropertyDef:
        """Define a property our records carry but HubSpot does not know, typed from a sample value."""
        table = self.tables[object_type]
        kind, field_type = infer_type(sample)
        group = "contactinformation" if object_type == "contacts" else "dealinformation"
        options = [Option("Yes", "true", 0), Option("No", "false", 1)] if kind == "bool" else []
        now = self.now_ms()
        prop = PropertyDef(name=name, label=name.replace("_", " ").title(), type=kind, field_type=field_type,
                           group_name=group, options=options, created_at=now, updated_at=now)
        table.props[name] = prop
        return prop

    def seed_value(self, object_type: str, name: str, value: object) -> Stored | None:
        """One of our property values as HubSpot would hold it (defining the property if it is unknown)."""
        if value is None:
            return None
        table = self.tables[object_type]
        prop = table.props.get(name) or self.define(object_type, name, value)
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = plain_number(float(value))
        elif isinstance(value, datetime):
            if prop.type in ("datetime", "date"):
                return to_ms(value)
            text = iso_ms(to_ms(value))
        else:
            text = str(value)
        if prop.type in ("datetime", "date"):
            ms = parse_time(text)
            return ms if ms is not None else text
        if prop.type in ("enumeration", "bool") and not prop.external_options and prop.field_type != "checkbox" \
                and not any(o.value == text for o in prop.options):
            # The portal's admin added the option our data uses.
            prop.options.append(Option(text, text, len(prop.options)))
        return text

    def _seed_id(self, table: Table, given: str) -> int:
        if given.isdigit() and int(given) not in table.records and int(given) not in table.merged_into:
            return int(given)
        return table.next_id

    def seed(self, contacts: Iterable[Contact], deals: Iterable[Deal]) -> SeedResult:
        """Load our records as a portal would hold them (see :meth:`HubSpotEmulator.seed`)."""
        result = SeedResult()
        for contact in contacts:
            values: dict[str, Stored | None] = {"email": contact.email}
            for name, raw in contact.properties.items():
                if name in ("hs_object_id", "createdate", "lastmodifieddate"):
                    continue
                values[name] = self.seed_value("contacts", name, raw)
            created = to_ms(contact.created_at)
            table = self.tables["contacts"]
            record = self.create("contacts", {k: v for k, v in values.items() if v is not None},
                                 record_id=self._seed_id(table, contact.id), created=created, source="seed")
            record.updated = to_ms(contact.updated_at) if contact.updated_at else created
            if contact.archived:
                record.archived_at = record.updated
            result.contact_ids[contact.id] = str(record.id)
        for deal in deals:
            self._seed_deal(deal, result)
        # A property every seeded record leaves empty still exists in the portal (an admin created it; no record
        # has a value yet): without it, `clm check` would call a correctly spelt property missing.
        from connectors.sandbox.generator import DEAL_PROPERTY_TYPES, PROPERTY_TYPES

        samples: dict[FieldType, object] = {FieldType.NUMBER: 0.0, FieldType.BOOL: True,
                                            FieldType.DATETIME: datetime(2000, 1, 1)}
        for object_type, types in (("contacts", PROPERTY_TYPES), ("deals", DEAL_PROPERTY_TYPES)):
            for name, kind in types.items():
                if name not in self.tables[object_type].props:
                    self.define(object_type, name, samples.get(kind, ""))
        self.tables["contacts"].unique.clear()
        return result

    def _seed_deal(self, deal: Deal, result: SeedResult) -> None:
        if deal.status is DealStatus.WON:
            stage = "closedwon"
        elif deal.status is DealStatus.LOST:
            stage = "closedlost"
        else:
            # An open deal sits in an open stage of the default pipeline: its own stage when HubSpot knows it.
            wanted = (deal.stage or "").strip().lower().replace(" ", "")
            stage = next((s[0] for s in STAGES.values() if not s[3] and wanted in (s[0], s[1].lower().replace(
                " ", ""))), "appointmentscheduled")
        values: dict[str, Stored | None] = {
            "dealname": str(deal.properties.get("dealname") or f"Deal {deal.id}"),
            "dealstage": stage, "pipeline": "default",
            "amount": plain_number(deal.amount) if deal.amount is not None else None,
            "deal_currency_code": self.seed_value("deals", "deal_currency_code", deal.currency)
            if deal.currency else None,
            "closedate": to_ms(deal.closed_at) if deal.closed_at else None,
        }
        for name, raw in deal.properties.items():
            if name not in values and name not in ("hs_object_id", "createdate", "hs_lastmodifieddate"):
                values[name] = self.seed_value("deals", name, raw)
        created = to_ms(deal.created_at)
        table = self.tables["deals"]
        record = self.create("deals", {k: v for k, v in values.items() if v is not None},
                             record_id=self._seed_id(table, deal.id), created=created, source="seed")
        record.updated = to_ms(deal.updated_at) if deal.updated_at else max(
            created, to_ms(deal.closed_at) if deal.closed_at else created)
        if deal.archived:
            record.archived_at = record.updated
        result.deal_ids[deal.id] = str(record.id)
        for contact_id in deal.contact_ids:
            hubspot_id = result.contact_ids.get(contact_id, contact_id)
            if hubspot_id.isdigit() and int(hubspot_id) in self.tables["contacts"].records:
                self.associate(record.id, int(hubspot_id))
