"""Pareto/NBD benchmark: our core.clv against lifetimes' ParetoNBDFitter and PyMC-Marketing's ParetoNBDModel
(MAP fit, its default priors), side by side in one run.

    python bench/clv_pareto.py [--sizes 100000 1000000] [--timeout 900]

"Fit + score" is, for ours and lifetimes: fit Pareto/NBD and Gamma-Gamma, then per customer P(alive), expected
purchases over 52 weeks and a discounted 12-month CLV; ours also once more with the per-customer intervals of all
three (200 parameter draws), each the fastest of --repeats runs (the libraries: one run). Cases: the CDNOW summary
and simulated bases drawn from Pareto/NBD with the CDNOW estimates, observed in whole days as a summary of real
purchases is (t_x and T are whole days in weeks). Each measurement runs in its own subprocess with one BLAS thread
(see bench/clv.py); the lifetimes half needs .venv-bench (bash bench/setup_bench_env.sh), the PyMC-Marketing half
.venv-pymc (bash bench/setup_pymc_env.sh, Python >= 3.12). PyMC-Marketing's outputs are P(alive) and 52-week
expected purchases (no Gamma-Gamma, no CLV).
A run that does not finish within --timeout seconds (15 minutes by default) is reported as "did not finish".
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
PYMC_PYTHON = REPO / ".venv-pymc" / "bin" / "python"
DATA = REPO / ".." / "shared" / "data"
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
HORIZON_WEEKS = 52.0
ANNUAL_DISCOUNT = 0.10
CDNOW_PARETO = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
CDNOW_SPEND = {"p": 6.25, "q": 3.74, "gamma": 15.44}


def _peak_rss_mb() -> float:
    # VmHWM is this process's own peak (ru_maxrss would count the parent's memory at fork time).
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (this benchmark needs Linux)")


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


def _pymc(path: Path) -> dict[str, Any]:
    import warnings

    warnings.simplefilter("ignore")
    import pandas as pd
    from pymc_marketing.clv import ParetoNBDModel

    d = np.load(path)
    data = pd.DataFrame({"customer_id": np.arange(len(d["x"])), "frequency": d["x"], "recency": d["t_x"],
                         "T": d["T"]})
    start = time.perf_counter()
    model = ParetoNBDModel()
    model.fit(data, method="map")
    alive = model.expected_probability_alive(data)
    expected = model.expected_purchases(data, future_t=HORIZON_WEEKS)
    seconds = time.perf_counter() - start
    post = model.fit_result
    return {"seconds": seconds, "peak_rss_mb": _peak_rss_mb(),
            "params": {k: float(post[k].values.mean()) for k in ("r", "alpha", "s", "beta")},
            "total_expected_purchases": float(np.sum(expected.values)), "total_clv": float("nan"),
            "mean_p_alive": float(np.mean(alive.values))}


def _simulated(workdir: Path, n: int) -> Path:
    sys.path.insert(0, str(REPO))
    from core.clv import GammaGammaParams, ParetoNbdParams
    from core.clv.simulate import simulate_mean_spend, simulate_pareto_nbd

    rng = np.random.default_rng(19870101)
    T = rng.integers(0, 2 * 365, size=n) / 7.0
    x, t_x = simulate_pareto_nbd(ParetoNbdParams(**CDNOW_PARETO), T, rng)
    t_x = np.floor(t_x * 7.0) / 7.0  # whole days, as summaries of real purchases count them
    zbar = simulate_mean_spend(GammaGammaParams(**CDNOW_SPEND), x, rng)
    path = workdir / f"pareto-{n}.npz"
    np.savez(path, x=x, t_x=t_x, T=T, zbar=zbar)
    return path


def _cdnow(workdir: Path) -> Path:
    table = np.genfromtxt(DATA / "cdnow_customers_summary_with_transactions.csv", delimiter=",", names=True)
    path = workdir / "cdnow.npz"
    np.savez(path, x=table["x"], t_x=table["t_x"], T=table["T"], zbar=table["zbar"])
    return path


def _run(python: Path | str, task: str, data: Path, timeout: float) -> dict[str, Any] | None:
    """One measurement in a fresh process; None when it did not finish within ``timeout`` seconds."""
    try:
        done = subprocess.run([str(python), __file__, "--child", task, str(data)], capture_output=True, text=True,
                              env={**os.environ, **ONE_THREAD}, check=False, cwd=REPO, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        raise RuntimeError(f"{task} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _best(python: Path | str, task: str, data: Path, timeout: float, repeats: int) -> dict[str, Any] | None:
    """Fastest of ``repeats`` runs (other work on the machine only ever adds time), as bench/clv.py measures ours;
    None when a run did not finish within ``timeout`` seconds."""
    runs = []
    for _ in range(repeats):
        run = _run(python, task, data, timeout)
        if run is None:
            return None
        runs.append(run)
    return min(runs, key=lambda r: float(r["seconds"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000], help="simulated base sizes")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds before a run is stopped")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement of ours (fastest kept)")
    parser.add_argument("--child", nargs=2, metavar=("TASK", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        task, data = args.child
        children = {"lifetimes": _lifetimes, "pymc": _pymc}
        out = children[task](Path(data)) if task in children else _ours(Path(data), intervals=task == "intervals")
        print(json.dumps(out, default=float))
        return
    others = [(name, python, task) for name, python, task in
              (("lifetimes", BENCH_PYTHON, "lifetimes"), ("PyMC-Marketing (MAP)", PYMC_PYTHON, "pymc"))
              if python.exists()]
    for python in (BENCH_PYTHON, PYMC_PYTHON):
        if not python.exists():
            print(f"skipped: {python} not found; create it with bench/setup_bench_env.sh or bench/setup_pymc_env.sh")
    print(f"load average at the start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    print("| case | library | fit + score (s) | peak RSS (MB) | r | alpha | s | beta | 52-week purchases | CLV |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    summary = []
    with tempfile.TemporaryDirectory(prefix="clv-pareto-") as tmp:
        cases = [("CDNOW (2,357)", _cdnow(Path(tmp)))] + [(f"simulated {n:,}", _simulated(Path(tmp), n))
                                                         for n in args.sizes]
        for name, path in cases:
            rows = [("core.clv", _best(sys.executable, "ours", path, args.timeout, args.repeats)),
                    ("core.clv + intervals", _best(sys.executable, "intervals", path, args.timeout, args.repeats))]
            rows += [(label, _run(python, task, path, args.timeout)) for label, python, task in others]
            for library, r in rows:
                if r is None:
                    print(f"| {name} | {library} | did not finish in {args.timeout / 60:.0f} minutes | | | | | | | |",
                          flush=True)
                    continue
                p = r["params"]
                print(f"| {name} | {library} | {r['seconds']:.3f} | {r['peak_rss_mb']:.0f} | "
                      + " | ".join(f"{p[k]:.4f}" for k in ("r", "alpha", "s", "beta"))
                      + f" | {r['total_expected_purchases']:,.0f} | "
                      + ("" if r["total_clv"] != r["total_clv"] else f"{r['total_clv']:,.0f}") + " |", flush=True)
            summary.append((name, rows))
    for name, rows in summary:
        ours, bounded = rows[0][1], rows[1][1]
        if ours is None or bounded is None:
            print(f"- {name}: core.clv did not finish")
            continue
        parts = []
        for library, theirs in rows[2:]:
            if theirs is None:
                parts.append(f"{library} did not finish in {args.timeout / 60:.0f} minutes: "
                             f"> {args.timeout / bounded['seconds']:.0f}x")
            else:
                parts.append(f"{library} {theirs['seconds']:.3f} s: **{theirs['seconds'] / bounded['seconds']:.1f}x** "
                             f"({theirs['seconds'] / ours['seconds']:.0f}x without intervals)")
        print(f"- {name}: core.clv {ours['seconds']:.3f} s, {bounded['seconds']:.3f} s with intervals; "
              + "; ".join(parts))


if __name__ == "__main__":
    main()
