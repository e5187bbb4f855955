"""Small hand-made columns for the engine's unit tests (the generator covers realistic data)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from core.columns import ContactColumns, DealColumns, StatusCode
from core.criteria import FieldTable

DAY = 86_400.0
AS_OF = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


def days_ago(days: float) -> float:
    """Epoch seconds ``days`` before :data:`AS_OF`."""
    return AS_OF - days * DAY


def table(as_of: float = AS_OF, **columns: Sequence[Any]) -> FieldTable:
    """A field table from keyword columns: lists of str/None become text, anything else float."""
    n = len(next(iter(columns.values()))) if columns else 0
    out = FieldTable(n, as_of)
    for name, values in columns.items():
        out.set(name, column(values))
    return out


def column(values: Sequence[Any]) -> np.ndarray:
    """Text (object) when any value is a str, else float64 with None as NaN."""
    if any(isinstance(v, str) for v in values):
        return np.array(list(values), dtype=object)
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def contacts(created_days_ago: Sequence[float], **properties: Sequence[Any]) -> ContactColumns:
    """Contacts ``c0, c1, ...`` created the given days before :data:`AS_OF`."""
    n = len(created_days_ago)
    return ContactColumns(
        ids=np.array([f"c{i}" for i in range(n)], dtype=object),
        created_at=np.array([days_ago(d) for d in created_days_ago]),
        properties={name: column(values) for name, values in properties.items()},
    )


def deals(rows: Sequence[tuple[int, str, float | None, float | None, float | None]],
          **properties: Sequence[Any]) -> DealColumns:
    """Deals from ``(contact row, status, amount, created days ago, closed days ago)``; None = unknown."""
    status = {"open": StatusCode.OPEN, "won": StatusCode.WON, "lost": StatusCode.LOST}
    return DealColumns(
        ids=np.array([f"d{i}" for i in range(len(rows))], dtype=object),
        contact_index=np.array([r[0] for r in rows], dtype=np.int64),
        amount=np.array([np.nan if r[2] is None else r[2] for r in rows], dtype=np.float64),
        status=np.array([status[r[1]] for r in rows], dtype=np.int8),
        created_at=np.array([np.nan if r[3] is None else days_ago(r[3]) for r in rows], dtype=np.float64),
        closed_at=np.array([np.nan if r[4] is None else days_ago(r[4]) for r in rows], dtype=np.float64),
        properties={name: column(values) for name, values in properties.items()},
    )
