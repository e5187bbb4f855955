"""The CDNOW sample (Fader, Hardie & Lee 2005) as CRM contacts and won deals, to seed sandboxes with real data.

The file (``CDNOW_sample.txt``, whitespace-separated, no header) has one row per transaction: master customer
id, sample customer id, date ``YYYYMMDD``, number of CDs, dollar value. Each sample customer becomes a contact
``cdnow-<sample id>`` created on its first purchase day; each row becomes its own won deal, closed on that
day at midnight UTC. Same-day purchases stay separate deals: the CLV summary merges them per period, as the
paper does, and doing it here would hide that step from the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import numpy as np

from core.columns import ContactColumns, DealColumns, ObjArray, StatusCode
from core.errors import UsageError
from core.models import Contact, Deal, DealStatus, FieldType

CDNOW_FILE: Final = "CDNOW_sample.txt"

CDNOW_DEAL_PROPERTY_TYPES: Final[dict[str, FieldType]] = {"quantity": FieldType.NUMBER}
"""Deal properties the loader sets: ``quantity`` is the number of CDs bought."""


@dataclass(frozen=True)
class _Row:
    sample_id: int
    day: datetime
    quantity: int
    dollars: float


def default_cdnow_path() -> Path | None:
    """``<repo>/../shared/data/CDNOW_sample.txt`` when it exists (the project's shared test data), else None."""
    repo = Path(__file__).resolve().parents[2]
    candidate = repo.parent / "shared" / "data" / CDNOW_FILE
    return candidate if candidate.is_file() else None


def load_cdnow(path: Path) -> tuple[list[Contact], list[Deal]]:
    """Contacts (one per sample customer) and won deals (one per transaction row), in file order.

    Raises :class:`core.errors.UsageError` when the file is missing or a line cannot be read.
    """
    rows = _read(path)
    first_day: dict[int, datetime] = {}
    for row in rows:
        first_day[row.sample_id] = min(first_day.get(row.sample_id, row.day), row.day)
    contacts = [
        Contact(id=_contact_id(sid), email=f"cdnow-{sid}@example.com", created_at=day)
        for sid, day in sorted(first_day.items())
    ]
    deals = [
        Deal(
            id=deal_id,
            amount=row.dollars,
            currency="USD",
            pipeline="default",
            stage="closedwon",
            status=DealStatus.WON,
            created_at=row.day,
            closed_at=row.day,
            contact_ids=(_contact_id(row.sample_id),),
            properties={"quantity": row.quantity},
        )
        for deal_id, row in zip(_deal_ids(rows), rows, strict=True)
    ]
    return contacts, deals


def load_cdnow_columns(path: Path) -> tuple[ContactColumns, DealColumns]:
    """The same data as :func:`load_cdnow`, directly as engine columns (deal property ``quantity``).

    Equal to ``core.columns.from_records(*load_cdnow(path), {}, CDNOW_DEAL_PROPERTY_TYPES)``.
    """
    rows = _read(path)
    sample = np.array([r.sample_id for r in rows], dtype=np.int64)
    day = np.array([r.day.timestamp() for r in rows], dtype=np.float64)
    customers, row_contact = np.unique(sample, return_inverse=True)
    first = np.full(len(customers), np.inf)
    np.minimum.at(first, row_contact, day)
    contacts = ContactColumns(
        ids=_objects([_contact_id(int(s)) for s in customers]),
        created_at=first,
    )
    deals = DealColumns(
        ids=_objects(_deal_ids(rows)),
        contact_index=row_contact.astype(np.int64),
        amount=np.array([r.dollars for r in rows], dtype=np.float64),
        status=np.full(len(rows), StatusCode.WON, dtype=np.int8),
        created_at=day,
        closed_at=day.copy(),
        properties={"quantity": np.array([r.quantity for r in rows], dtype=np.float64)},
    )
    return contacts, deals


def _read(path: Path) -> list[_Row]:
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError as exc:
        raise UsageError(
            f"CDNOW data file not found: {path}",
            hint=f"pass the path of {CDNOW_FILE} (see shared/data/README.md for where it comes from)",
        ) from exc
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) != 5:
                raise ValueError(f"expected 5 fields, found {len(fields)}")
            _, sample_id, date, quantity, dollars = fields
            day = datetime.strptime(date, "%Y%m%d").replace(tzinfo=UTC)
            rows.append(_Row(int(sample_id), day, int(quantity), float(dollars)))
        except ValueError as exc:
            raise UsageError(
                f"{path}, line {number}: cannot read {line.strip()!r} ({exc})",
                hint="expected: master id, sample id, date YYYYMMDD, number of CDs, dollar value",
            ) from exc
    return rows


def _contact_id(sample_id: int) -> str:
    return f"cdnow-{sample_id}"


def _deal_ids(rows: list[_Row]) -> list[str]:
    """``cdnow-<sample id>-<n>``, n counting that customer's transactions from 1 in file order."""
    seen: dict[int, int] = {}
    ids = []
    for row in rows:
        seen[row.sample_id] = seen.get(row.sample_id, 0) + 1
        ids.append(f"cdnow-{row.sample_id}-{seen[row.sample_id]}")
    return ids


def _objects(values: list[str]) -> ObjArray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
