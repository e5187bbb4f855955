"""CLV engine benchmark (BG/NBD): our core.clv against lifetimes and PyMC-Marketing, side by side in one run.

    python bench/clv.py                  # print the figures
    python bench/clv.py --write-results  # also replace the BG/NBD block at the top of "## CLV" in bench/RESULTS.md

Cases: the CDNOW sample (2,357 customers, published estimates) and simulated bases of 100,000 and 1,000,000
customers drawn from BG/NBD and Gamma-Gamma with the CDNOW parameters, observed in whole days (as
:func:`core.clv.summarize` counts them). "Fit + score" is, for ours and lifetimes: fit BG/NBD and Gamma-Gamma,
then per customer P(alive), expected purchases over 52 weeks and a discounted 12-month CLV; ours once more
with the per-customer intervals of all three (200 parameter draws); PyMC-Marketing 1.3: BetaGeoModel fitted by
MAP (its default priors), then its P(alive) and 52-week expected purchases (no spend model, no CLV). Plus the
summary of 3,000,000 raw purchases into (x, t_x, T, monetary value).

Every measurement runs in its own subprocess with one BLAS/OpenMP thread, so its time and peak memory
(maximum resident set size of that process, interpreter and libraries included) are separate. The
lifetimes half runs with .venv-bench/bin/python (bash bench/setup_bench_env.sh), the PyMC-Marketing half with
.venv-pymc/bin/python (bash bench/setup_pymc_env.sh, Python >= 3.12); without one, that half is skipped. A
run that does not finish within --timeout seconds is reported as stopped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BENCH_PYTHON = REPO / ".venv-bench" / "bin" / "python"
PYMC_PYTHON = REPO / ".venv-pymc" / "bin" / "python"
RESULTS = REPO / "bench" / "RESULTS.md"
DATA = REPO / ".." / "shared" / "data"
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}

HORIZON_WEEKS = 52.0
ANNUAL_DISCOUNT = 0.10
WEEKS_PER_MONTH = 4.345  # lifetimes' factor for freq="W"
CDNOW = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "p": 6.25, "q": 3.74, "gamma": 15.44}
N_SIMULATED = 1_000_000
SIZES = (100_000, N_SIMULATED)
INTERVAL_DRAWS = 200
N_PURCHASES = 3_000_000


# ---------------------------------------------------------------- children: one measurement each


def _peak_rss_mb() -> float:
    # VmHWM belongs to this process's own address space; getrusage's ru_maxrss would also count the
    # parent's memory at fork time, which Linux carries across exec.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (this benchmark needs Linux)")


def _measure(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Time ``work`` and report this process's peak memory before and after it (in MB)."""
    before = _peak_rss_mb()
    start = time.perf_counter()
    result = work()
    result["seconds"] = time.perf_counter() - start
    result["rss_before_mb"] = before
    result["peak_rss_mb"] = _peak_rss_mb()
    return result


def _ours_fit_score(path: Path, interval_draws: int = 0) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from core.clv import TransactionSummary, fit_and_score

    d = np.load(path)
    summary = TransactionSummary.from_arrays(d["x"], d["t_x"], d["T"], d["zbar"], unit="weeks")

    def work() -> dict[str, Any]:
        result = fit_and_score(summary, horizon=HORIZON_WEEKS, annual_discount_rate=ANNUAL_DISCOUNT,
                               interval_draws=interval_draws)
        assert result.bgnbd is not None and result.gamma_gamma is not None
        b, g = result.bgnbd.params, result.gamma_gamma.params
        return {
            "params": {"r": b.r, "alpha": b.alpha, "a": b.a, "b": b.b, "p": g.p, "q": g.q, "gamma": g.gamma},
            "log_likelihood": result.bgnbd.log_likelihood,
            "total_expected_purchases": float(result.expected_purchases.sum()),
            "total_clv": float(result.clv.sum()),
        }

    return _measure(work)


def _lifetimes_fit_score(path: Path) -> dict[str, Any]:
    import warnings

    warnings.simplefilter("ignore")  # pandas 1.5 on numpy 1.26 warns about deprecations on every call
    import pandas as pd
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    d = np.load(path)
    x, t_x, T, zbar = (pd.Series(d[k]) for k in ("x", "t_x", "T", "zbar"))

    def work() -> dict[str, Any]:
        bgf = BetaGeoFitter().fit(x, t_x, T)
        repeat = x > 0
        ggf = GammaGammaFitter().fit(x[repeat], zbar[repeat])
        bgf.conditional_probability_alive(x, t_x, T)
        expected = bgf.conditional_expected_number_of_purchases_up_to_time(HORIZON_WEEKS, x, t_x, T)
        monthly = (1.0 + ANNUAL_DISCOUNT) ** (1.0 / 12.0) - 1.0
        clv = ggf.customer_lifetime_value(bgf, x, t_x, T, zbar, time=12, discount_rate=monthly, freq="W")
        b, g = bgf.params_, ggf.params_
        return {
            "params": {"r": b["r"], "alpha": b["alpha"], "a": b["a"], "b": b["b"], "p": g["p"], "q": g["q"],
                       "gamma": g["v"]},
            "total_expected_purchases": float(np.sum(expected)),
            "total_clv": float(np.sum(clv)),
        }

    return _measure(work)


def _ours_intervals(path: Path) -> dict[str, Any]:
    return _ours_fit_score(path, INTERVAL_DRAWS)


def _pymc_fit_score(path: Path) -> dict[str, Any]:
    import warnings

    warnings.simplefilter("ignore")
    import pandas as pd
    from pymc_marketing.clv import BetaGeoModel

    d = np.load(path)
    data = pd.DataFrame({"customer_id": np.arange(len(d["x"])), "frequency": d["x"], "recency": d["t_x"],
                         "T": d["T"]})

    def work() -> dict[str, Any]:
        model = BetaGeoModel()
        model.fit(data, method="map", progressbar=False)
        model.expected_probability_alive(data)
        expected = model.expected_purchases(data, future_t=HORIZON_WEEKS)
        post = model.fit_result
        nan = float("nan")
        return {
            "params": {"r": float(post["r"].values.mean()), "alpha": float(post["alpha"].values.mean()),
                       "a": float(post["a"].values.mean()), "b": float(post["b"].values.mean()),
                       "p": nan, "q": nan, "gamma": nan},
            "total_expected_purchases": float(np.sum(expected.values)),
            "total_clv": nan,
        }

    return _measure(work)


def _ours_summary(path: Path) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from core.clv import summarize

    d = np.load(path)

    def work() -> dict[str, Any]:
        s = summarize(d["customer"], d["time"], d["amount"], int(d["n_customers"]), float(d["as_of"]), unit="weeks")
        return {"customers_with_repeats": int(np.count_nonzero(s.frequency))}

    return _measure(work)


def _lifetimes_summary(path: Path) -> dict[str, Any]:
    import warnings

    warnings.simplefilter("ignore")
    import pandas as pd
    from lifetimes.utils import summary_data_from_transaction_data

    d = np.load(path)
    frame = pd.DataFrame({"customer": d["customer"], "date": pd.to_datetime(d["time"], unit="s"),
                          "amount": d["amount"]})
    end = pd.to_datetime(float(d["as_of"]), unit="s")

    def work() -> dict[str, Any]:
        s = summary_data_from_transaction_data(frame, "customer", "date", monetary_value_col="amount",
                                               observation_period_end=end, freq="D", freq_multiplier=7)
        return {"customers_with_repeats": int((s["frequency"] > 0).sum())}

    return _measure(work)


CHILDREN = {
    ("ours", "fit_score"): _ours_fit_score,
    ("ours", "intervals"): _ours_intervals,
    ("pymc", "fit_score"): _pymc_fit_score,
    ("lifetimes", "fit_score"): _lifetimes_fit_score,
    ("ours", "summary"): _ours_summary,
    ("lifetimes", "summary"): _lifetimes_summary,
}


# ---------------------------------------------------------------- parent: data, runs, report


def _cdnow(workdir: Path) -> Path:
    table = np.genfromtxt(DATA / "cdnow_customers_summary_with_transactions.csv", delimiter=",", names=True)
    path = workdir / "cdnow.npz"
    np.savez(path, x=table["x"], t_x=table["t_x"], T=table["T"], zbar=table["zbar"])
    return path


def _simulated(workdir: Path, n: int) -> Path:
    sys.path.insert(0, str(REPO))
    from core.clv import BgNbdParams, GammaGammaParams
    from core.clv.simulate import simulate_bgnbd, simulate_mean_spend

    rng = np.random.default_rng(20050101)
    # Customers acquired uniformly over two years, observed in whole days (the last purchase too, as a summary of
    # real purchases counts it), in weeks.
    T = rng.integers(0, 2 * 365, size=n) / 7.0
    x, t_x = simulate_bgnbd(BgNbdParams(CDNOW["r"], CDNOW["alpha"], CDNOW["a"], CDNOW["b"]), T, rng)
    t_x = np.floor(t_x * 7.0) / 7.0
    zbar = simulate_mean_spend(GammaGammaParams(CDNOW["p"], CDNOW["q"], CDNOW["gamma"]), x, rng)
    path = workdir / f"simulated-{n}.npz"
    np.savez(path, x=x, t_x=t_x, T=T, zbar=zbar)
    return path


def _purchases(workdir: Path) -> Path:
    rng = np.random.default_rng(19970101)
    start = dt.datetime(2022, 1, 1, tzinfo=dt.UTC).timestamp()
    path = workdir / "purchases.npz"
    np.savez(
        path,
        customer=rng.integers(0, N_SIMULATED, size=N_PURCHASES),
        time=start + rng.uniform(0, 2 * 365 * 86_400, size=N_PURCHASES),
        amount=np.round(rng.gamma(2.0, 20.0, size=N_PURCHASES), 2),
        n_customers=N_SIMULATED,
        as_of=start + 2 * 365 * 86_400,
    )
    return path


def _run(python: Path | str, impl: str, task: str, data: Path, timeout: float | None = None) -> dict[str, Any] | None:
    """One measurement in a fresh process; None when it did not finish within ``timeout`` seconds."""
    env = {**os.environ, **ONE_THREAD}
    try:
        done = subprocess.run(
            [str(python), __file__, "--child", impl, task, str(data)],
            capture_output=True, text=True, env=env, check=False, cwd=REPO, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        raise RuntimeError(f"{impl} {task} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _best(python: Path | str, impl: str, task: str, data: Path, repeats: int,
          timeout: float | None = None) -> dict[str, Any] | None:
    """Fastest of ``repeats`` runs (other work on the machine only ever adds time); peak memory of that run.
    None when the first run did not finish within ``timeout``."""
    runs = []
    for _ in range(repeats):
        run = _run(python, impl, task, data, timeout)
        if run is None:
            break
        runs.append(run)
    return min(runs, key=lambda r: float(r["seconds"])) if runs else None


def _versions(python: Path | str, distributions: list[str]) -> str:
    code = f"from importlib.metadata import version; print(', '.join(d + ' ' + version(d) for d in {distributions!r}))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _fmt_params(params: dict[str, float]) -> str:
    return ", ".join(f"{k}={params[k]:.4f}" for k in ("r", "alpha", "a", "b", "p", "q", "gamma"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write-results", action="store_true", help="update the CLV section of bench/RESULTS.md")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement of ours (fastest kept)")
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES), help="simulated base sizes")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds before a library's run is stopped")
    parser.add_argument("--note", default="", help="a remark on the conditions, added to RESULTS.md")
    parser.add_argument("--child", nargs=3, metavar=("IMPL", "TASK", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        impl, task, data = args.child
        print(json.dumps(CHILDREN[(impl, task)](Path(data)), default=float))
        return

    others = [(label, python, impl) for label, python, impl in
              (("lifetimes", BENCH_PYTHON, "lifetimes"), ("PyMC-Marketing (MAP)", PYMC_PYTHON, "pymc"))
              if python.exists()]
    for python, script in ((BENCH_PYTHON, "setup_bench_env.sh"), (PYMC_PYTHON, "setup_pymc_env.sh")):
        if not python.exists():
            print(f"skipped: {python} not found; create it with `bash bench/{script}`\n")
    have_lifetimes = BENCH_PYTHON.exists()
    load_at_start = os.getloadavg()[0]  # read now: by the end the run itself has raised it
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    def cells(r: dict[str, Any] | None) -> str:
        if r is None:
            return f"did not finish in {args.timeout / 60:.0f} minutes | |" + " |" * 7
        p = r["params"]
        values = " | ".join("" if p[k] != p[k] else f"{p[k]:.4f}" for k in ("r", "alpha", "a", "b", "p", "q", "gamma"))
        clv = "" if r["total_clv"] != r["total_clv"] else f"{r['total_clv']:,.0f}"
        return (f"{r['seconds']:.3f} | {r['peak_rss_mb']:.0f} | {values} | {r['total_expected_purchases']:,.0f} | "
                f"{clv}")

    with tempfile.TemporaryDirectory(prefix="clv-bench-") as tmp:
        workdir = Path(tmp)
        cases = [("CDNOW (2,357 customers)", _cdnow(workdir))]
        cases += [(f"simulated {n:,} customers", _simulated(workdir, n)) for n in args.sizes]
        say("| case | library | fit + score (s) | peak RSS (MB) | r | alpha | a | b | p | q | gamma "
            "| 52-week purchases | CLV |")
        say("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        measured = []
        for name, path in cases:
            big = not name.startswith("CDNOW")
            rows = [("core.clv", _best(sys.executable, "ours", "fit_score", path, args.repeats)),
                    (f"core.clv + intervals ({INTERVAL_DRAWS} draws)",
                     _best(sys.executable, "ours", "intervals", path, args.repeats))]
            rows += [(label, _best(python, impl, "fit_score", path, 1 if big else 3, args.timeout))
                     for label, python, impl in others]
            for library, r in rows:
                say(f"| {name} | {library} | {cells(r)} |")
            measured.append((name, rows))
        purchases = _purchases(workdir)
        ours_summary = _best(sys.executable, "ours", "summary", purchases, args.repeats)
        theirs_summary = _best(BENCH_PYTHON, "lifetimes", "summary", purchases, 1) if have_lifetimes else None
    assert ours_summary is not None

    say()
    for name, rows in measured:
        (_, ours), (_, bounded) = rows[0], rows[1]
        assert ours is not None and bounded is not None
        parts = []
        for library, theirs in rows[2:]:
            if theirs is None:
                parts.append(f"{library} did not finish in {args.timeout / 60:.0f} minutes "
                             f"(> {args.timeout / bounded['seconds']:.0f}x)")
                continue
            parts.append(f"{library} {theirs['seconds']:.3f} s: **{theirs['seconds'] / bounded['seconds']:.1f}x** "
                         f"with our intervals, {theirs['seconds'] / ours['seconds']:.1f}x without; peak RSS "
                         f"{theirs['peak_rss_mb']:.0f} MB, 52-week purchases {theirs['total_expected_purchases']:,.0f}")
        say(f"- {name}: core.clv {ours['seconds']:.3f} s ({bounded['seconds']:.3f} s with intervals; peak RSS "
            f"{ours['peak_rss_mb']:.0f} / {bounded['peak_rss_mb']:.0f} MB; 52-week purchases "
            f"{ours['total_expected_purchases']:,.0f}, CLV {ours['total_clv']:,.0f}); " + "; ".join(parts) + ".")
    say("- CLV: we discount each month at its midpoint, lifetimes at its end; PyMC-Marketing's MAP includes its "
        "default priors, so its estimates differ from the maximum likelihood.")
    line = (
        f"- Summary of {N_PURCHASES:,} purchases of {N_SIMULATED:,} customers: core.clv "
        f"{ours_summary['seconds']:.2f} s (peak RSS {ours_summary['peak_rss_mb']:.0f} MB)"
    )
    if theirs_summary:
        line += (
            f" vs lifetimes `summary_data_from_transaction_data` {theirs_summary['seconds']:.2f} s "
            f"(peak RSS {theirs_summary['peak_rss_mb']:.0f} MB), "
            f"**{theirs_summary['seconds'] / ours_summary['seconds']:.0f}x faster**"
        )
    say(line + ".")
    say(f"- Published CDNOW estimates: {_fmt_params(CDNOW)} (BG/NBD: Fader, Hardie & Lee 2005; "
        "Gamma-Gamma: Fader & Hardie 2013).")

    if args.write_results:
        stack = _versions(sys.executable, ["numpy", "scipy"])
        theirs_stack = _versions(BENCH_PYTHON, ["lifetimes", "pandas", "numpy", "scipy", "autograd"]) \
            if have_lifetimes else "not installed"
        pymc_stack = _versions(PYMC_PYTHON, ["pymc-marketing", "pymc", "pytensor"]) \
            if PYMC_PYTHON.exists() else "not installed"
        header = [
            f"Measured {dt.date.today().isoformat()} on {_cpu()}, {os.cpu_count()} cores (one thread per "
            f"measurement), Python {platform.python_version()}; core.clv on {stack}; references: {theirs_stack}; "
            f"{pymc_stack}. Each figure of ours is the fastest of {args.repeats} runs in a fresh process (the "
            "libraries: one run on the simulated bases); peak RSS is that process's maximum resident memory, "
            "interpreter and libraries included. Load average at the start: "
            f"{load_at_start:.1f}, at the end {os.getloadavg()[0]:.1f}. Reproduce with `python bench/clv.py` "
            "(`bash bench/setup_bench_env.sh` and "
            "`bash bench/setup_pymc_env.sh` first for the libraries)." + (f" {args.note}" if args.note else ""),
            "",
        ]
        _write_section(header + lines)
        print(f"\nwrote the BG/NBD block of the CLV section of {RESULTS}")


def _write_section(lines: list[str]) -> None:
    """Replace the BG/NBD block of the '## CLV' section, from its heading to its first '### ' subsection (the
    holdout comparison and Pareto/NBD blocks below are written by hand and stay), creating the section if needed."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    body = "## CLV\n\n" + "\n".join(lines).rstrip() + "\n"
    pattern = re.compile(r"^## CLV\n.*?(?=^### |^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: body + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + body
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
