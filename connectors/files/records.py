"""Export rows as our typed records through the ``[files]`` column mapping; a row that cannot be used becomes a
:class:`BadRow` naming its file, line (a Parquet file: row) and column, and the rest proceeds.

The checks are per value (:meth:`RecordMapper.time_value`, ``amount_value``...), so the row-wise reading of CSV
and JSON Lines and the column-wise reading of Parquet (:mod:`.columns`) accept and refuse exactly the same values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

from connectors.base import parse_time
from core.config import FilesConfig
from core.models import Contact, Deal, DealStatus, FieldType, PropertyValue


@dataclass(frozen=True)
class BadRow:
    """A row left out of the pull, and why; ``unit`` is how the file counts its rows (CSV and JSON Lines by
    line, Parquet by row)."""

    file: Path
    line: int
    column: str | None
    reason: str
    unit: str = "line"

    def __str__(self) -> str:
        where = f"{self.file.name}, {self.unit} {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.reason}; the row is skipped"


class MappingError(Exception):
    """A row that cannot be used: which column (None: the row as a whole) and why."""

    def __init__(self, column: str | None, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


class RecordMapper:
    """Turns rows (or columns' values) into contacts and deals."""

    def __init__(self, config: FilesConfig, contact_properties: Mapping[str, FieldType],
                 deal_properties: Mapping[str, FieldType]) -> None:
        self.config = config
        self.contact_properties = {name: (config.contact_properties.get(name, name), kind)
                                   for name, kind in contact_properties.items()}
        self.deal_properties = {name: (config.deal_properties.get(name, name), kind)
                                for name, kind in deal_properties.items()}
        self.won = {v.strip().casefold() for v in config.won_values}
        self.lost = {v.strip().casefold() for v in config.lost_values}
        # The mirror keeps a record whose modified time did not move (sync.state): an export has none, so each
        # record is stamped with the time its export was read (set by the connector at each reading).
        self.read_at = datetime.now(UTC)

    def contact(self, values: Mapping[str, Any]) -> Contact:
        """One contact, or :class:`MappingError` naming the column."""
        cols = self.config.contact_columns
        contact_id = self.id_value(values.get(cols.id), cols.id)
        email = _text(values.get(cols.email)) if cols.email else None
        created = self.time_value(values.get(cols.created), cols.created, required=True) or self.read_at
        return self.make_contact(contact_id, email, created, self._properties(values, self.contact_properties))

    def make_contact(self, contact_id: str, email: str | None, created: datetime,
                     properties: dict[str, PropertyValue]) -> Contact:
        """A contact from checked values."""
        return _trusted(Contact, {"id": contact_id, "email": email, "created_at": created, "updated_at": self.read_at,
                                  "properties": properties, "archived": False})

    def deal(self, values: Mapping[str, Any]) -> Deal:
        """One deal, or :class:`MappingError` naming the column."""
        cols = self.config.deal_columns
        deal_id = self.id_value(values.get(cols.id), cols.id)
        closed = self.time_value(values.get(cols.closed), cols.closed) if cols.closed else None
        created = self.time_value(values.get(cols.created), cols.created) if cols.created else None
        opened = self.opened(created, closed)
        status = self.status_value(values.get(cols.status))
        self.check_won(status, closed)
        contact_ids = self.contact_ids_value(values.get(cols.contact_ids))
        amount = self.amount_value(values.get(cols.amount), cols.amount) if cols.amount else None
        currency = (_text(values.get(cols.currency)) or None) if cols.currency else None
        return self.make_deal(deal_id, amount, currency, status, opened, closed, contact_ids,
                              self._properties(values, self.deal_properties))

    def make_deal(self, deal_id: str, amount: float | None, currency: str | None, status: DealStatus,
                  opened: datetime, closed: datetime | None, contact_ids: tuple[str, ...],
                  properties: dict[str, PropertyValue]) -> Deal:
        """A deal from checked values."""
        return _trusted(Deal, {"id": deal_id, "amount": amount, "currency": currency, "pipeline": None, "stage": None,
                               "status": status, "created_at": opened, "closed_at": closed, "updated_at": self.read_at,
                               "contact_ids": contact_ids, "properties": properties, "archived": False})

    def opened(self, created: datetime | None, closed: datetime | None) -> datetime:
        """When a deal was opened: its creation date, else its close date; neither: :class:`MappingError`."""
        opened = created or closed
        if opened is None:
            cols = self.config.deal_columns
            raise MappingError(cols.created or cols.closed, "no creation or close date")
        return opened

    def check_won(self, status: DealStatus, closed: datetime | None) -> None:
        """A won deal without a close date is refused: the close date is the purchase date."""
        if status is DealStatus.WON and closed is None:
            raise MappingError(self.config.deal_columns.closed, "a won deal needs a close date (it is the purchase "
                                                                "date)")

    @staticmethod
    def id_value(raw: Any, column: str) -> str:
        """An id as text: present, without tabs or line breaks (the snapshot files are tab-separated)."""
        text = _text(raw)
        if not text:
            raise MappingError(column, "no id")
        if any(c in text for c in "\t\r\n"):
            raise MappingError(column, "the id holds a tab or line break")
        return text

    def contact_ids_value(self, raw: Any) -> tuple[str, ...]:
        """A deal's contacts: a list (JSON Lines, a Parquet list column) or a cell listing them with the separator."""
        parts = [str(i) for i in raw] if isinstance(raw, list) else (
            (_text(raw) or "").split(self.config.deal_columns.contact_separator))
        return tuple(dict.fromkeys(i.strip() for i in parts if i.strip()))

    def time_value(self, raw: Any, column: str, required: bool = False) -> datetime | None:
        """A moment in UTC: a typed timestamp or date (Parquet), or text in ISO 8601, epoch milliseconds or
        ``files.date_format``; a time without a zone is taken as UTC."""
        if isinstance(raw, datetime):
            return raw.astimezone(UTC) if raw.tzinfo else raw.replace(tzinfo=UTC)
        if isinstance(raw, date):
            return datetime(raw.year, raw.month, raw.day, tzinfo=UTC)
        text = _text(raw)
        if not text:
            if required:
                raise MappingError(column, "no date")
            return None
        if self.config.date_format:
            try:
                given = datetime.strptime(text, self.config.date_format)
                return given.astimezone(UTC) if given.tzinfo else given.replace(tzinfo=UTC)
            except ValueError:
                pass  # ISO 8601 and epoch milliseconds are read as well
        try:
            moment = parse_time(text)
        except ValueError as exc:
            raise MappingError(column, f"{exc} (write ISO 8601, epoch milliseconds or set files.date_format)") from None
        if moment is None:  # pragma: no cover - parse_time returns None only for empty text
            raise MappingError(column, "no date")
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)

    @staticmethod
    def amount_value(raw: Any, column: str) -> float | None:
        """An amount: a typed number, or text that reads as a finite number; empty: None."""
        if raw is None or _text(raw) == "":
            return None
        try:
            number = float(raw if not isinstance(raw, str) else raw.strip())
        except (TypeError, ValueError):
            raise MappingError(column, f"'{str(raw)[:40]}' is not a number") from None
        if not math.isfinite(number):
            raise MappingError(column, f"'{raw}' is not a finite number")
        return number

    def status_value(self, raw: Any) -> DealStatus:
        """Won, lost (by ``files.won_values``/``lost_values``, case-insensitive) or open."""
        text = (_text(raw) or "").casefold()
        if text in self.won:
            return DealStatus.WON
        return DealStatus.LOST if text in self.lost else DealStatus.OPEN

    def property_value(self, raw: Any, column: str, kind: FieldType) -> str | None:
        """A property checked against its type, as text (the engine reads properties as CRMs send them; a typed
        date or timestamp is written in ISO 8601); empty: None."""
        if isinstance(raw, date):
            return raw.isoformat()
        text = _text(raw)
        if not text:
            return None
        if kind is FieldType.NUMBER:
            try:
                if not math.isfinite(float(text)):
                    raise ValueError
            except ValueError:
                raise MappingError(column, f"'{text[:40]}' is not a number") from None
        elif kind is FieldType.DATETIME:
            self.time_value(text, column)
        elif kind is FieldType.BOOL and text.casefold() not in ("true", "false", "1", "0", "yes", "no"):
            raise MappingError(column, f"'{text[:40]}' is not true or false")
        return text

    def _properties(self, values: Mapping[str, Any],
                    wanted: Mapping[str, tuple[str, FieldType]]) -> dict[str, PropertyValue]:
        """The declared properties found in the row, each checked against its type."""
        out: dict[str, PropertyValue] = {}
        for name, (column, kind) in wanted.items():
            text = self.property_value(values.get(column), column, kind)
            if text is not None:
                out[name] = text
        return out


_Model = TypeVar("_Model", Contact, Deal)
#: The fields every record is built with, one set shared by all of them: pydantic changes a model's set only on
#: assignment, which the frozen models refuse, and ``model_copy`` changes a copy of it.
_ALL_FIELDS = {Contact: set(Contact.model_fields), Deal: set(Deal.model_fields)}


def _trusted(model: type[_Model], values: dict[str, Any]) -> _Model:
    """A record from values already checked (ids present, times aware UTC, properties typed), every field given.

    What ``model_construct`` does for a model without aliases, defaults left to fill or post-init hooks, minus
    its loop over the fields and its new set of field names per record: at 4 million records that loop is half
    of the reading time and the sets 3 GB (bench/files_scale.py).
    """
    record = model.__new__(model)
    object.__setattr__(record, "__dict__", values)
    object.__setattr__(record, "__pydantic_fields_set__", _ALL_FIELDS[model])
    object.__setattr__(record, "__pydantic_extra__", None)
    object.__setattr__(record, "__pydantic_private__", None)
    return record


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def bad(error: Exception) -> tuple[str | None, str]:
    """The column and reason of a failed mapping (a validation error of the record models has no column)."""
    if isinstance(error, MappingError):
        return error.column, error.reason
    return None, f"unreadable record ({error.__class__.__name__})"
