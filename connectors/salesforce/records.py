"""Salesforce rows as typed values and as our records, and the incremental cursor.

REST answers JSON (numbers, booleans, ``2024-01-31T12:00:00.000+0000``) and Bulk API 2.0 answers CSV (text
only, ``2024-01-31T12:00:00.000Z``, empty cell = null); both are turned into the same Python values by the
field's describe type, so the two paths give identical records.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from core.errors import ConnectorError, DataError
from core.models import Contact, Deal, DealStatus, PropertyValue

Row = dict[str, Any]
"""One record as typed values by field API name (child relationships kept as lists of rows)."""

_NUMBER_KINDS = frozenset({"double", "currency", "percent"})
_INT_KINDS = frozenset({"int", "long"})
_COMPOUND_KINDS = frozenset({"address", "location", "anyType", "base64", "complexvalue", "encryptedstring"})
_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")


@dataclass(frozen=True)
class ObjectSchema:
    """What describe says about one sObject: field types, which fields we may write, its Id prefix."""

    name: str
    key_prefix: str
    kinds: Mapping[str, str]
    updateable: frozenset[str]
    picklists: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    relations: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Lookup relationships by lower-case name: ``account`` -> (``Account``, the object it points to)."""
    lookups: Mapping[str, str] = field(default_factory=dict)
    """The reference field behind each relationship, by lower-case name: ``account`` -> ``AccountId``."""
    _lower: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_describe(cls, body: Mapping[str, Any]) -> ObjectSchema:
        """Build from ``GET sobjects/{Object}/describe`` (only fields the user can see are listed)."""
        fields = body.get("fields") or []
        kinds = {str(f["name"]): str(f.get("type") or "string") for f in fields}
        return cls(
            name=str(body.get("name")),
            key_prefix=str(body.get("keyPrefix") or ""),
            kinds=kinds,
            updateable=frozenset(str(f["name"]) for f in fields if f.get("updateable")),
            picklists={str(f["name"]): tuple(str(v.get("value")) for v in f.get("picklistValues") or [])
                       for f in fields if f.get("type") == "picklist"},
            relations={str(f["relationshipName"]).lower(): (str(f["relationshipName"]), str(f["referenceTo"][0]))
                       for f in fields if f.get("relationshipName") and f.get("referenceTo")},
            lookups={str(f["relationshipName"]).lower(): str(f["name"])
                     for f in fields if f.get("relationshipName") and f.get("referenceTo")},
            _lower={name.lower(): name for name in kinds},
        )

    def with_parent_fields(self, extra: Mapping[str, str]) -> ObjectSchema:
        """This schema plus read-only parent fields (``Account.Industry`` -> its describe type), which SOQL
        selects through the lookup relationship."""
        kinds = {**self.kinds, **extra}
        return replace(self, kinds=kinds, _lower={name.lower(): name for name in kinds})

    def canonical(self, name: str) -> str | None:
        """The field's API name as Salesforce spells it, or None if the user cannot see such a field."""
        return self._lower.get(name.lower())

    def selectable(self, names: Iterable[str]) -> list[str]:
        """The given fields that exist and are scalar (compound address/location fields cannot be compared)."""
        out = []
        for name in names:
            canonical = self.canonical(name)
            if canonical and self.kinds[canonical] not in _COMPOUND_KINDS and canonical not in out:
                out.append(canonical)
        return out


def utc_datetime(text: str) -> datetime:
    """Parse a Salesforce dateTime (``…+0000`` from REST, ``…Z`` from Bulk) or date as aware UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def converter(kind: str, *, csv: bool) -> Callable[[Any], PropertyValue]:
    """A function turning one JSON value (or CSV cell when ``csv``) of a field of this describe type into ours.

    Dates become midnight UTC datetimes (the engine compares datetimes); CSV empty cells are null (Bulk API
    "Valid Date Format in Records" / null values are exported as empty cells). A value that cannot be read as
    its type stays as its text (never an exception that would stop the pull, issue 14): :func:`to_deal` and
    :func:`to_contact` report it naming record and field, and the engine's quality check reports properties.
    """
    read = _converter(kind, csv=csv)

    def lenient(value: Any) -> PropertyValue:
        try:
            return read(value)
        except (ValueError, TypeError, OverflowError):
            return str(value)
    return lenient


def _converter(kind: str, *, csv: bool) -> Callable[[Any], PropertyValue]:
    if kind in _NUMBER_KINDS:
        def number(value: Any) -> PropertyValue:
            return None if value is None or value == "" else float(value)
        return number
    if kind in _INT_KINDS:
        def integer(value: Any) -> PropertyValue:
            return None if value is None or value == "" else int(float(value))
        return integer
    if kind == "boolean":
        if csv:
            return lambda value: None if value == "" else value.lower() == "true"
        return lambda value: value if value is None else bool(value)
    if kind in ("datetime", "date"):
        def moment(value: Any) -> PropertyValue:
            return None if value is None or value == "" else utc_datetime(str(value))
        return moment
    if csv:
        return lambda value: value if value != "" else None
    return lambda value: value if value is None or isinstance(value, str | int | float | bool) else str(value)


class RowReader:
    """Converts raw rows (REST dicts or CSV cells) of a fixed field list to typed rows."""

    def __init__(self, schema: ObjectSchema, fields: Sequence[str]) -> None:
        self.fields = list(fields)
        self._json = [(name, _getter(name), converter(schema.kinds[name], csv=False)) for name in self.fields]
        self._csv = {name: converter(schema.kinds[name], csv=True) for name in self.fields}

    def from_json(self, raw: Mapping[str, Any]) -> Row:
        """One REST record (``attributes`` and unselected keys ignored)."""
        return {name: convert(get(raw)) for name, get, convert in self._json}

    def from_csv(self, header: Sequence[str], cells: Sequence[str]) -> Row:
        """One Bulk API 2.0 result line."""
        row: Row = {}
        for name, cell in zip(header, cells, strict=False):
            convert = self._csv.get(name)
            if convert is not None:
                row[name] = convert(cell)
        for name in self.fields:
            row.setdefault(name, None)
        return row


def _getter(name: str) -> Callable[[Mapping[str, Any]], Any]:
    """Reads a field from a REST record; a parent field (``Account.Industry``) is nested under its relationship,
    which is null when the lookup is empty."""
    if "." not in name:
        return lambda raw: raw.get(name)
    relation, leaf = name.split(".", 1)

    def nested(raw: Mapping[str, Any]) -> Any:
        parent = raw.get(relation)
        return parent.get(leaf) if isinstance(parent, Mapping) else None
    return nested


# --- the incremental cursor -------------------------------------------------------------------------------


def second_of(moment: datetime) -> datetime:
    """The whole second a timestamp falls in."""
    return moment.replace(microsecond=0)


def soql_datetime(moment: datetime) -> str:
    """A SOQL dateTime literal (unquoted, UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


#: Record versions a cursor remembers at most (the newest): past that, the oldest of a lookback window are read
#: again next time, which costs rows but never loses one (the mirror stores an unchanged record once).
MAX_REMEMBERED = 20_000


class HighWater:
    """The incremental cursor of one object: the latest ``SystemModstamp`` second seen, and which versions of
    which records were delivered from ``lookback`` before it up to it (Id and millisecond).

    Why not ``(SystemModstamp, Id)`` keyset pairs: SOQL ignores milliseconds when it compares dateTime values
    (salesforce.stackexchange.com/q/234824, "The system currently ignores the milliseconds for the purposes of
    considering two values equal"), so within one second neither ``=`` nor the order of Ids can be trusted to
    match ours. Why a lookback: ``SystemModstamp`` is set when a save runs, and its transaction may commit later,
    after records stamped later were read (Airbyte's source-salesforce lost such records below its stored state,
    github.com/airbytehq/airbyte/issues/27146; Singer's tap-salesforce re-reads a ``lookback_window``,
    github.com/singer-io/tap-salesforce/pull/135). So the next window asks ``SystemModstamp >= <that second> -
    lookback`` and drops only the exact versions already delivered in it: a late commit, or a record changed
    again within the same second (another millisecond), comes; what was delivered does not come again.
    Cursor text: ``2024-01-31T12:00:05Z|<id>.<ms>,<id>.<ms>,...``, each ``ms`` counted from that second (negative
    for versions in the lookback before it).
    """

    def __init__(self, cursor: str | None, lookback: float = 0.0) -> None:
        self.lookback_ms = int(lookback * 1000)
        self.start_second: datetime | None = None
        self.start_seen: dict[str, int] = {}
        if cursor:
            stamp, _, seen = cursor.partition("|")
            try:
                self.start_second = second_of(utc_datetime(stamp))
                base = _epoch_ms(self.start_second)
                for item in seen.split(","):
                    if item:
                        record_id, _, ms = item.partition(".")
                        self.start_seen[record_id] = base + int(ms or -1)
            except ValueError:
                raise ConnectorError(f"the stored Salesforce cursor '{cursor[:60]}' is unreadable",
                                     hint="run `clm sync --full` once to rebuild the mirror") from None
        self.second = self.start_second
        self.seen: dict[str, int] = dict(self.start_seen)
        """Versions delivered, by Id: epoch milliseconds of their ``SystemModstamp``."""

    @property
    def incremental(self) -> bool:
        """Whether there was a cursor (else this is a full pull)."""
        return self.start_second is not None

    def floor(self) -> datetime | None:
        """Where the window starts: the cursor's second minus the lookback (None for a full pull)."""
        if self.second is None:
            return None
        return datetime.fromtimestamp((_epoch_ms(self.second) - self.lookback_ms) // 1000, UTC)

    def where(self, field_name: str = "SystemModstamp") -> str:
        """The SOQL condition of the window after the cursor ('' for a full pull)."""
        floor = self.floor()
        return "" if floor is None else f"{field_name} >= {soql_datetime(floor)}"

    def fresh(self, moment: datetime, record_id: str, *, ordered: bool) -> bool:
        """Whether a row is new to this pull; records it.

        ``ordered`` rows arrive in ``SystemModstamp`` order (REST pages of one query, possibly restarted from
        this cursor): a version delivered already in this pull or before is a repeat. Unordered rows (a Bulk
        job's result) are unique within the job: only the starting cursor's versions repeat.
        """
        stamp = _epoch_ms(moment)
        known = self.seen if ordered else self.start_seen
        if known.get(record_id) == stamp:
            return False
        second = second_of(moment)
        if self.second is None or second > self.second:
            self.second = second
        self.seen[record_id] = stamp
        return True

    def remember(self, moment: datetime, record_id: str) -> bool:
        """Whether a version known from elsewhere (a deletion in the delete log, dated by its ``SystemModstamp``)
        is new to this cursor; records it without moving the window, which only rows read move."""
        stamp = _epoch_ms(moment)
        if self.seen.get(record_id) == stamp:
            return False
        self.seen[record_id] = stamp
        return True

    def value(self) -> str | None:
        """The cursor text to store (None before any row); forgets versions older than the window."""
        if self.second is None:
            return None
        base = _epoch_ms(self.second)
        floor = self.floor()
        assert floor is not None
        start = _epoch_ms(floor)
        kept = {i: t for i, t in self.seen.items() if t >= start}
        if len(kept) > MAX_REMEMBERED:
            kept = dict(sorted(kept.items(), key=lambda item: item[1])[-MAX_REMEMBERED:])
        self.seen = kept
        return f"{soql_datetime(self.second)}|{','.join(f'{i}.{t - base:03d}' for i, t in sorted(kept.items()))}"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def soql_ids(ids: Iterable[str]) -> str:
    """``'id1','id2'`` for an ``IN (...)`` list; refuses anything that is not a Salesforce Id."""
    out = []
    for record_id in ids:
        if not _ID.match(record_id):
            raise ConnectorError(f"'{record_id[:40]}' is not a Salesforce record Id")
        out.append(f"'{record_id}'")
    return ",".join(out)


# --- our records ---------------------------------------------------------------------------------------------


def properties(row: Row, wanted: Mapping[str, str]) -> dict[str, PropertyValue]:
    """``{name as configured: value}`` for the wanted fields that have a value (``wanted``: name -> API name)."""
    out: dict[str, PropertyValue] = {}
    for name, api_name in wanted.items():
        value = row.get(api_name)
        if value is not None:
            out[name] = value
    return out


class UnreadableField(DataError, ValueError):
    """A record field that is not of its type; a :class:`ValueError` too, which the pull already catches."""


def record_time(row: Row, name: str, record: str) -> datetime | None:
    """A record's own time field, or :class:`UnreadableField` naming the record and field when it is unreadable
    (the converter left its text, e.g. a ``CloseDate`` of ``99999999999999999999``; issue 14)."""
    value = row.get(name)
    if value is None or isinstance(value, datetime):
        return value
    raise UnreadableField(f"{record} {row.get('Id')}, field {name}: '{str(value)[:40]}' is not a readable date; "
                          "the record is skipped")


def to_contact(row: Row, wanted: Mapping[str, str]) -> Contact:
    """A Contact or Lead row as our contact."""
    created = record_time(row, "CreatedDate", "contact")
    return Contact(
        id=str(row["Id"]),
        email=row.get("Email") or None,
        created_at=created if created is not None else datetime.now(UTC),
        updated_at=record_time(row, "LastModifiedDate", "contact"),
        properties=properties(row, wanted),
    )


@dataclass(frozen=True, order=True)
class Role:
    """One OpportunityContactRole, ordered primary first, then oldest first (ties by Id)."""

    not_primary: bool
    created: datetime
    id: str
    contact_id: str = field(compare=False)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Role:
        """From a typed OpportunityContactRole row."""
        created = row.get("CreatedDate")
        return cls(not bool(row.get("IsPrimary")), created if isinstance(created, datetime) else datetime.min.replace(
            tzinfo=UTC), str(row["Id"]), str(row.get("ContactId") or ""))


def ordered_contacts(roles: Iterable[Role]) -> tuple[str, ...]:
    """The people of a deal from its contact roles: the primary first, each once."""
    return tuple(dict.fromkeys(r.contact_id for r in sorted(roles) if r.contact_id))


def deal_status(row: Mapping[str, Any]) -> DealStatus:
    """``IsWon`` → won; ``IsClosed`` (and not won) → lost; otherwise open."""
    if row.get("IsWon"):
        return DealStatus.WON
    return DealStatus.LOST if row.get("IsClosed") else DealStatus.OPEN


def to_deal(row: Row, contact_ids: tuple[str, ...], wanted: Mapping[str, str]) -> Deal:
    """An Opportunity row as our deal.

    ``CloseDate`` is the close date of a closed opportunity but only the *expected* one of an open opportunity,
    so an open deal gets no ``closed_at``.
    """
    status = deal_status(row)
    created = record_time(row, "CreatedDate", "Opportunity")
    closed = record_time(row, "CloseDate", "Opportunity")
    amount = row.get("Amount")
    if amount is not None and not (isinstance(amount, int | float) and math.isfinite(amount)):
        raise UnreadableField(f"Opportunity {row.get('Id')}, field Amount: '{str(amount)[:40]}' is not a finite "
                              "number; the record is skipped")
    return Deal(
        id=str(row["Id"]),
        amount=float(amount) if amount is not None else None,
        currency=row.get("CurrencyIsoCode") or None,
        pipeline=None,
        stage=row.get("StageName") or None,
        status=status,
        created_at=created if created is not None else datetime.now(UTC),
        closed_at=closed if status is not DealStatus.OPEN else None,
        updated_at=record_time(row, "LastModifiedDate", "Opportunity"),
        contact_ids=contact_ids,
        properties=properties(row, wanted),
    )
