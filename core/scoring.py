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

Explanations (:func:`explain`), as HubSpot's score shows why a contact has it: ``score_reasons`` lists the rules
that gave or took the most points, largest ``|points|`` first (ties in configuration order), each as its points
after cap and decay rounded to a whole number and the rule's ``name``:
``"+25 Senior decision maker; -20 Unsubscribed within 7 days"``. Rules whose points round to 0 are left out; a
contact no rule gave points has none (None).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from core.columns import FloatArray, IntArray, ObjArray
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
    reasons: ObjArray | None = None
    """``score_reasons`` per contact (None: no rule gave points), when asked for (:func:`score`)."""

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


def score(config: ScoringConfig, table: FieldTable, *, reasons: bool = False) -> LeadScores:
    """Score every contact of ``table`` with the configured rules (see the module docstring); ``reasons`` also
    explains each score (:attr:`LeadScores.reasons`, see :func:`explain`)."""
    fit = np.zeros(table.n)
    engagement = np.zeros(table.n)
    max_fit = 0.0
    max_engagement = 0.0
    # One row per rule, kept only for the explanations (rules x contacts floats).
    per_rule = np.zeros((len(config.rules), table.n)) if reasons else None
    for index, rule in enumerate(config.rules):
        points = rule_points(rule, table)
        if per_rule is not None:
            per_rule[index] = points
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
        reasons=None if per_rule is None else explain(per_rule, [r.name for r in config.rules],
                                                      config.reasons_top, config.reasons_max_length),
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


def explain(points: FloatArray, labels: Sequence[str], top: int, max_length: int, *, odds: bool = False) -> ObjArray:
    """Per contact, the ``top`` entries of ``points`` (one row per labelled item, one column per contact) with
    the largest magnitude, as ``"+25 Label; -20 Other"`` within ``max_length`` characters.

    Values are shown as whole numbers (as HubSpot shows points) and those that round to 0 are left out; with
    ``odds`` the values are log-odds shown as odds multipliers to two significant digits (``"x2.3 Label; x0.45
    Other"``) and factors between x0.95 and x1.05 are left out. A contact with nothing to show gets None. Too long
    a text drops its smallest entries; a single entry too long is cut with "…". Ties keep the items' order
    (magnitudes are compared in single precision, so values within one part in ten million count as tied).

    Text is formatted once per distinct combination of items and shown values, not per contact (contacts of one
    combination share one string): the rest is a few array passes per item and slot.
    """
    n_items, n = points.shape
    if n_items == 0 or n == 0:
        return np.full(n, None, dtype=object)
    # Item-major (item * n + contact) magnitudes; those the text would show as nothing (0 points, x1) are -1, so
    # rounding happens only for the values picked.
    # Single precision halves the memory the selection below reads, its slowest part.
    magnitude = np.abs(points, dtype=np.float32).reshape(-1)
    magnitude[magnitude < (_ODDS_SILENT if odds else _POINTS_SILENT)] = -1.0
    values_flat = points.reshape(-1)
    columns = np.arange(n)
    combination = np.zeros(n, dtype=np.int64)  # code of the slots so far
    count = 1  # codes in use by ``combination``
    slots: list[tuple[IntArray, int, list[str | None]]] = []
    for _ in range(min(top, n_items)):
        # The largest magnitude left per contact; argmax takes the first of equal ones.
        flat = np.argmax(magnitude.reshape(n_items, n), axis=0) * n + columns
        kept = magnitude[flat] >= 0.0
        if not kept.any():
            break
        magnitude[flat] = -2.0
        value = _rounded(values_flat[flat], odds)
        # A value at the silent bound itself (0.5 points, a factor of exactly 1.05) may still show as nothing.
        kept &= value != (1.0 if odds else 0.0)
        item = flat // n
        value_code = _value_codes(value, odds)
        low = int(value_code.min())
        slot_code, slot_count = _factorize(np.where(kept, item * (int(value_code.max()) - low + 1)
                                                    + (value_code - low), -1))
        # Each code's text, from any contact holding it; the "nothing" code (no item kept) has none.
        holder = np.empty(slot_count, dtype=np.int64)
        holder[slot_code] = columns
        parts: list[str | None] = [f"{_shown(value[c], odds)} {labels[item[c]]}" if kept[c] else None
                                   for c in holder.tolist()]
        slots.append((slot_code, slot_count, parts))
        if count * slot_count >= 2**62:
            combination, count = _factorize(combination)
        combination = combination * slot_count + slot_code
        count *= slot_count
    if not slots:
        return np.full(n, None, dtype=object)
    combination, count = _factorize(combination)
    sample = np.empty(count, dtype=np.int64)
    sample[combination] = columns  # any contact of each combination stands for all of them
    texts = _texts([(code[sample].tolist(), parts) for code, _, parts in slots], count, max_length)
    return np.asarray(texts[combination], dtype=object)


#: Points below this magnitude show as 0 and are left out (0.5 itself, which numpy rounds to 0, too: see explain).
_POINTS_SILENT = 0.5
#: Log-odds below this magnitude are factors between x0.95 and x1.05, which say nothing: left out.
_ODDS_SILENT = float(np.log(1.05))


def _rounded(points: FloatArray, odds: bool) -> FloatArray:
    """The values as the text shows them: whole numbers, or odds multipliers to two significant digits."""
    if not odds:
        return np.asarray(np.round(points), dtype=np.float64)
    with np.errstate(over="ignore"):
        factor = np.exp(points)
    with np.errstate(divide="ignore", invalid="ignore"):
        step = 10.0 ** (np.floor(np.log10(np.where(factor > 0, factor, 1.0))) - 1)
    return np.asarray(np.round(factor / step) * step, dtype=np.float64)


def _value_codes(value: FloatArray, odds: bool) -> IntArray:
    """An integer per distinct shown value, without sorting: the whole number itself, or for an odds multiplier
    (two significant digits) its decimal exponent and mantissa."""
    if odds:
        with np.errstate(divide="ignore", invalid="ignore"):
            exponent = np.clip(np.floor(np.log10(np.where(value > 0, value, 1.0))), -400, 400)
            mantissa = np.rint(value / 10.0 ** (exponent - 1))
        return np.asarray(np.where(value > 0, exponent * 100 + mantissa, -99_999), dtype=np.int64)
    if not np.abs(value).max() < 1e12:  # too large to code directly (or not finite): sort
        return np.asarray(np.unique(value, return_inverse=True)[1].reshape(-1), dtype=np.int64)
    return np.asarray(value, dtype=np.int64)


def _factorize(key: IntArray) -> tuple[IntArray, int]:
    """Codes ``0..m-1`` for the distinct values of ``key``, and ``m``: by a lookup table when the values span
    little more than their count (no sort), else by sorting."""
    low, high = int(key.min()), int(key.max())
    if high - low <= 4 * len(key) + 1024:
        seen = np.zeros(high - low + 1, dtype=bool)
        seen[key - low] = True
        rank = np.cumsum(seen) - 1
        return np.asarray(rank[key - low], dtype=np.int64), int(rank[-1]) + 1
    distinct, codes = np.unique(key, return_inverse=True)
    return np.asarray(codes.reshape(-1), dtype=np.int64), len(distinct)


def _texts(slots: Sequence[tuple[list[int], list[str | None]]], count: int, max_length: int) -> ObjArray:
    """The text of each of ``count`` combinations from its code in each slot and the slots' part texts (None
    for a slot with nothing to show)."""
    columns = [[parts[c] for c in codes] for codes, parts in slots]
    joined = columns[0]
    for more in columns[1:]:
        joined = [b if a is None else a if b is None else f"{a}; {b}" for a, b in zip(joined, more, strict=True)]
    for row, text in enumerate(joined):
        if text is not None and len(text) > max_length:
            # Rare: drop the smallest parts, or cut a single part too long on its own.
            parts = [p for p in (column[row] for column in columns) if p is not None]
            text = parts[0] if len(parts[0]) <= max_length else parts[0][:max_length - 1] + "…"
            for part in parts[1:]:
                if len(text) + 2 + len(part) > max_length:
                    break
                text = f"{text}; {part}"
            joined[row] = text
    out = np.empty(count, dtype=object)
    out[:] = joined
    return out


def _shown(value: float, odds: bool) -> str:
    """``+25``, ``-20``; odds as ``x2.3``, ``x0.45``, ``x140``."""
    if odds:
        return f"x{value:.2g}" if value < 100 else f"x{value:,.0f}" if value < 1e6 else "x>1e6"
    return f"{value:+,.0f}"
