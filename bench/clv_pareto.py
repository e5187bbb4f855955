"""Pareto/NBD benchmark: our core.clv against lifetimes' ParetoNBDFitter, side by side in one run.

    python bench/clv_pareto.py [--sizes 100000]

"Fit + score" is, for both: fit Pareto/NBD and Gamma-Gamma, then per customer P(alive), expected purchases
over 52 weeks and a discounted 12-month CLV; ours also once more with the per-customer CLV intervals (200
parameter draws). Cases: the CDNOW summary and simulated bases drawn from Pareto/NBD with the CDNOW
estimates. Each measurement runs in its own subprocess with one BLAS thread (see bench/clv.py); the lifetimes
half needs .venv-bench (bash bench/setup_bench_env.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BENCH_PYTHON = REPO / ".venv-bench" / "bin" / "python"
DATA = REPO / ".." / "shared" / "data"
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
HORIZON_WEEKS = 52.0
ANNUAL_DISCOUNT = 0.10
CDNOW_PARETO = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
CDNOW_SPEND = {"p": 6.25, "q": 3.74, "gamma": 15.44}


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _ours(path: Path, intervals: bool) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from core.clv import TransactionSummary, fit_and_score

    d = np.load(path)
    summary = TransactionSummary.from_arrays(d["x"], d["t_x"], d["T"], d["zbar"], unit="weeks")
    start = time.perf_counter()
    result = fit_and_score(summary, HORIZON_WEEKS, ANNUAL_DISCOUNT, purchase_model="pareto_nbd",
                           interval_draws=200 if intervals else 0)
    seconds = time.perf_counter() - start
    assert result.purchase_fit is not None and result.gamma_gamma is not None
    return {"seconds": seconds, "peak_rss_mb": _peak_rss_mb(), "params": result.purchase_fit.parameters,
            "log_likelihood": result.purchase_fit.log_likelihood,
            "total_expected_purchases": float(result.expected_purchases.sum()), "total_clv": float(result.clv.sum())}


def _lifetimes(path: Path) -> dict[str, Any]:
    import warnings

    warnings.simplefilter("ignore")
    import pandas as pd
    from lifetimes import GammaGammaFitter, ParetoNBDFitter

    d = np.load(path)
    x, t_x, T, zbar = (pd.Series(d[k]) for k in ("x", "t_x", "T", "zbar"))
    start = time.perf_counter()
    model = ParetoNBDFitter().fit(x, t_x, T)
    repeat = x > 0
    ggf = GammaGammaFitter().fit(x[repeat], zbar[repeat])
    model.conditional_probability_alive(x, t_x, T)
    expected = model.conditional_expected_number_of_purchases_up_to_time(HORIZON_WEEKS, x, t_x, T)
    monthly = (1.0 + ANNUAL_DISCOUNT) ** (1.0 / 12.0) - 1.0
    clv = ggf.customer_lifetime_value(model, x, t_x, T, zbar, time=12, discount_rate=monthly, freq="W")
    seconds = time.perf_counter() - start
    p = model.params_
    return {"seconds": seconds, "peak_rss_mb": _peak_rss_mb(),
            "params": {"r": p["r"], "alpha": p["alpha"], "s": p["s"], "beta": p["beta"]},
            "total_expected_purchases": float(np.sum(expected)), "total_clv": float(np.sum(clv))}


def _simulated(workdir: Path, n: int) -> Path:
    sys.path.insert(0, str(REPO))
    from core.clv import GammaGammaParams, ParetoNbdParams
    from core.clv.simulate import simulate_mean_spend, simulate_pareto_nbd

    rng = np.random.default_rng(19870101)
    T = rng.integers(0, 2 * 365, size=n) / 7.0
    x, t_x = simulate_pareto_nbd(ParetoNbdParams(**CDNOW_PARETO), T, rng)
    zbar = simulate_mean_spend(GammaGammaParams(**CDNOW_SPEND), x, rng)
    path = workdir / f"pareto-{n}.npz"
    np.savez(path, x=x, t_x=t_x, T=T, zbar=zbar)
    return path


def _cdnow(workdir: Path) -> Path:
    table = np.genfromtxt(DATA / "cdnow_customers_summary_with_transactions.csv", delimiter=",", names=True)
    path = workdir / "cdnow.npz"
    np.savez(path, x=table["x"], t_x=table["t_x"], T=table["T"], zbar=table["zbar"])
    return path


def _run(python: Path | str, task: str, data: Path) -> dict[str, Any]:
    done = subprocess.run([str(python), __file__, "--child", task, str(data)], capture_output=True, text=True,
                          env={**os.environ, **ONE_THREAD}, check=False, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"{task} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000], help="simulated base sizes")
    parser.add_argument("--child", nargs=2, metavar=("TASK", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        task, data = args.child
        out = _lifetimes(Path(data)) if task == "lifetimes" else _ours(Path(data), intervals=task == "intervals")
        print(json.dumps(out, default=float))
        return
    have_lifetimes = BENCH_PYTHON.exists()
    if not have_lifetimes:
        print(f"lifetimes half skipped: {BENCH_PYTHON} not found; create it with `bash bench/setup_bench_env.sh`")
    print("| case | library | fit + score (s) | peak RSS (MB) | r | alpha | s | beta | 52-week purchases | CLV |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="clv-pareto-") as tmp:
        cases = [("CDNOW (2,357)", _cdnow(Path(tmp)))] + [(f"simulated {n:,}", _simulated(Path(tmp), n))
                                                         for n in args.sizes]
        ratios = []
        for name, path in cases:
            rows = [("core.clv", _run(sys.executable, "ours", path)),
                    ("core.clv + intervals", _run(sys.executable, "intervals", path))]
            if have_lifetimes:
                rows.append(("lifetimes", _run(BENCH_PYTHON, "lifetimes", path)))
            for library, r in rows:
                p = r["params"]
                print(f"| {name} | {library} | {r['seconds']:.3f} | {r['peak_rss_mb']:.0f} | "
                      + " | ".join(f"{p[k]:.4f}" for k in ("r", "alpha", "s", "beta"))
                      + f" | {r['total_expected_purchases']:,.0f} | {r['total_clv']:,.0f} |", flush=True)
            if have_lifetimes:
                ratios.append((name, rows[0][1], rows[1][1], rows[2][1]))
    for name, ours, bounded, theirs in ratios:
        print(f"- {name}: core.clv {ours['seconds']:.3f} s ({bounded['seconds']:.3f} s with intervals) vs lifetimes "
              f"{theirs['seconds']:.3f} s: **{theirs['seconds'] / ours['seconds']:.0f}x faster** "
              f"({theirs['seconds'] / bounded['seconds']:.1f}x with intervals)")


if __name__ == "__main__":
    main()
