"""The emulated portal's data: contacts and deals, their property definitions, deal↔contact associations.

Compact on purpose (a portal of 1,000,000 contacts must fit in memory): a record is a ``__slots__`` object
whose values live in a list indexed by the property's slot in its table, datetimes are epoch-ms ints, and
properties HubSpot calculates (``hs_object_id``, ``lastmodifieddate``, ``hs_is_closed_won``...) are derived
when read instead of stored. One re-entrant lock guards everything; callers hold it for a whole request.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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
from core.models import Contact, Deal, DealStatus

#: v4 association type ids HubSpot defines for deals and contacts (HUBSPOT_DEFINED; deal_to_contact 3,
#: contact_to_deal 4 — developers.hubspot.com/docs/api/crm/associations/v4#association-type-id-values).
ASSOCIATION_TYPE_IDS = {("deals", "contacts"): 3, ("contacts", "deals"): 4}
ASSOCIATION_NAMES = {("deals", "contacts"): "deal_to_contact", ("contacts", "deals"): "contact_to_deal"}
_FIRST_ID = {"contacts": 101, "deals": 1001}


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
        """Records with id >= ``after`` in id order, archived or not."""
        start = bisect.bisect_left(self.order, after)
        records = self.records
        for record_id in self.order[start:]:
            record = records[record_id]
            if (record.archived_at is not None) == archived:
                yield record


@dataclass
class SeedResult:
    """How our record ids map to the HubSpot ids the emulator gave them."""

    contact_ids: dict[str, str] = field(default_factory=dict)
    deal_ids: dict[str, str] = field(default_factory=dict)


class Store:
    """The portal: tables, associations, the write log. Hold ``lock`` around every use."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.lock = threading.RLock()
        self.clock = clock or time.time
        self.tables = {t: Table(t) for t in OBJECT_TYPES}
        self.deal_contacts: dict[int, list[int]] = {}
        self.contact_deals: dict[int, list[int]] = {}
        self.writes: Counter[tuple[str, str]] = Counter()
        self.property_writes: Counter[tuple[str, str, str]] = Counter()
        self.version = 0  # bumped by every change, so cached search results know they are stale

    def now_ms(self) -> int:
        """Current time in epoch ms (never goes backwards, so modified times strictly order writes)."""
        return int(self.clock() * 1000)

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
        elif name == "num_associated_deals":
            return str(len(self.contact_deals.get(record.id, ())))
        return table.stored(record, name)

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
        for name in names:
            definition = defs.get(name)
            if definition is None:
                continue  # HubSpot ignores requested properties that do not exist
            value = self.value(table, record, name)
            if value is not None:
                props[name] = render(definition, value)
        out: dict[str, Any] = {"id": str(record.id), "properties": props, "createdAt": iso_ms(record.created),
                               "updatedAt": iso_ms(record.updated), "archived": record.archived_at is not None}
        if record.archived_at is not None:
            out["archivedAt"] = iso_ms(record.archived_at)
        linked: dict[str, Any] = {}
        for other in associations:
            key = (table.object_type, other)
            if key not in ASSOCIATION_TYPE_IDS:
                continue
            ids = (self.deal_contacts if table.object_type == "deals" else self.contact_deals).get(record.id)
            if ids:
                linked[other] = {"results": [{"id": str(i), "type": ASSOCIATION_NAMES[key]} for i in ids]}
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
            record.archived_at = max(self.now_ms(), record.updated)
            record.updated = record.archived_at
            table = self.tables[object_type]
            for index in table.unique.values():
                for key in [k for k, v in index.items() if v == record.id]:
                    del index[key]
            self.version += 1

    def restore(self, object_type: str, record: Record) -> None:
        """Restore an archived record."""
        if record.archived_at is not None:
            record.archived_at = None
            record.updated = max(self.now_ms(), record.updated + 1)
            self.tables[object_type].unique.clear()
            self.version += 1

    def merge(self, object_type: str, primary: Record, secondary: Record) -> Record:
        """Merge ``secondary`` into ``primary``: the primary keeps its values (filling its blanks from the
        secondary), takes over its associations and lists its id in ``hs_merged_object_ids``; the secondary
        disappears from lists and searches, and its id resolves to the primary from then on."""
        table = self.tables[object_type]
        for name, index in table.slots.items():
            if table.stored(primary, name) is None and index < len(secondary.values):
                value = secondary.values[index]
                if value is not None:
                    table.put(primary, name, value)
        if object_type == "contacts":
            own, other = self.contact_deals, self.deal_contacts
        else:
            own, other = self.deal_contacts, self.contact_deals
        for linked in own.pop(secondary.id, []):
            back = other.get(linked, [])
            if secondary.id in back:
                back.remove(secondary.id)
            if primary.id not in back:
                back.append(primary.id)
            targets = own.setdefault(primary.id, [])
            if linked not in targets:
                targets.append(linked)
        absorbed = [secondary.id, *table.merged_ids.pop(secondary.id, [])]
        table.merged_ids.setdefault(primary.id, []).extend(absorbed)
        for loser in absorbed:
            table.merged_into[loser] = primary.id
        for merged_from, into in list(table.merged_into.items()):
            if into == secondary.id:
                table.merged_into[merged_from] = primary.id
        del table.records[secondary.id]
        del table.order[bisect.bisect_left(table.order, secondary.id)]
        table.unique.clear()
        primary.updated = max(self.now_ms(), primary.updated + 1)
        self.version += 1
        return primary

    def associate(self, deal_id: int, contact_id: int) -> None:
        """Associate a deal with a contact (both directions)."""
        contacts = self.deal_contacts.setdefault(deal_id, [])
        if contact_id not in contacts:
            contacts.append(contact_id)
            self.contact_deals.setdefault(contact_id, []).append(deal_id)
            self.version += 1

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
