"""MEDDIC completeness of open deals: Metrics, Economic buyer, Decision criteria, Decision process, Identified
pain, Champion, each read from a configurable deal property; a non-empty value means the item is known.

An item whose property is set to nothing in the configuration is not tracked (it is neither known nor
missing). A deal attributed to several contacts is scored once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from core.columns import DealColumns, IntArray, ObjArray, StatusCode
from core.config import MeddicConfig

BoolArray = npt.NDArray[np.bool_]

MEDDIC_ITEMS: tuple[str, ...] = (
    "metrics", "economic_buyer", "decision_criteria", "decision_process", "identify_pain", "champion",
)


@dataclass(frozen=True)
class MeddicTable:
    """One row per open deal: which tracked items are known, how many (``completeness``), and what is missing."""

    deal_ids: ObjArray
    contact_ids: ObjArray
    items: tuple[str, ...]
    known: BoolArray
    completeness: IntArray

    def __len__(self) -> int:
        return len(self.deal_ids)

    def missing(self, row: int) -> list[str]:
        """The tracked items not yet known for the deal in ``row``."""
        return [item for item, known in zip(self.items, self.known[row].tolist(), strict=True) if not known]

    def records(self) -> Iterator[dict[str, Any]]:
        """One dict per deal: ``deal_id``, ``contact_id``, ``completeness``, ``tracked``, ``missing``."""
        for row, (deal, contact, score) in enumerate(
            zip(self.deal_ids.tolist(), self.contact_ids.tolist(), self.completeness.tolist(), strict=True)
        ):
            yield {"deal_id": deal, "contact_id": contact, "completeness": score, "tracked": len(self.items),
                   "missing": self.missing(row)}

    def summary(self) -> dict[str, Any]:
        """Open deals, mean completeness, and how often each item is missing (JSON-ready)."""
        n = len(self)
        return {
            "open_deals": n,
            "tracked_items": list(self.items),
            "mean_completeness": round(float(self.completeness.mean()), 3) if n else None,
            "complete_share": round(float((self.completeness == len(self.items)).mean()), 4) if n else None,
            "missing_share": {item: round(float(1 - self.known[:, j].mean()), 4) if n else None
                              for j, item in enumerate(self.items)},
        }


def meddic_table(deals: DealColumns, contact_ids: ObjArray, config: MeddicConfig) -> MeddicTable:
    """Score every open deal of ``deals`` (``contact_ids`` maps ``contact_index`` to ids)."""
    rows = np.flatnonzero(deals.status == StatusCode.OPEN)
    # With attribution "all" a deal appears once per contact: keep its first row.
    _, first = np.unique(deals.ids[rows].astype(str), return_index=True)
    rows = rows[np.sort(first)]
    tracked = [(item, getattr(config, item)) for item in MEDDIC_ITEMS if getattr(config, item)]
    known = np.zeros((len(rows), len(tracked)), dtype=bool)
    for j, (_, prop) in enumerate(tracked):
        column = deals.properties.get(prop)
        if column is not None:
            known[:, j] = _known(column[rows])
    owner = deals.contact_index[rows]
    owners = np.full(len(rows), None, dtype=object)
    attributed = owner >= 0
    owners[attributed] = contact_ids[owner[attributed]]
    return MeddicTable(
        deal_ids=np.asarray(deals.ids[rows], dtype=object),
        contact_ids=np.asarray(owners, dtype=object),
        items=tuple(item for item, _ in tracked),
        known=known,
        completeness=known.sum(axis=1).astype(np.int64),
    )


def _known(values: npt.NDArray[Any]) -> BoolArray:
    if values.dtype != object:
        return np.asarray(~np.isnan(values), dtype=bool)
    return np.fromiter((v is not None and str(v).strip() != "" and v == v for v in values.tolist()), dtype=bool,
                       count=len(values))
