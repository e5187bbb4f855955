"""The engine's internal form: one numpy column per field over all contacts (and all deals).

Records (:mod:`core.models`) are converted here once; every computation after that is vectorised.
Times are float64 seconds since the Unix epoch (UTC), NaN when unknown. Numbers are float64 with NaN for
unknown; booleans are float64 0/1 with NaN; text is an object array of ``str`` or ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from core.currency import to_base
from core.models import Contact, Deal, DealStatus, FieldType, PropertyValue
from core.quality import QualityReport

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ObjArray = npt.NDArray[np.object_]


class StatusCode(IntEnum):
    """Deal status as a small integer column."""

    OPEN = 0
    WON = 1
    LOST = 2


_STATUS_CODE = {DealStatus.OPEN: StatusCode.OPEN, DealStatus.WON: StatusCode.WON, DealStatus.LOST: StatusCode.LOST}


@dataclass
class ContactColumns:
    """All contacts as columns; row ``i`` is contact ``ids[i]``."""

    ids: ObjArray
    created_at: FloatArray
    properties: dict[str, FloatArray | ObjArray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class DealColumns:
    """All deals as columns, each attributed to one contact row (``contact_index``, -1 when none).

    A deal associated with several contacts appears once per attributed contact (see ``attribution`` in
    :func:`from_records`).
    """

    ids: ObjArray
    contact_index: IntArray
    amount: FloatArray
    status: npt.NDArray[np.int8]
    created_at: FloatArray
    closed_at: FloatArray
    properties: dict[str, FloatArray | ObjArray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class ContactRows:
    """Contacts as plain per-field lists, as a store reads them in bulk (no record objects): the input of
    :func:`from_rows`. ``created_at`` in epoch seconds; ``properties`` a list per property, aligned with ``ids``."""

    ids: list[str]
    created_at: list[float]
    properties: dict[str, list[PropertyValue]]


@dataclass
class DealRows:
    """Deals as plain per-field lists (see :class:`ContactRows`); ``status`` as :class:`DealStatus` values, times in
    epoch seconds (None when unknown), ``contact_ids`` each deal's associated contacts in order."""

    ids: list[str]
    amount: list[float | None]
    currency: list[str | None]
    status: list[str]
    created_at: list[float]
    closed_at: list[float | None]
    contact_ids: list[Sequence[str]]
    properties: dict[str, list[PropertyValue]]


def _epoch(value: datetime | None) -> float:
    return value.timestamp() if value is not None else np.nan


def property_column(values: Sequence[PropertyValue], kind: FieldType) -> FloatArray | ObjArray:
    """Convert one property's raw values to a column of the declared type.

    Values that cannot be read as the type become unknown (NaN/None) rather than failing the run;
    :func:`from_records` reports them per record and field in its ``quality`` report.
    """
    if kind in (FieldType.STRING, FieldType.ENUM):
        return np.array([None if v is None else str(v) for v in values], dtype=object)
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        out[i] = _to_float(v, kind)
    return out


def _to_float(value: PropertyValue, kind: FieldType) -> float:
    if value is None or value == "":
        return np.nan
    if isinstance(value, datetime):
        return value.timestamp()
    if kind is FieldType.BOOL:
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("true", "1", "yes"):
                return 1.0
            if lowered in ("false", "0", "no"):
                return 0.0
            return np.nan
        return 1.0 if value else 0.0
    if kind is FieldType.DATETIME and isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            # HubSpot sends datetimes as epoch milliseconds in some places.
            try:
                return float(value) / 1000.0
            except ValueError:
                return np.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def from_records(
    contacts: Iterable[Contact],
    deals: Iterable[Deal],
    property_types: dict[str, FieldType],
    deal_property_types: dict[str, FieldType] | None = None,
    attribution: str = "primary",
    quality: QualityReport | None = None,
    currency: str | None = None,
    rates: Mapping[str, float] | None = None,
) -> tuple[ContactColumns, DealColumns]:
    """Convert records to columns once.

    ``property_types`` names the contact properties the engine needs and their types; other properties are
    not carried. ``attribution`` is ``primary`` (a deal counts for its first associated contact) or ``all``
    (for every associated contact). Deals whose contacts are all unknown keep ``contact_index`` -1.
    ``quality``, when given, receives every property value that does not fit its type or is impossible
    (:meth:`core.quality.QualityReport.check_property`); those values become unknown.
    Amounts are put in one currency first (:func:`core.currency.to_base`, ``currency`` the configured base and
    ``rates`` its table): a deal in a currency without a rate is reported and left out.
    """
    contact_list = [c for c in contacts if not c.archived]
    live = [d for d in deals if not d.archived]
    deal_types = deal_property_types or {}
    return from_rows(
        ContactRows(ids=[c.id for c in contact_list], created_at=[_epoch(c.created_at) for c in contact_list],
                    properties={name: [c.properties.get(name) for c in contact_list] for name in property_types}),
        DealRows(ids=[d.id for d in live], amount=[d.amount for d in live], currency=[d.currency for d in live],
                 status=[d.status.value for d in live], created_at=[_epoch(d.created_at) for d in live],
                 closed_at=[None if d.closed_at is None else d.closed_at.timestamp() for d in live],
                 contact_ids=[d.contact_ids for d in live],
                 properties={name: [d.properties.get(name) for d in live] for name in deal_types}),
        property_types, deal_types, attribution=attribution, quality=quality, currency=currency, rates=rates)


def from_rows(
    contacts: ContactRows,
    deals: DealRows,
    property_types: dict[str, FieldType],
    deal_property_types: dict[str, FieldType] | None = None,
    attribution: str = "primary",
    quality: QualityReport | None = None,
    currency: str | None = None,
    rates: Mapping[str, float] | None = None,
) -> tuple[ContactColumns, DealColumns]:
    """Convert per-field lists (live records only) to columns; the arguments after the rows are
    :func:`from_records`'s, which converts its records to rows and calls this."""
    report = quality if quality is not None else QualityReport()

    def read(name: str, ids: Sequence[str], values: Sequence[PropertyValue], kind: FieldType) -> FloatArray | ObjArray:
        return report.check_property(name, ids, values, property_column(values, kind), kind)

    index = {c: i for i, c in enumerate(contacts.ids)}
    missing: list[PropertyValue] = [None] * len(contacts.ids)
    contact_cols = ContactColumns(
        ids=np.array(contacts.ids, dtype=object),
        created_at=np.array(contacts.created_at, dtype=np.float64),
        properties={name: read(f"contact.{name}", contacts.ids, contacts.properties.get(name, missing), kind)
                    for name, kind in property_types.items()},
    )
    amounts, kept = to_base(deals.ids, deals.amount, deals.currency, currency, rates or {}, report)
    rows: list[tuple[int, int]] = []  # (deal position, contact row)
    for position, (contact_ids, keep) in enumerate(zip(deals.contact_ids, kept, strict=True)):
        if not keep:
            continue
        targets = [index[c] for c in contact_ids if c in index]
        if attribution == "primary":
            targets = targets[:1]
        rows.extend((position, t) for t in targets) if targets else rows.append((position, -1))
    at = [p for p, _ in rows]
    deal_types = deal_property_types or {}
    deal_ids = [deals.ids[p] for p in at]
    no_values: list[PropertyValue] = [None] * len(deals.ids)
    deal_cols = DealColumns(
        ids=np.array(deal_ids, dtype=object),
        contact_index=np.array([t for _, t in rows], dtype=np.int64),
        amount=np.array([np.nan if amounts[p] is None else amounts[p] for p in at], dtype=np.float64),
        status=np.array([_STATUS_CODE[DealStatus(deals.status[p])] for p in at], dtype=np.int8),
        created_at=np.array([deals.created_at[p] for p in at], dtype=np.float64),
        closed_at=np.array([np.nan if deals.closed_at[p] is None else deals.closed_at[p] for p in at],
                           dtype=np.float64),
        properties={
            name: read(f"deal.{name}", deal_ids, [values[p] for p in at], kind)
            for name, kind in deal_types.items() for values in (deals.properties.get(name, no_values),)
        },
    )
    return contact_cols, deal_cols
