"""The whole sync at scale: a first and a no-change sync through the HubSpot sandbox, rate limits off.

The emulator runs in a child process (its CPU and memory are not the client's); the client is a fresh process
per size, so its peak RSS is that size's alone. Per phase: wall time of the sync's steps (pull, the mirror
read for the engine, enrich, plan, write, settle), the client's CPU (user + system, every thread), peak RSS,
the state file's size and the API calls. Then settle alone: one written batch checkpointed (``settle_batch``
+ ``set_owned``) per 100 records on a mirror of the same size, with no HTTP, as records/s against the 50,000/s
goal.

Run: python bench/sync_scale.py [--contacts 20000 100000 ...]
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

SETTLE_GOAL = 50_000
PHASES = ("pull", "mirror read", "enrich", "plan", "write (HTTP + settle)", "settle")


def serve(n: int, pipe: Connection) -> None:
    """The emulator, seeded with ``n`` generated contacts (~3 deals each), until the parent closes the pipe."""
    from connectors.sandbox.generator import generate
    from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits, start_hubspot_sandbox

    data = generate(n, seed=1)
    server, emulator = start_hubspot_sandbox(data.contact_records(), data.deal_records(), emulator=HubSpotEmulator(
        rate_limits=RateLimits.off(), search_lag_ms=0, validate_requests=False))
    pipe.send((server.url, emulator.token, data.as_of.isoformat(), len(data.deal_records())))
    with contextlib.suppress(EOFError):  # the parent exited without saying so
        pipe.recv()
    server.stop()


class Timers:
    """Wall time per phase, by wrapping the sync's own methods (no change to the code measured)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}

    def wrap(self, owner: Any, name: str, phase: str) -> None:
        original: Callable[..., Any] = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.wall[phase] = self.wall.get(phase, 0.0) + time.perf_counter() - started

        setattr(owner, name, timed)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_size(n: int) -> dict[str, Any]:
    """Both syncs and the settle figure for one size, in this (fresh) process."""
    import core.engine
    import sync.runner
    from cli.demo import demo_config
    from cli.wiring import build_connector, connection_id
    from sync.runner import SyncOptions, SyncRunner
    from sync.state import SQLiteState

    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=serve, args=(n, child), daemon=True)
    proc.start()
    url, token, as_of_text, deals = parent.recv()
    as_of = datetime.fromisoformat(as_of_text)
    out: dict[str, Any] = {"contacts": n, "deals": deals, "runs": []}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "state.db"
        config = demo_config(url, path)
        config = config.model_copy(update={"hubspot": config.hubspot.model_copy(
            update={"requests_per_10s": 100_000, "search_per_second": 1000, "daily_limit": None})})
        timers = Timers()
        timers.wrap(SyncRunner, "_pull", "pull")
        timers.wrap(SyncRunner, "_write", "write (HTTP + settle)")
        timers.wrap(SyncRunner, "_settle", "settle")
        timers.wrap(sync.runner, "make_plan", "plan")
        timers.wrap(core.engine, "enrich", "enrich")
        for name in ("contacts", "deals", "contact_rows", "deal_rows"):
            if hasattr(SQLiteState, name):
                timers.wrap(SQLiteState, name, "mirror read")
        for name in ("owned_values", "written", "rejections", "in_flight"):
            timers.wrap(SQLiteState, name, "plan")
        for label in ("first", "no-change"):
            connector = build_connector(config, token=token)
            runner = SyncRunner(config, connector, SQLiteState(path, connection_id(config)))
            timers.wall.clear()
            cpu_before, started = cpu(), time.perf_counter()
            summary = runner.run(SyncOptions(as_of=as_of))
            wall, used = time.perf_counter() - started, cpu() - cpu_before
            runner.state.close()
            assert summary.status == "ok", summary.message
            out["runs"].append({
                "run": label, "wall": wall, "cpu": used, "phases": dict(timers.wall),
                "api_calls": summary.api_calls, "pulled": summary.pulled_contacts + summary.pulled_deals,
                "written": summary.written_records,
                "state_mb": sum(p.stat().st_size for p in Path(folder).glob("state.db*")) / 2**20,
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            })
        out["settle_per_s"] = settle_rate(Path(folder), connection_id(config), n)
    parent.send("stop")
    proc.join(30)
    return out


def settle_rate(folder: Path, connection: str, n: int) -> float:
    """Checkpoint ``n`` written records in batches of 100 on a mirror of ``n`` contacts; records/s."""
    from connectors.sandbox.generator import generate
    from core.config import ClmConfig
    from core.engine import enrich
    from sync.runner import output_specs
    from sync.state import SQLiteState

    data = generate(n, seed=2)
    state = SQLiteState(folder / "settle.db", connection)
    contacts = data.contact_records()
    for i in range(0, n, 1000):
        state.apply_page(contacts[i:i + 1000], (), (), (), {"contacts": str(i)}, {}, ())
    config = ClmConfig()
    names = [s.name for s in output_specs(config)]
    plan = [(r.contact_id, {k: v for k, v in r.model_dump().items() if k in names})
            for r in enrich(contacts, data.deal_records(), config, data.as_of).records()]
    state.save_plan(1, plan)
    started = time.perf_counter()
    for i in range(0, n, 100):
        batch = dict(plan[i:i + 100])
        if hasattr(state, "set_owned") and "now_current" not in inspect.signature(state.settle_batch).parameters:
            # The code before issue 15: the CRM's current values were a second transaction.
            state.settle_batch(1, batch, [], [])
            state.set_owned({rid: {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}
                             for rid, values in batch.items()})
        else:
            state.settle_batch(1, batch, [], [], now_current=True, planned=True)
    elapsed = time.perf_counter() - started
    state.close()
    return n / elapsed


def report(results: list[dict[str, Any]]) -> None:
    print(f"measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print("| contacts | run | wall (s) | client CPU (s) | " + " | ".join(f"{p} (s)" for p in PHASES)
          + " | peak RSS (MB) | state (MB) | API calls | pulled | written |")
    print("|---:|---|---:|---:|" + "---:|" * len(PHASES) + "---:|---:|---:|---:|---:|")
    for res in results:
        for run in res["runs"]:
            phases = " | ".join(f"{run['phases'].get(p, 0.0):.2f}" for p in PHASES)
            print(f"| {res['contacts']:,} | {run['run']} | {run['wall']:.1f} | {run['cpu']:.1f} | {phases} | "
                  f"{run['rss_mb']:,.0f} | {run['state_mb']:,.0f} | {run['api_calls']:,} | {run['pulled']:,} | "
                  f"{run['written']:,} |")
    for res in results:
        rate = res["settle_per_s"]
        print(f"settle alone at {res['contacts']:,}: {rate:,.0f} records/s, ratio to the {SETTLE_GOAL:,}/s goal "
              f"{rate / SETTLE_GOAL:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one)))
        return
    results = []
    for n in args.contacts:
        # A fresh client process per size: its peak RSS is this size's.
        done = subprocess.run([sys.executable, __file__, "--one", str(n)], check=True, capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    report(results)


if __name__ == "__main__":
    main()
