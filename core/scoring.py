"""Rule-based lead scoring: fit and engagement points, decay, caps, a 0-100 scale, grades and MQL/SQL flags.

Each rule gives its ``points`` to the contacts its criteria match, times the ``per`` field when given
(e.g. 3 points per e-mail click; an unknown count gives 0). The rule's points are then bounded to
``[-cap, cap]`` (see :func:`rule_bound`) and, for engagement rules with a half-life, multiplied by
``0.5 ** (age_days / half_life)`` where ``age_days`` is the time since the ``decay_field`` date (a future date
counts as age 0; an unknown date means no decay, since the count itself shows the engagement happened).
Negative points are first-class: they subtract (e.g. :func:`core.defaults.example_scoring_rules` gives
-20 to contacts who unsubscribed within 7 days of joining, via the computed ``days_to_unsubscribe``).

Normalisation (stable across runs, independent of the data, so a sync does not rewrite every score when
the population shifts): a dimension's score is

    100 * clip(sum of its rules' points, 0, max) / max,  max = sum of the positive rules' bounds

i.e. points relative to the most a contact could earn in that dimension; negative totals read as 0.
``lead_score`` applies the same to fit and engagement together. ``grade`` is A/B/C from the thresholds on
``lead_score`` (D below C); ``is_mql``/``is_sql`` are ``lead_score`` at or above the MQL/SQL thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from core.columns import FloatArray, ObjArray
from core.config import GradeThresholds, ScoringConfig, ScoringRule
from core.criteria import DAY, FieldTable, compile_criteria

BoolArray = npt.NDArray[np.bool_]

#: A ``per`` rule without ``cap`` counts at most this many occurrences, so the maximum is finite.
IMPLICIT_PER_LIMIT = 10.0

GRADES = ("A", "B", "C", "D")
_GRADE_POOL = np.array(GRADES, dtype=object)


@dataclass(frozen=True)
class LeadScores:
    """Scores per contact (0-100, rounded to 0.1), grade, MQL/SQL flags, and the raw point totals."""

    lead_score: FloatArray
    fit_score: FloatArray
    engagement_score: FloatArray
    grade: ObjArray
    is_mql: BoolArray
    is_sql: BoolArray
    fit_points: FloatArray
    engagement_points: FloatArray
    max_fit_points: float
    max_engagement_points: float

    def describe(self) -> dict[str, float]:
        """The normalisation constants, for diagnostics."""
        return {"max_fit_points": self.max_fit_points, "max_engagement_points": self.max_engagement_points}


def rule_bound(rule: ScoringRule) -> float:
    """The largest absolute number of points the rule can give: ``cap``, else ``|points|`` (times
    :data:`IMPLICIT_PER_LIMIT` for a ``per`` rule)."""
    if rule.cap is not None:
        return float(rule.cap)
    return abs(rule.points) * (IMPLICIT_PER_LIMIT if rule.per is not None else 1.0)


def rule_points(rule: ScoringRule, table: FieldTable) -> FloatArray:
    """The points ``rule`` gives each contact (0 where it does not match)."""
    mask = compile_criteria(rule)(table)
    points = np.where(mask, rule.points, 0.0)
    if rule.per is not None:
        points = points * np.nan_to_num(table.numbers(rule.per), nan=0.0)
    bound = rule_bound(rule)
    points = np.clip(points, -bound, bound)
    if rule.decay_half_life_days is not None and rule.decay_field is not None:
        age_days = np.maximum(table.as_of - table.numbers(rule.decay_field), 0.0) / DAY
        factor = np.exp2(-age_days / rule.decay_half_life_days)
        points = points * np.where(np.isnan(factor), 1.0, factor)
    return np.asarray(points, dtype=np.float64)


def score(config: ScoringConfig, table: FieldTable) -> LeadScores:
    """Score every contact of ``table`` with the configured rules (see the module docstring)."""
    fit = np.zeros(table.n)
    engagement = np.zeros(table.n)
    max_fit = 0.0
    max_engagement = 0.0
    for rule in config.rules:
        points = rule_points(rule, table)
        best = rule_bound(rule) if rule.points > 0 else 0.0
        if rule.kind == "fit":
            fit += points
            max_fit += best
        else:
            engagement += points
            max_engagement += best
    lead = normalise(fit + engagement, max_fit + max_engagement)
    return LeadScores(
        lead_score=lead,
        fit_score=normalise(fit, max_fit),
        engagement_score=normalise(engagement, max_engagement),
        grade=grades(lead, config.grades),
        is_mql=lead >= config.mql_threshold,
        is_sql=lead >= config.sql_threshold,
        fit_points=fit,
        engagement_points=engagement,
        max_fit_points=max_fit,
        max_engagement_points=max_engagement,
    )


def normalise(points: FloatArray, maximum: float) -> FloatArray:
    """Points as 0-100 relative to ``maximum`` (0 everywhere when nothing positive can be earned)."""
    if maximum <= 0:
        return np.zeros(len(points))
    # Clip before dividing: a huge total over a tiny maximum would overflow on the way to the same 100.
    return np.asarray(np.round(np.clip(points, 0.0, maximum) / maximum * 100.0, 1), dtype=np.float64)


def grades(lead_score: FloatArray, thresholds: GradeThresholds) -> ObjArray:
    """A at or above ``thresholds.A``, then B, C; D below C."""
    index = np.select([lead_score >= thresholds.A, lead_score >= thresholds.B, lead_score >= thresholds.C],
                      [0, 1, 2], default=3)
    return np.asarray(_GRADE_POOL[index], dtype=object)
