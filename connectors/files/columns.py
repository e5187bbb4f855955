"""Parquet, and CSV whose lines are its rows, read column-wise through pyarrow: each column is checked once per
distinct value, the checks' outcomes are spread back over the rows with numpy, and only the rows that passed become
records.

A column's distinct values are far fewer than its rows (dates, amounts, stages, a deal's contact), so the per-value
checks of :class:`.records.RecordMapper` (the same ones the row-wise reading applies) cost little at millions of
rows; typed Parquet columns (timestamps, dates, numbers, booleans, lists of ids) are taken as they are, CSV columns
are read as text. A row that fails is reported with its file, position (a Parquet row, 1-based; a CSV line) and
the first column that failed, in the order the row-wise reading checks them.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from connectors.files.records import BadRow, MappingError, RecordMapper
from core.errors import ConnectorError
from core.models import Contact, Deal, DealStatus, FieldType

#: How a Parquet file counts its records in a report (a CSV counts lines).
UNIT = "row"


@dataclass(frozen=True)
class _Refused:
    """A value a check refused: the reason (the column is the one being read)."""

    reason: str


@dataclass
class _Column:
    """One column's checked values per row, and which rows it refused."""

    name: str | None
    values: list[Any]
    refused: npt.NDArray[np.bool_]
    reasons: list[str]
    """Per distinct value: why it was refused ("" when it was not)."""
    indices: npt.NDArray[np.intp]
    """Per row: the index of its distinct value."""

    def reason(self, row: int) -> str:
        """Why a refused row was."""
        return self.reasons[int(self.indices[row])]


def read_table(path: Path) -> pa.Table:
    """One Parquet file as an Arrow table (a broken file is a :class:`ConnectorError` naming it)."""
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise ConnectorError(f"{path}: not readable as Parquet ({exc})",
                             hint="export the file again, or as CSV") from None


def csv_table(path: Path, delimiter: str) -> pa.Table | None:
    """A CSV file as a table of text columns, when it reads column-wise into exactly the rows and lines the
    row-wise reading finds: one line per row, every row as long as the header, UTF-8. Anything else (a quoted
    line break, a blank line, a short row, another encoding) is None, and the file is read row by row, which
    reports each such line as it always has."""
    try:
        data = path.read_bytes()
    except OSError:
        return None  # the row-wise reading names the error
    end = data.find(b"\n")
    try:
        header = next(csv.reader([data[:end if end >= 0 else len(data)].decode("utf-8-sig").rstrip("\r")],
                                 delimiter=delimiter))
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return None
    names = [name.strip() for name in header]
    if len(set(names)) != len(names):
        return None
    try:
        table = pcsv.read_csv(path,
                              read_options=pcsv.ReadOptions(column_names=header, skip_rows=1),
                              parse_options=pcsv.ParseOptions(delimiter=delimiter),
                              convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string())))
    except (pa.ArrowException, ValueError):
        return None
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    return table.rename_columns(names) if lines == table.num_rows + 1 else None


def contacts(table: pa.Table, file: Path, mapper: RecordMapper, first: int = 1,
             unit: str = UNIT) -> Iterator[tuple[int, Contact] | BadRow]:
    """The contacts of one file with their positions (``first`` is the first row's), and a :class:`BadRow` for
    each row refused."""
    cols = mapper.config.contact_columns
    checked = [_ids(table, cols.id, mapper),
               _check(table, cols.created, lambda v: mapper.time_value(v, cols.created, required=True))]
    properties = _properties(table, mapper, mapper.contact_properties)
    emails = _check(table, cols.email, _stripped).values if cols.email else [None] * table.num_rows
    good = yield from _refusals(file, [*checked, *(column for _, column in properties)], first, unit)
    ids, created = checked[0].values, checked[1].values
    for i in good:
        yield first + i, mapper.make_contact(ids[i], emails[i], created[i],
                                             {name: c.values[i] for name, c in properties if c.values[i] is not None})


def deals(table: pa.Table, file: Path, mapper: RecordMapper, first: int = 1,
          unit: str = UNIT) -> Iterator[tuple[int, Deal] | BadRow]:
    """The deals of one file with their positions (``first`` is the first row's), and a :class:`BadRow` for each
    row refused."""
    cols = mapper.config.deal_columns
    rows = table.num_rows
    none: list[Any] = [None] * rows
    ids = _ids(table, cols.id, mapper)
    closed = _optional(table, cols.closed, mapper.time_value)
    created = _optional(table, cols.created, mapper.time_value)
    closed_at = none if closed is None else closed.values
    created_at = none if created is None else created.values
    statuses = _check(table, cols.status, mapper.status_value).values
    # The checks across columns, on whole columns: a creation or a close date; a won deal's close date.
    no_created, no_closed = _nones(created_at), _nones(closed_at)
    opened_at = np.where(no_created, _objects(closed_at), _objects(created_at)).tolist()
    opened = _derived(no_created & no_closed, opened_at, lambda: mapper.opened(None, None))
    won = np.fromiter((s is DealStatus.WON for s in statuses), dtype=bool, count=rows)
    won_unclosed = _derived(won & no_closed, none, lambda: mapper.check_won(DealStatus.WON, None))
    amounts = _optional(table, cols.amount, mapper.amount_value)
    properties = _properties(table, mapper, mapper.deal_properties)
    order = [ids, *(c for c in (closed, created) if c is not None), opened, won_unclosed,
             *(c for c in (amounts,) if c is not None), *(column for _, column in properties)]
    good = yield from _refusals(file, order, first, unit)
    currencies = _check(table, cols.currency, lambda v: _stripped(v) or None).values if cols.currency else none
    contact_ids = _check(table, cols.contact_ids, mapper.contact_ids_value).values
    amount = none if amounts is None else amounts.values
    for i in good:
        status: DealStatus = statuses[i]
        yield first + i, mapper.make_deal(ids.values[i], amount[i], currencies[i], status, opened_at[i],
                                          closed_at[i], contact_ids[i],
                                          {name: c.values[i] for name, c in properties if c.values[i] is not None})


def _ids(table: pa.Table, column: str, mapper: RecordMapper) -> _Column:
    """An id column, checked on the whole column (ids are distinct: a check per value would be one per row)."""
    array = table.column(column) if column in table.column_names else None
    if array is None or not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)
                             or pa.types.is_integer(array.type)):
        return _check(table, column, lambda v: mapper.id_value(v, column))
    text = pc.utf8_trim_whitespace(array.cast(pa.string()))
    empty = pc.equal(text, pa.scalar(""))
    refused = np.asarray(pc.or_kleene(empty, pc.match_substring_regex(text, "[\t\r\n]"))
                         .fill_null(True).to_numpy(zero_copy_only=False), dtype=np.bool_)
    values = text.to_pylist()
    reasons = [""] * len(values)
    for row in np.flatnonzero(refused).tolist():
        reasons[row] = _apply(lambda v: mapper.id_value(v, column), values[row]).reason
    return _Column(column, values, refused, reasons, np.arange(len(values)))


def _stripped(value: Any) -> str | None:
    return None if value is None else str(value).strip()


def _properties(table: pa.Table, mapper: RecordMapper,
                wanted: dict[str, tuple[str, FieldType]]) -> list[tuple[str, _Column]]:
    """The declared properties whose column is in the file, each checked against its type."""
    return [(name, _check(table, column, _typed(mapper, column, kind)))
            for name, (column, kind) in wanted.items() if column in table.column_names]


def _typed(mapper: RecordMapper, column: str, kind: FieldType) -> Callable[[Any], str | None]:
    return lambda value: mapper.property_value(value, column, kind)


def _optional(table: pa.Table, column: str | None, check: Callable[[Any, str], Any]) -> _Column | None:
    """A column the mapping may leave out (None), each value checked as ``check(value, column)``."""
    if not column:
        return None
    name = column
    return _check(table, name, lambda value: check(value, name))


def _refusals(file: Path, checked: Sequence[_Column], first: int,
              unit: str) -> Generator[BadRow, None, list[int]]:
    """A :class:`BadRow` per refused row (naming the first column, in ``checked`` order, that refused it);
    returns the rows that passed."""
    refused = np.stack([c.refused for c in checked])
    failing = np.flatnonzero(refused.any(axis=0))
    culprits = refused[:, failing].argmax(axis=0)
    for row, k in zip(failing.tolist(), culprits.tolist(), strict=True):
        yield BadRow(file, first + row, checked[k].name, checked[k].reason(row), unit)
    passed: list[int] = np.flatnonzero(~refused.any(axis=0)).tolist()
    return passed


def _check(table: pa.Table, column: str, convert: Callable[[Any], Any]) -> _Column:
    """``convert`` applied to each distinct value of a column (absent: every row is empty), spread over the rows;
    a value it refuses (:class:`MappingError`, ``ValueError``) is marked refused with its reason."""
    rows = table.num_rows
    if column not in table.column_names:
        return _spread(column, [_apply(convert, None)], np.zeros(rows, dtype=np.intp))
    array = table.column(column).combine_chunks()
    if pa.types.is_timestamp(array.type) and array.type.unit == "ns":
        # Python's datetime holds microseconds: nanoseconds are dropped (no CRM records them).
        array = pc.cast(array, pa.timestamp("us", array.type.tz), safe=False)
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        # Lists (a deal's contacts) cannot be dictionary-encoded; they are read one by one.
        return _spread(column, [_apply(convert, v) for v in array.to_pylist()], np.arange(rows))
    encoded = array.dictionary_encode()
    distinct = [_apply(convert, v) for v in encoded.dictionary.to_pylist()]
    # Empty cells point one past the dictionary, at the converted empty value.
    distinct.append(_apply(convert, None))
    indices = np.asarray(encoded.indices.fill_null(len(distinct) - 1).to_numpy(zero_copy_only=False), dtype=np.intp)
    return _spread(column, distinct, indices)


def _derived(refused: npt.NDArray[np.bool_], values: list[Any], check: Callable[[], Any]) -> _Column:
    """A check across columns, done on whole columns (``refused``); ``check`` is the row-wise check of a refused
    row, for its column and reason."""
    try:
        check()
    except MappingError as exc:
        return _Column(exc.column, values, refused, [exc.reason], np.zeros(len(values), dtype=np.intp))
    raise AssertionError("the row-wise check accepts what the column-wise one refuses")  # pragma: no cover


def _nones(values: list[Any]) -> npt.NDArray[np.bool_]:
    return np.fromiter((v is None for v in values), dtype=bool, count=len(values))


def _objects(values: list[Any]) -> npt.NDArray[np.object_]:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _spread(column: str | None, distinct: list[Any], indices: npt.NDArray[np.intp]) -> _Column:
    values = np.empty(len(distinct), dtype=object)
    values[:] = distinct
    refused = np.fromiter((isinstance(v, _Refused) for v in distinct), dtype=bool, count=len(distinct))
    reasons = [v.reason if isinstance(v, _Refused) else "" for v in distinct]
    return _Column(column, values[indices].tolist(), refused[indices], reasons, indices)


def _apply(convert: Callable[[Any], Any], value: Any) -> Any:
    try:
        return convert(value)
    except MappingError as exc:
        return _Refused(exc.reason)
    except (ValueError, TypeError, OverflowError) as exc:
        return _Refused(f"unreadable value ({exc.__class__.__name__})")
