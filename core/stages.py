"""Lifecycle stage per contact from the configured stage model, with the time each contact entered it.

Precedence (every stage's criteria are evaluated on all contacts):

1. **progress** stages are ordered: the last matching one in configuration order wins (a customer who also
   has an open deal is a customer). A contact matching none gets the first progress stage.
2. **decline** stages override progress when they match; among them the last in order wins (churned over
   at_risk).
3. **reactivation** stages override everything when they match (the last matching one).

``stage_since`` keeps the previous run's time when the stage did not change and is ``as_of`` otherwise
(including a contact's first run). The assignment depends on each contact's own values only, never on row
order. The highest matching progress stage is kept too (``progress_index``): the funnel metrics use it, so a
churned customer still counts as having reached ``customer``.

HubSpot's native ``lifecyclestage`` can be derived through each stage's ``hubspot_lifecyclestage``; HubSpot
only moves it forward (setting an earlier value through the API is ignored unless the property is cleared
first), in the order of :data:`HUBSPOT_LIFECYCLE_ORDER`; :func:`forward_moves` says which writes respect that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from core.columns import FloatArray, IntArray, ObjArray
from core.config import StageConfig
from core.criteria import FieldTable, compile_criteria

BoolArray = npt.NDArray[np.bool_]

#: HubSpot's default lifecycle stages (internal values), earliest first; ``other`` is last.
HUBSPOT_LIFECYCLE_ORDER: tuple[str, ...] = (
    "subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer", "evangelist",
    "other",
)
_HUBSPOT_RANK = {name: rank for rank, name in enumerate(HUBSPOT_LIFECYCLE_ORDER)}


@dataclass(frozen=True)
class StageAssignment:
    """Each contact's stage (index into ``names``), its highest matching progress stage, and since when."""

    names: tuple[str, ...]
    index: IntArray
    progress_index: IntArray
    since: FloatArray
    changed: BoolArray

    @property
    def stage(self) -> ObjArray:
        """Stage names per contact (shared ``str`` objects)."""
        return np.asarray(np.array(self.names, dtype=object)[self.index], dtype=object)


def assign_stages(
    stages: Sequence[StageConfig],
    table: FieldTable,
    previous_stage: ObjArray | None = None,
    previous_since: FloatArray | None = None,
) -> StageAssignment:
    """Assign every contact of ``table`` a stage (see the module docstring for precedence).

    ``previous_stage``/``previous_since`` are aligned with the table's rows (None / NaN for contacts without
    a previous run).
    """
    if not stages:
        raise ValueError("the stage model is empty")
    names = tuple(s.name for s in stages)
    progress = [i for i, s in enumerate(stages) if s.kind == "progress"]
    first = progress[0] if progress else 0
    index = np.full(table.n, first, dtype=np.int64)
    masks = [compile_criteria(s)(table) for s in stages]
    for i in progress:
        index[masks[i]] = i
    progress_index = index.copy()
    for kind in ("decline", "reactivation"):
        for i, stage in enumerate(stages):
            if stage.kind == kind:
                index[masks[i]] = i
    since = np.full(table.n, table.as_of)
    changed = np.ones(table.n, dtype=bool)
    if previous_stage is not None and previous_since is not None:
        same = _same_stage(previous_stage, index, names) & ~np.isnan(previous_since)
        since[same] = previous_since[same]
        changed = ~same
    return StageAssignment(names=names, index=index, progress_index=progress_index, since=since, changed=changed)


def _same_stage(previous: ObjArray, index: IntArray, names: tuple[str, ...]) -> BoolArray:
    """Whether each contact's previous stage name is its new stage (a stage removed from the model is not)."""
    lookup = {name: i for i, name in enumerate(names)}
    previous_index = np.fromiter((lookup.get(p, -1) if isinstance(p, str) else -1 for p in previous.tolist()),
                                 dtype=np.int64, count=len(previous))
    return np.asarray(previous_index == index, dtype=bool)


def hubspot_lifecyclestages(stages: Sequence[StageConfig], index: IntArray) -> ObjArray:
    """The native HubSpot ``lifecyclestage`` each contact's stage maps to (None where a stage has none)."""
    pool = np.array([s.hubspot_lifecyclestage for s in stages], dtype=object)
    return np.asarray(pool[index], dtype=object)


def is_forward_move(current: str | None, proposed: str | None) -> bool:
    """Whether writing ``proposed`` over HubSpot's ``current`` lifecyclestage is a forward move.

    An empty current value accepts anything; an unknown (custom) stage on either side is not a forward move,
    since its place in the portal's order is not known; the same value is no move.
    """
    if proposed is None or proposed not in _HUBSPOT_RANK:
        return False
    if current is None or current == "":
        return True
    if current not in _HUBSPOT_RANK:
        return False
    return _HUBSPOT_RANK[proposed] > _HUBSPOT_RANK[current]


def forward_moves(current: ObjArray, proposed: ObjArray) -> BoolArray:
    """:func:`is_forward_move` for aligned arrays of current and proposed values."""
    ranks = {**_HUBSPOT_RANK, "": -1}

    def rank(values: ObjArray, missing: int) -> IntArray:
        return np.fromiter((missing if v is None else ranks.get(v, -2) for v in values.tolist()),
                           dtype=np.int64, count=len(values))

    now = rank(current, -1)
    new = rank(proposed, -2)
    return np.asarray((new >= 0) & (now >= -1) & (new > now), dtype=bool)
