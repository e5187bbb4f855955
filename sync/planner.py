"""The write plan: which of our fields to write on which records, and nothing else.

For every record and field it compares three values: what the engine wants now (*desired*), what the CRM
holds (*current*, from the last pull or our last write) and what we last wrote (*written*).

- current equals desired (within tolerance): nothing to write.
- current is what we wrote (or empty, or what an interrupted run may have sent): ours to update.
- otherwise a person changed it in the CRM: the configured policy decides (overwrite, skip, report).

``computed_at`` never triggers a write by itself; it rides along with real changes (the engine keeps
``stage_since`` unchanged while the stage is). A record the CRM rejected for a non-transient reason is not
retried until the values we want for it change.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from core.models import FieldSpec, FieldType
from sync.state import Rejection

if TYPE_CHECKING:  # the engine is imported when a run computes, not when the CLI starts
    from core.engine import EnrichResult

#: Fields that never cause a write on their own.
PASSENGER_FIELDS = frozenset({"computed_at"})
#: Seconds by which the column pre-filter's datetime test is stricter than :func:`same`'s.
_DATETIME_MARGIN = 2e-3


@dataclass(frozen=True)
class Conflict:
    """A value of ours that someone changed in the CRM since we wrote it."""

    record_id: str
    field: str
    current: Any
    written: Any
    desired: Any


@dataclass
class Plan:
    """Per record, the fields to write; plus what was held back and why."""

    writes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    held_back: list[Rejection] = field(default_factory=list)
    already_current: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Values found already in the CRM (e.g. sent by an interrupted run): recorded as written, not resent."""

    def field_counts(self) -> dict[str, int]:
        """How many records change, per field."""
        counts: dict[str, int] = {}
        for _, values in self.writes:
            for name in values:
                if name not in PASSENGER_FIELDS:
                    counts[name] = counts.get(name, 0) + 1
        return counts


class DesiredColumns(Mapping[str, dict[str, Any]]):
    """What the engine wants for every contact, kept as the engine's columns (:class:`core.engine.EnrichResult`).

    The planner decides which records may need a write on the columns themselves; only those records are
    materialised (``desired[record_id]``: the values as :class:`core.models.Enrichment` holds them, for the
    fields of ``specs``). At a million contacts, building a dict per record first cost more than the engine.
    """

    def __init__(self, result: EnrichResult, specs: Sequence[FieldSpec]) -> None:
        self._result = result
        self._names = [s.name for s in specs]
        self._index = {rid: i for i, rid in enumerate(result.ids.tolist())}

    def __getitem__(self, record_id: str) -> dict[str, Any]:
        return self.select([record_id])[record_id]

    def select(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``{record_id: self[record_id]}`` for ``ids``, made a column at a time (a first sync needs them all)."""
        return {row["contact_id"]: {name: row[name] for name in self._names}
                for row in self._result.rows(self._positions(ids))}

    def _positions(self, ids: Sequence[str]) -> npt.NDArray[np.intp]:
        return np.fromiter((self._index[i] for i in ids), dtype=np.intp, count=len(ids))

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def column(self, spec: FieldSpec, ids: Sequence[str]) -> np.ndarray:
        """One field for ``ids``, normalised as :func:`_column` normalises values (epoch seconds for datetimes,
        unrounded: see :data:`_DATETIME_MARGIN`; NaN for none; text with "" as none)."""
        values = self._result.columns.get(spec.name)
        if values is None:  # an optional field the engine did not compute: unknown everywhere
            return _column(spec, [None] * len(ids))
        values = values[self._positions(ids)]
        if spec.type is FieldType.DATETIME:
            return values.astype(np.float64)
        if values.dtype == np.float64:
            return values
        return _column(spec, values.tolist())


def normalise(spec: FieldSpec, value: Any) -> float | str | None:
    """A comparable form of one of our values, whichever side it comes from (engine, CRM text, JSON)."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return None
    if spec.type is FieldType.NUMBER:
        try:
            return float(value)
        except (TypeError, ValueError):
            return str(value)
    if spec.type is FieldType.DATETIME:
        if isinstance(value, datetime):
            return round(value.timestamp(), 3)
        text = str(value)
        if text.lstrip("-").replace(".", "", 1).isdigit():
            number = float(text)
            # HubSpot stores datetimes as epoch milliseconds; our JSON keeps ISO text or seconds.
            return round(number / 1000 if number > 1e11 else number, 3)
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text
        return round((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp(), 3)
    if spec.type is FieldType.BOOL:
        return "true" if str(value).lower() in ("true", "1") else "false"
    return str(value)


def same(spec: FieldSpec, a: Any, b: Any, tolerance: float) -> bool:
    """Equal for our purposes: numbers within a relative ``tolerance`` (and 1e-9 absolute), datetimes to
    the second, text exactly."""
    x, y = normalise(spec, a), normalise(spec, b)
    if isinstance(x, float) and isinstance(y, float):
        if spec.type is FieldType.DATETIME:
            return abs(x - y) < 1.0
        # An infinite value is only the same as itself (the relative test would call 5 and inf equal).
        return x == y or (math.isfinite(x) and math.isfinite(y)
                          and abs(x - y) <= max(tolerance * max(abs(x), abs(y)), 1e-9))
    return x == y


def values_hash(values: Mapping[str, Any]) -> str:
    """A stable fingerprint of the values we want for a record (to recognise a repeated rejection)."""
    plain = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in sorted(values.items())
             if k not in PASSENGER_FIELDS}
    return hashlib.sha256(json.dumps(plain, default=str).encode()).hexdigest()[:16]


def _column(spec: FieldSpec, values: list[Any]) -> np.ndarray:
    """One field's values, normalised, as a column: float64 (NaN for none) for numbers and datetimes, else
    objects."""
    # The common cases without a call per value: numbers (or numeric text) and plain text. Anything these do
    # not cover exactly (unreadable numbers, datetimes in their several CRM forms) goes through ``normalise``.
    if spec.type is FieldType.NUMBER:
        try:
            numbers = np.array([math.nan if v is None or v == "" else v for v in values], dtype=np.float64)
        except (TypeError, ValueError):
            pass
        else:
            if numbers.ndim == 1:  # not lists of equal length, which numpy would stack
                return numbers
    elif spec.type in (FieldType.STRING, FieldType.ENUM) and all(v is None or v.__class__ is str for v in values):
        return np.array([v or None for v in values], dtype=object)
    normal = [normalise(spec, v) for v in values]
    if spec.type in (FieldType.NUMBER, FieldType.DATETIME) and all(isinstance(v, float) or v is None
                                                                   for v in normal):
        return np.array([np.nan if v is None else v for v in normal], dtype=np.float64)
    return np.array(normal, dtype=object)


def _equal(spec: FieldSpec, a: np.ndarray, b: np.ndarray, tolerance: float) -> np.ndarray:
    """Element-wise :func:`same` on two normalised columns (both none counts as equal)."""
    if a.dtype == np.float64 and b.dtype == np.float64:
        both_none = np.isnan(a) & np.isnan(b)
        with np.errstate(invalid="ignore"):
            if spec.type is FieldType.DATETIME:
                # A little stricter than ``same`` (which decides, for the records left): the engine's epoch
                # seconds and the CRM's text round to the millisecond apart, so a pair a second apart could
                # otherwise settle here and not there.
                close = np.abs(a - b) < 1.0 - _DATETIME_MARGIN
            else:
                close = (a == b) | (np.isfinite(a) & np.isfinite(b) & (
                    np.abs(a - b) <= np.maximum(tolerance * np.maximum(np.abs(a), np.abs(b)), 1e-9)))
        return np.asarray(both_none | close, dtype=bool)
    # Already normalised: text compares exactly; numbers mixed with text (an unreadable CRM value) as ``same`` does.
    return np.array([same(spec, x, y, tolerance) if isinstance(x, float) and isinstance(y, float) else x == y
                     for x, y in zip(a.tolist(), b.tolist(), strict=True)], dtype=bool)


def _settled_out(desired: Mapping[str, Mapping[str, Any]], current: Mapping[str, Mapping[str, Any]],
                 written: Mapping[str, Mapping[str, Any]], specs: Sequence[FieldSpec], tolerance: float) -> list[str]:
    """The records (in id order) that may need anything: the others hold, in the CRM and in what we wrote, the
    values we want for every field, which is what most records of a sync without changes do.

    Decided a field at a time on columns (desired, current and written values of every record); only the records
    left are diffed field by field (and so materialised) by :func:`make_plan`.
    """
    ids = sorted(desired)
    columns = desired if isinstance(desired, DesiredColumns) else None
    # Each field is decided on the records not yet known to need anything, so a first sync (nothing written)
    # is settled after one field and a sync without changes pays one column per field.
    pending = ids
    empty: Mapping[str, Any] = {}
    for spec in specs:
        name = spec.name
        if name in PASSENGER_FIELDS or not pending:
            continue
        wanted = (columns.column(spec, pending) if columns is not None else
                  _column(spec, [desired[i].get(name) for i in pending]))
        now = _column(spec, [current.get(i, empty).get(name) for i in pending])
        ours = _column(spec, [written.get(i, empty).get(name) for i in pending])
        has_ours = np.array([name in written.get(i, empty) for i in pending], dtype=bool)
        present = (np.ones(len(pending), dtype=bool) if columns is not None else
                   np.array([name in desired[i] for i in pending], dtype=bool))
        wanted_none = np.isnan(wanted) if wanted.dtype == np.float64 else np.array(
            [v is None for v in wanted.tolist()], dtype=bool)
        # Nothing to do for this field: the CRM has it, and it is what we wrote (or there is nothing to write).
        settled = _equal(spec, now, wanted, tolerance) & (wanted_none | (has_ours & _equal(spec, ours, wanted,
                                                                                             tolerance)))
        pending = [i for i, done in zip(pending, (settled | ~present).tolist(), strict=True) if done]
    if not pending:
        return ids
    quiet = set(pending)
    return [i for i in ids if i not in quiet]


def make_plan(
    desired: Mapping[str, Mapping[str, Any]],
    current: Mapping[str, Mapping[str, Any]],
    written: Mapping[str, Mapping[str, Any]],
    specs: Sequence[FieldSpec],
    *,
    in_flight: Mapping[str, Mapping[str, Any]] | None = None,
    rejections: Mapping[str, Rejection] | None = None,
    on_conflict: str = "report",
    tolerance: float = 0.005,
) -> Plan:
    """Diff desired values against the CRM and what we wrote; see the module docstring for the rules."""
    by_name = {s.name: s for s in specs}
    in_flight = in_flight or {}
    rejections = rejections or {}
    plan = Plan()
    pending = _settled_out(desired, current, written, specs, tolerance)
    rows = desired.select(pending) if isinstance(desired, DesiredColumns) else desired
    for record_id in pending:
        wanted = rows[record_id]
        crm = current.get(record_id, {})
        ours = written.get(record_id, {})
        maybe_sent = in_flight.get(record_id, {})
        changes: dict[str, Any] = {}
        for name, value in wanted.items():
            if name in PASSENGER_FIELDS or name not in by_name:
                continue
            spec = by_name[name]
            now = crm.get(name)
            if same(spec, now, value, tolerance):
                if normalise(spec, value) is not None and (name not in ours
                                                           or not same(spec, ours[name], value, tolerance)):
                    plan.already_current.setdefault(record_id, {})[name] = value
                continue
            mine = normalise(spec, now) is None or (name in ours and same(spec, now, ours[name], tolerance)) \
                or (name in maybe_sent and same(spec, now, maybe_sent[name], tolerance))
            if mine or on_conflict == "overwrite":
                changes[name] = value
                if not mine:
                    plan.conflicts.append(Conflict(record_id, name, now, ours.get(name), value))
            else:
                plan.conflicts.append(Conflict(record_id, name, now, ours.get(name), value))
        if not changes:
            continue
        for name in PASSENGER_FIELDS:
            if name in wanted and name in by_name:
                changes[name] = wanted[name]
        rejection = rejections.get(record_id)
        if rejection is not None and not rejection.transient and rejection.values_hash == values_hash(changes):
            plan.held_back.append(rejection)
            continue
        plan.writes.append((record_id, changes))
    return plan
