"""CLV engine benchmark: our core.clv against the lifetimes package, side by side.

    python bench/clv.py                  # print the figures
    python bench/clv.py --write-results  # also replace the "## CLV" section of bench/RESULTS.md

Cases: the CDNOW sample (2,357 customers, published estimates) and a simulated base of 1,000,000 customers
drawn from BG/NBD and Gamma-Gamma with the CDNOW parameters. "Fit + score" is, for both libraries:
fit BG/NBD and Gamma-Gamma, then per customer P(alive), expected purchases over 52 weeks and a discounted
12-month CLV. Plus the summary of 3,000,000 raw purchases into (x, t_x, T, monetary value).

Every measurement runs in its own subprocess with one BLAS/OpenMP thread, so its time and peak memory
(maximum resident set size of that process, interpreter and libraries included) are separate. The
lifetimes half runs with .venv-bench/bin/python (create it with bench/setup_bench_env.sh); without it,
that half is skipped.
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
RESULTS = REPO / "bench" / "RESULTS.md"
DATA = REPO / ".." / "shared" / "data"
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}

HORIZON_WEEKS = 52.0
ANNUAL_DISCOUNT = 0.10
WEEKS_PER_MONTH = 4.345  # lifetimes' factor for freq="W"
CDNOW = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "p": 6.25, "q": 3.74, "gamma": 15.44}
N_SIMULATED = 1_000_000
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


def _ours_fit_score(path: Path) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from core.clv import TransactionSummary, fit_and_score

    d = np.load(path)
    summary = TransactionSummary.from_arrays(d["x"], d["t_x"], d["T"], d["zbar"], unit="weeks")

    def work() -> dict[str, Any]:
        result = fit_and_score(summary, horizon=HORIZON_WEEKS, annual_discount_rate=ANNUAL_DISCOUNT)
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


def _simulated(workdir: Path) -> Path:
    sys.path.insert(0, str(REPO))
    from core.clv import BgNbdParams, GammaGammaParams
    from core.clv.simulate import simulate_bgnbd, simulate_mean_spend

    rng = np.random.default_rng(20050101)
    # Customers acquired uniformly over two years, observed in whole days, in weeks.
    T = rng.integers(0, 2 * 365, size=N_SIMULATED) / 7.0
    x, t_x = simulate_bgnbd(BgNbdParams(CDNOW["r"], CDNOW["alpha"], CDNOW["a"], CDNOW["b"]), T, rng)
    zbar = simulate_mean_spend(GammaGammaParams(CDNOW["p"], CDNOW["q"], CDNOW["gamma"]), x, rng)
    path = workdir / "simulated.npz"
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


def _run(python: Path | str, impl: str, task: str, data: Path) -> dict[str, Any]:
    env = {**os.environ, **ONE_THREAD}
    done = subprocess.run(
        [str(python), __file__, "--child", impl, task, str(data)],
        capture_output=True, text=True, env=env, check=False, cwd=REPO,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{impl} {task} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _best(python: Path | str, impl: str, task: str, data: Path, repeats: int) -> dict[str, Any]:
    """Fastest of ``repeats`` runs (other work on the machine only ever adds time); peak memory of that run."""
    runs = [_run(python, impl, task, data) for _ in range(repeats)]
    return min(runs, key=lambda r: float(r["seconds"]))


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
    parser.add_argument("--note", default="", help="a remark on the conditions, added to RESULTS.md")
    parser.add_argument("--child", nargs=3, metavar=("IMPL", "TASK", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        impl, task, data = args.child
        print(json.dumps(CHILDREN[(impl, task)](Path(data)), default=float))
        return

    have_lifetimes = BENCH_PYTHON.exists()
    if not have_lifetimes:
        print(f"lifetimes half skipped: {BENCH_PYTHON} not found; create it with `bash bench/setup_bench_env.sh`\n")
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    with tempfile.TemporaryDirectory(prefix="clv-bench-") as tmp:
        workdir = Path(tmp)
        cases = [("CDNOW (2,357 customers)", _cdnow(workdir)), ("simulated 1,000,000 customers", _simulated(workdir))]
        say("| case | library | fit + score (s) | peak RSS (MB) | r | alpha | a | b | p | q | gamma |")
        say("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        ratios = []
        for name, path in cases:
            ours = _best(sys.executable, "ours", "fit_score", path, args.repeats)
            rows = [("core.clv", ours)]
            if have_lifetimes:
                theirs = _best(BENCH_PYTHON, "lifetimes", "fit_score", path, 1 if "1,000,000" in name else 3)
                rows.append(("lifetimes", theirs))
                ratios.append((name, ours, theirs))
            for library, r in rows:
                p = r["params"]
                cells = " | ".join(f"{p[k]:.4f}" for k in ("r", "alpha", "a", "b", "p", "q", "gamma"))
                say(f"| {name} | {library} | {r['seconds']:.3f} | {r['peak_rss_mb']:.0f} | {cells} |")
        purchases = _purchases(workdir)
        ours_summary = _best(sys.executable, "ours", "summary", purchases, args.repeats)
        theirs_summary = _best(BENCH_PYTHON, "lifetimes", "summary", purchases, 1) if have_lifetimes else None

    say()
    for name, ours, theirs in ratios:
        say(
            f"- {name}: core.clv {ours['seconds']:.3f} s vs lifetimes {theirs['seconds']:.3f} s, "
            f"**{theirs['seconds'] / ours['seconds']:.0f}x faster**; peak RSS {ours['peak_rss_mb']:.0f} MB vs "
            f"{theirs['peak_rss_mb']:.0f} MB. Total 52-week expected purchases {ours['total_expected_purchases']:,.0f}"
            f" vs {theirs['total_expected_purchases']:,.0f}; total CLV {ours['total_clv']:,.0f} vs "
            f"{theirs['total_clv']:,.0f} (we discount each month at its midpoint, lifetimes at its end)."
        )
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
        header = [
            f"Measured {dt.date.today().isoformat()} on {_cpu()}, {os.cpu_count()} cores (one thread per "
            f"measurement), Python {platform.python_version()}; core.clv on {stack}; reference: {theirs_stack}. "
            "Each figure is the fastest of several runs in a fresh process (lifetimes on 1M: one run); "
            "peak RSS is that process's maximum resident memory, interpreter and libraries included. "
            "Reproduce with `python bench/clv.py` (`bash bench/setup_bench_env.sh` first for the lifetimes half)."
            + (f" {args.note}" if args.note else ""),
            "",
        ]
        _write_section(header + lines)
        print(f"\nwrote the CLV section of {RESULTS}")


def _write_section(lines: list[str]) -> None:
    """Replace the body of the '## CLV' section (up to the next '## ' heading), creating it if needed."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    body = "## CLV\n\n" + "\n".join(lines).rstrip() + "\n"
    pattern = re.compile(r"^## CLV\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: body + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + body
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
