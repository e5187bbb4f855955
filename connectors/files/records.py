"""Export rows as our typed records through the ``[files]`` column mapping; a row that cannot be used becomes a
:class:`BadRow` naming its file, line and column, and the rest proceeds."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.base import parse_time
from core.config import FilesConfig
from core.models import Contact, Deal, DealStatus, FieldType


@dataclass(frozen=True)
class BadRow:
    """A row left out of the pull, and why."""

    file: Path
    line: int
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file.name}, line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.reason}; the row is skipped"


class MappingError(Exception):
    """A row that cannot be used: which column (None: the row as a whole) and why."""

    def __init__(self, column: str | None, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


class RecordMapper:
    """Turns rows into contacts and deals; one instance per pull (it knows the ids seen so far)."""

    def __init__(self, config: FilesConfig, contact_properties: Mapping[str, FieldType],
                 deal_properties: Mapping[str, FieldType]) -> None:
        self.config = config
        self.contact_properties = {name: (config.contact_properties.get(name, name), kind)
                                   for name, kind in contact_properties.items()}
        self.deal_properties = {name: (config.deal_properties.get(name, name), kind)
                                for name, kind in deal_properties.items()}
        self.won = {v.strip().casefold() for v in config.won_values}
        self.lost = {v.strip().casefold() for v in config.lost_values}

    def contact(self, values: Mapping[str, Any]) -> Contact:
        """One contact, or :class:`MappingError` naming the column."""
        cols = self.config.contact_columns
        email = _text(values.get(cols.email)) if cols.email else None
        # Every value is checked above (id present, times aware UTC, properties typed): constructing without
        # pydantic's validation again is a third of the cost of reading a row.
        return Contact.model_construct(id=self._id(values, cols.id), email=email,
                                       created_at=self._time(values, cols.created, required=True) or datetime.now(UTC),
                                       updated_at=None, properties=self._properties(values, self.contact_properties),
                                       archived=False)

    def deal(self, values: Mapping[str, Any]) -> Deal:
        """One deal, or :class:`MappingError` naming the column."""
        cols = self.config.deal_columns
        deal_id = self._id(values, cols.id)
        closed = self._time(values, cols.closed) if cols.closed else None
        created = self._time(values, cols.created) if cols.created else None
        opened = created or closed
        if opened is None:
            raise MappingError(cols.created or cols.closed, "no creation or close date")
        status = self._status(values, cols.status)
        if status is DealStatus.WON and closed is None:
            raise MappingError(cols.closed, "a won deal needs a close date (it is the purchase date)")
        raw = values.get(cols.contact_ids)
        # JSON Lines may carry a list of ids; a CSV cell lists them with the separator.
        parts = [str(i) for i in raw] if isinstance(raw, list) else (_text(raw) or "").split(cols.contact_separator)
        contact_ids = tuple(dict.fromkeys(i.strip() for i in parts if i.strip()))
        return Deal.model_construct(id=deal_id, amount=self._amount(values, cols.amount) if cols.amount else None,
                                    currency=(_text(values.get(cols.currency)) or None) if cols.currency else None,
                                    pipeline=None, stage=None, status=status, created_at=opened,
                                    closed_at=closed, updated_at=None, contact_ids=contact_ids,
                                    properties=self._properties(values, self.deal_properties), archived=False)

    def _id(self, values: Mapping[str, Any], column: str) -> str:
        text = _text(values.get(column))
        if not text:
            raise MappingError(column, "no id")
        if any(c in text for c in "\t\r\n"):
            raise MappingError(column, "the id holds a tab or line break")
        return text

    def _time(self, values: Mapping[str, Any], column: str, required: bool = False) -> datetime | None:
        text = _text(values.get(column))
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

    def _amount(self, values: Mapping[str, Any], column: str) -> float | None:
        raw = values.get(column)
        if raw is None or _text(raw) == "":
            return None
        try:
            number = float(raw if not isinstance(raw, str) else raw.strip())
        except (TypeError, ValueError):
            raise MappingError(column, f"'{str(raw)[:40]}' is not a number") from None
        if not math.isfinite(number):
            raise MappingError(column, f"'{raw}' is not a finite number")
        return number

    def _status(self, values: Mapping[str, Any], column: str) -> DealStatus:
        text = (_text(values.get(column)) or "").casefold()
        if text in self.won:
            return DealStatus.WON
        return DealStatus.LOST if text in self.lost else DealStatus.OPEN

    def _properties(self, values: Mapping[str, Any], wanted: Mapping[str, tuple[str, FieldType]]) -> dict[str, Any]:
        """The declared properties found in the row, each checked against its type (the text is kept: the engine
        reads properties as CRMs send them)."""
        out: dict[str, Any] = {}
        for name, (column, kind) in wanted.items():
            text = _text(values.get(column))
            if not text:
                continue
            if kind is FieldType.NUMBER:
                try:
                    if not math.isfinite(float(text)):
                        raise ValueError
                except ValueError:
                    raise MappingError(column, f"'{text[:40]}' is not a number") from None
            elif kind is FieldType.DATETIME:
                self._time(values, column)
            elif kind is FieldType.BOOL and text.casefold() not in ("true", "false", "1", "0", "yes", "no"):
                raise MappingError(column, f"'{text[:40]}' is not true or false")
            out[name] = text
        return out


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


