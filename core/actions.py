"""Next best action per contact: the stage's own action unless an :class:`~core.config.ActionRule` applies.

Rules are tried in configuration order and the first that matches wins; a rule with ``stages`` applies only
to contacts in those stages. Actions are plain strings written to the CRM so workflows can trigger on them;
:data:`KNOWN_ACTIONS` lists the vocabulary the default model and the examples use (others are allowed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.columns import IntArray, ObjArray
from core.config import ActionRule, StageConfig
from core.criteria import FieldTable, compile_criteria

KNOWN_ACTIONS: tuple[str, ...] = (
    "none", "nurture", "hand_to_sales", "onboard", "cross_sell", "upsell", "renewal_offer",
    "warranty_extension_offer", "retention_call", "win_back",
)


def next_best_actions(stages: Sequence[StageConfig], rules: Sequence[ActionRule], stage_index: IntArray,
                      table: FieldTable) -> ObjArray:
    """The action for every contact, given its stage (index into ``stages``)."""
    actions = sorted({s.action for s in stages} | {r.action for r in rules})
    code = {action: i for i, action in enumerate(actions)}
    chosen = np.array([code[s.action] for s in stages], dtype=np.int64)[stage_index]
    open_ = np.ones(table.n, dtype=bool)
    stage_number = {s.name: i for i, s in enumerate(stages)}
    for rule in rules:
        mask = open_ & compile_criteria(rule)(table)
        if rule.stages:
            mask &= np.isin(stage_index, [stage_number[name] for name in rule.stages if name in stage_number])
        chosen[mask] = code[rule.action]
        open_ &= ~mask
    return np.asarray(np.array(actions, dtype=object)[chosen], dtype=object)
