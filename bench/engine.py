"""Benchmark: ``core.engine.enrich`` on 1,000,000 generated contacts and their ~3,000,000 deals.

Run ``python bench/engine.py`` (options: ``--contacts N``, ``--seed S``, ``--no-predictive``). The run itself
happens in a child process, so its memory is measured alone: the child generates the data, then resets its
peak-RSS counter (Linux ``/proc/self/clear_refs``), times ``enrich``, and reports the peak resident memory
during ``enrich``: the whole process, input data included. Goals: under 15 s and under 2 GB.

The configuration is a realistic full one: the generator's properties, the example scoring and action rules,
the default stage model, MEDDIC, BG/NBD + Gamma-Gamma CLV and the predictive score (logistic regression on
twelve features). Other work on the machine shares the CPU, so the time varies a little between runs.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 15.0
GOAL_BYTES = 2 * 1024**3
FEATURES = ["jobtitle", "numemployees", "industry", "country", "hs_analytics_source", "hs_email_open",
            "hs_email_click", "hs_analytics_num_page_views", "num_conversion_events", "open_deals", "lost_deals",
            "days_since_created"]


def _status_kib(key: str) -> int | None:
    """A ``VmRSS``/``VmHWM``-style line of /proc/self/status, in KiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def child(contacts: int, seed: int, predictive: bool) -> dict[str, Any]:
    """Generate, then measure one ``enrich`` call; returns the figures as a dict."""
    sys.path.insert(0, str(ROOT))
    from connectors.sandbox.generator import DEAL_PROPERTY_TYPES, PROPERTY_TYPES, generate
    from core.config import ClmConfig, DataConfig, PredictiveConfig, ScoringConfig
    from core.defaults import example_action_rules, example_scoring_rules
    from core.engine import enrich

    started = time.perf_counter()
    data = generate(contacts, seed=seed)
    generated = time.perf_counter() - started
    config = ClmConfig(
        data=DataConfig(contact_properties=dict(PROPERTY_TYPES), deal_properties=dict(DEAL_PROPERTY_TYPES)),
        scoring=ScoringConfig(rules=example_scoring_rules()),
        predictive=PredictiveConfig(enabled=predictive, features=FEATURES),
        actions=example_action_rules(),
    )
    gc.collect()
    baseline = _status_kib("VmRSS")
    reset = True
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (peak RSS) to the current RSS
    except OSError:
        reset = False
    started = time.perf_counter()
    result = enrich(data.contacts, data.deals, config, data.as_of)
    seconds = time.perf_counter() - started
    peak = _status_kib("VmHWM") if reset else None
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        reset = False
    return {
        "contacts": len(data.contacts),
        "deals": len(data.deals),
        "generate_seconds": round(generated, 2),
        "seconds": round(seconds, 3),
        "steps": result.diagnostics.seconds,
        "input_rss_bytes": (baseline or 0) * 1024,
        "peak_rss_bytes": peak * 1024,
        "peak_is_enrich_only": reset,
        "predictive": {k: result.diagnostics.predictive.get(k) for k in ("status", "auc", "lift_top_decile",
                                                                         "examples", "reason")},
        "clv": {k: result.diagnostics.clv.get(k) for k in ("purchase_model", "spend_model", "customers")},
        "cpu_count": os.cpu_count(),
    }


def main() -> None:
    """Run the child and print the figures against the goals."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-predictive", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.contacts, args.seed, not args.no_predictive)))
        return
    command = [sys.executable, __file__, "--child", "--contacts", str(args.contacts), "--seed", str(args.seed)]
    if args.no_predictive:
        command.append("--no-predictive")
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    gib = 1024**3
    peak = figures["peak_rss_bytes"]
    print(f"engine: enrich on {figures['contacts']:,} contacts and {figures['deals']:,} deals "
          f"({figures['cpu_count']} CPUs; data generated in {figures['generate_seconds']} s)")
    print(f"  time        {figures['seconds']:8.2f} s    goal {GOAL_SECONDS:.0f} s    "
          f"ratio {figures['seconds'] / GOAL_SECONDS:.2f} of the goal")
    scope = "during enrich" if figures["peak_is_enrich_only"] else "whole process, generation included"
    print(f"  peak RSS    {peak / gib:8.2f} GiB  goal {GOAL_BYTES / gib:.0f} GiB  ratio {peak / GOAL_BYTES:.2f} "
          f"of the goal ({scope}; input data alone {figures['input_rss_bytes'] / gib:.2f} GiB)")
    steps = ", ".join(f"{k} {v:.2f}" for k, v in figures["steps"].items() if k != "total")
    print(f"  steps (s)   {steps}")
    print(f"  predictive  {figures['predictive']}")
    print(f"  clv         {figures['clv']}")


if __name__ == "__main__":
    main()
