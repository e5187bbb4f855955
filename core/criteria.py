"""Evaluate configured criteria over all contacts at once: a :class:`~core.config.Criteria` becomes a function
from a :class:`FieldTable` (name -> column) to a boolean mask.

Semantics, chosen to read like a CRM list filter:

* ``criteria`` conditions are AND'ed; when ``any_of`` groups are given, at least one group (its conditions
  AND'ed) must hold as well. Empty criteria match every row.
* An unknown value (NaN, ``None``, empty text) never satisfies a comparison (``eq``, ``lt``, ``between``,
  ``in``, ``contains``, ``within_last``...). The negative operators ``neq`` and ``not_in`` are the exact
  complements of ``eq`` and ``in``, so they *do* match unknown values: "is not equal to CEO" includes
  contacts with no job title, as in HubSpot's list filters ("is none of", where the Lists API makes it a
  per-filter choice through ``includeObjectsWithNoValueSet``). Add ``is_known`` to exclude them.
* Text comparisons are case-insensitive: ``eq``/``in`` compare whole values, ``contains`` looks for a
  substring. Leading/trailing blanks are ignored; an empty text is unknown.
* Dates are epoch seconds. ``within_last d``: between ``as_of - d`` and ``as_of`` (inclusive);
  ``not_within_last d``: before ``as_of - d``; ``within_next d``: between ``as_of`` and ``as_of + d``
  (e.g. a contract ending in the next 60 days). Date values in conditions are ISO texts (UTC when naive).
* A field absent from the table is all unknown (a declared property the CRM did not send).

Text columns are factorised once per table (codes into their distinct values), so a text condition costs one
Python comparison per distinct value plus one vectorised lookup, not a Python call per contact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from core.columns import FloatArray, IntArray, ObjArray
from core.config import Condition, Criteria, duration_days
from core.models import FieldType

BoolArray = npt.NDArray[np.bool_]
Column = FloatArray | ObjArray
Predicate = Callable[["FieldTable"], BoolArray]

DAY = 86_400.0
_TEXT_KINDS = (FieldType.STRING, FieldType.ENUM)


class FieldTable:
    """Named columns over ``n`` rows (contacts), the time they are evaluated at, and each column's type.

    Numbers, dates (epoch seconds) and booleans (0/1) are float64 with NaN for unknown; text is an object
    array of ``str``/``None``. A column's type comes from :meth:`set` (or is inferred from its dtype).
    """

    def __init__(self, n_rows: int, as_of: float) -> None:
        self.n = n_rows
        self.as_of = float(as_of)
        self._columns: dict[str, Column] = {}
        self._kinds: dict[str, FieldType] = {}
        self._codes: dict[str, tuple[IntArray, list[str]]] = {}

    def set(self, name: str, column: npt.NDArray[Any], kind: FieldType | None = None) -> None:
        """Add or replace a column; booleans and integers are stored as float64, text stays object."""
        if len(column) != self.n:
            raise ValueError(f"column '{name}' has {len(column)} rows, the table {self.n}")
        if column.dtype != object and column.dtype != np.float64:
            column = column.astype(np.float64)
        self._columns[name] = column
        self._kinds[name] = kind if kind is not None else (FieldType.STRING if column.dtype == object
                                                           else FieldType.NUMBER)
        self._codes.pop(name, None)

    def update(self, columns: Mapping[str, npt.NDArray[Any]], kinds: Mapping[str, FieldType] | None = None) -> None:
        """Set several columns, typed from ``kinds`` where given."""
        for name, column in columns.items():
            self.set(name, column, (kinds or {}).get(name))

    def __contains__(self, name: object) -> bool:
        return name in self._columns

    def __getitem__(self, name: str) -> Column:
        return self._columns[name]

    def get(self, name: str) -> Column | None:
        """The column, or None when the table has no such field."""
        return self._columns.get(name)

    def kind(self, name: str) -> FieldType | None:
        """The column's type, or None when the table has no such field."""
        return self._kinds.get(name)

    def names(self) -> list[str]:
        """Every column name, in insertion order."""
        return list(self._columns)

    def numbers(self, name: str) -> FloatArray:
        """A numeric column, or all-NaN when absent (so callers need not special-case missing fields)."""
        column = self._columns.get(name)
        if column is None or column.dtype == object:
            return np.full(self.n, np.nan)
        return np.asarray(column, dtype=np.float64)

    def text_codes(self, name: str) -> tuple[IntArray, list[str]]:
        """``codes`` (-1 for unknown) into the column's distinct values, folded to lower case, cached."""
        cached = self._codes.get(name)
        if cached is None:
            cached = factorize(np.asarray(self._columns[name], dtype=object))
            self._codes[name] = cached
        return cached


def factorize(column: ObjArray) -> tuple[IntArray, list[str]]:
    """Codes into the distinct case-folded, stripped texts of ``column``; None/NaN/blank texts get -1.

    One pass of dict look-ups (CRM text columns hold few distinct values, shared objects), which is an order
    of magnitude faster than sorting the strings.
    """
    values = column.tolist()
    mapping: dict[Any, int] = {}
    folded: dict[str, int] = {}
    categories: list[str] = []
    for value in dict.fromkeys(values):
        text = _text(value)
        if text is None:
            mapping[value] = -1
            continue
        key = text.casefold()
        if key not in folded:
            folded[key] = len(categories)
            categories.append(key)
        mapping[value] = folded[key]
    codes = np.fromiter(map(mapping.__getitem__, values), dtype=np.int64, count=len(values))
    return codes, categories


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 50.0 reads as "50", as a CRM shows it
    text = str(value).strip()
    return text or None


def compile_criteria(criteria: Criteria) -> Predicate:
    """Turn criteria into a function ``table -> mask`` (see the module docstring for the semantics)."""
    required = [compile_condition(c) for c in criteria.criteria]
    groups = [[compile_condition(c) for c in group] for group in criteria.any_of]

    def predicate(table: FieldTable) -> BoolArray:
        mask = _all(required, table)
        if groups:
            mask &= np.logical_or.reduce([_all(group, table) for group in groups])
        return mask

    return predicate


def evaluate(criteria: Criteria, table: FieldTable) -> BoolArray:
    """The rows of ``table`` that match ``criteria``."""
    return compile_criteria(criteria)(table)


def _all(predicates: Sequence[Predicate], table: FieldTable) -> BoolArray:
    mask = np.ones(table.n, dtype=bool)
    for predicate in predicates:
        mask &= predicate(table)
    return mask


def compile_condition(condition: Condition) -> Predicate:
    """Turn one condition into a function ``table -> mask``."""
    field, op, value = condition.field, condition.op, condition.value

    def predicate(table: FieldTable) -> BoolArray:
        column = table.get(field)
        if column is None:
            # Every value unknown: only the operators that match unknowns hold.
            return np.full(table.n, op in ("is_unknown", "neq", "not_in"))
        kind = table.kind(field)
        if column.dtype == object:
            return _text_mask(table, field, op, value)
        return _number_mask(np.asarray(column, dtype=np.float64), kind, op, value, table.as_of, field)

    return predicate


# --- numbers, dates and booleans ------------------------------------------------------------------------


def _number_mask(column: FloatArray, kind: FieldType | None, op: str, value: Any, as_of: float,
                 field: str) -> BoolArray:
    if op == "is_known":
        return ~np.isnan(column)
    if op == "is_unknown":
        return np.isnan(column)
    if op in ("within_last", "not_within_last", "within_next"):
        span = duration_days(str(value)) * DAY
        if op == "within_last":
            return (column >= as_of - span) & (column <= as_of)
        if op == "within_next":
            return (column >= as_of) & (column <= as_of + span)
        return column < as_of - span
    if op in ("in", "not_in"):
        inside = np.asarray(np.isin(column, [_number(v, kind, field) for v in _listed(value)]), dtype=bool)
        return inside if op == "in" else ~inside
    if op == "between":
        low, high = (_number(v, kind, field) for v in _listed(value))
        return (column >= low) & (column <= high)
    target = _number(value, kind, field)
    if op == "eq":
        return np.equal(column, target)
    if op == "neq":
        return np.not_equal(column, target)  # NaN != x is True: unknowns match, as documented
    if op == "lt":
        return column < target
    if op == "lte":
        return column <= target
    if op == "gt":
        return column > target
    if op == "gte":
        return column >= target
    raise ValueError(f"operator '{op}' does not apply to {(kind or FieldType.NUMBER).value} field '{field}'")


def _number(value: Any, kind: FieldType | None, field: str) -> float:
    """A condition value as the column's float: booleans 0/1, dates epoch seconds, numbers as they are."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime | date):
        return to_epoch(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if kind is FieldType.BOOL and lowered in ("true", "false"):
            return 1.0 if lowered == "true" else 0.0
        try:
            return float(value)
        except ValueError:
            pass
        try:
            return to_epoch(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            pass
    raise ValueError(f"value {value!r} cannot be compared with field '{field}'")


def to_epoch(value: datetime | date) -> float:
    """Epoch seconds of a date (midnight UTC) or datetime (UTC when naive)."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


# --- text ---------------------------------------------------------------------------------------------


def _text_mask(table: FieldTable, field: str, op: str, value: Any) -> BoolArray:
    codes, categories = table.text_codes(field)
    if op == "is_known":
        return codes >= 0
    if op == "is_unknown":
        return codes < 0
    if op in ("eq", "neq", "in", "not_in"):
        wanted = {t.casefold() for t in (_text(v) for v in _listed(value)) if t is not None}
        hit = _category_mask(categories, lambda c: c in wanted)
        inside = hit[codes]
        return inside if op in ("eq", "in") else ~inside
    if op == "contains":
        needle = (_text(value) or "").casefold()
        return _category_mask(categories, lambda c: needle in c)[codes]
    raise ValueError(f"operator '{op}' does not apply to text field '{field}'")


def _category_mask(categories: Iterable[str], test: Callable[[str], bool]) -> BoolArray:
    """Per distinct value whether it passes, plus a final False that code -1 (unknown) indexes."""
    return np.array([*(test(c) for c in categories), False], dtype=bool)
