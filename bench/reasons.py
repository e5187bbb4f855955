"""Benchmark: what ``score_reasons`` and ``predictive_reasons`` add to ``core.engine.enrich`` on 1,000,000 contacts.

Run ``python bench/reasons.py`` (options: ``--contacts N``, ``--seed S``, ``--repeat R``). The data is generated
once; then ``enrich`` runs alternately without and with the two fields listed in ``sync.write_fields`` (the
configuration of ``bench/engine.py``: example scoring rules, predictive score on twelve features), best of
``--repeat`` runs each, side by side in one process. Printed: the scoring and predictive steps and the whole
``enrich`` in both cases, the extra seconds and the ratio to the anchor (the run without reasons). Goal: under
1 s extra for both fields together.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GOAL_EXTRA_SECONDS = 1.0


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from engine import FEATURES

    from connectors.sandbox.generator import DEAL_PROPERTY_TYPES, PROPERTY_TYPES, generate
    from core.config import ClmConfig, DataConfig, PredictiveConfig, ScoringConfig, SyncConfig
    from core.defaults import example_action_rules, example_scoring_rules
    from core.engine import enrich

    data = generate(args.contacts, seed=args.seed)
    contacts, deals = data.contacts, data.deals

    def config(reasons: bool) -> ClmConfig:
        return ClmConfig(
            data=DataConfig(contact_properties=dict(PROPERTY_TYPES), deal_properties=dict(DEAL_PROPERTY_TYPES)),
            scoring=ScoringConfig(rules=example_scoring_rules()),
            predictive=PredictiveConfig(enabled=True, features=FEATURES),
            actions=example_action_rules(),
            sync=SyncConfig(write_fields=["lead_score", "score_reasons", "conversion_probability",
                                          "predictive_reasons"] if reasons else None),
        )

    best: dict[bool, dict[str, float]] = {}
    sample: Any = None
    for _ in range(args.repeat):
        for reasons in (False, True):
            started = time.perf_counter()
            result = enrich(contacts, deals, config(reasons), data.as_of)
            seconds = dict(result.diagnostics.seconds)
            seconds["total"] = time.perf_counter() - started
            kept = best.setdefault(reasons, seconds)
            if seconds["total"] <= kept["total"]:
                best[reasons] = seconds
            if reasons:
                sample = result
    off, on = best[False], best[True]
    print(f"enrich on {args.contacts:,} contacts, best of {args.repeat}, without vs with score_reasons and "
          "predictive_reasons")
    for step in ("scoring", "predictive", "total"):
        print(f"  {step:<11} {off[step]:7.3f} s  {on[step]:7.3f} s  extra {on[step] - off[step]:+.3f} s  "
              f"ratio {on[step] / off[step]:.2f}")
    extra = on["total"] - off["total"]
    print(f"extra for both fields: {extra:.3f} s (goal < {GOAL_EXTRA_SECONDS:g} s, ratio to goal "
          f"{extra / GOAL_EXTRA_SECONDS:.2f})")
    if sample is not None:
        reasons = sample.columns["score_reasons"]
        why = sample.columns["predictive_reasons"]
        print(f"distinct score_reasons texts: {len(set(reasons.tolist())):,}; distinct predictive_reasons: "
              f"{len(set(why.tolist())):,}")
        print(f"example: {next(t for t in reasons.tolist() if t and ';' in t)!r}")
        print(f"example: {next(t for t in why.tolist() if t)!r}")


if __name__ == "__main__":
    main()
