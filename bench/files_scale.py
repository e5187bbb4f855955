"""The file connector at scale: N contacts and ~3N deals from CSV or Parquet, a first sync and a no-change sync.

Per size and format, in a fresh process (so its peak RSS is that run's alone): the anchor (the floor of reading
that format in Python: ``csv.reader`` over the CSV files; ``pyarrow.parquet`` into numpy columns for Parquet),
the connector's read (rows -> checked records), the first sync through the normal runner and a second sync with
the export unchanged (reads and diffs everything, writes nothing). The runner's progress calls split each sync
into phases: read and diff (until the first page is in the mirror), mirror (the pages stored), compute and plan
(until the first batch is written) and write. The Parquet export is the CSV export read by ``pyarrow.csv`` with
the types it infers (dates, integers) and written as Parquet, as a tool that exports Parquet types its columns.

A child whose resident memory passes ``--max-rss-gb`` (12 GB) is stopped and reported.

``--choose N`` instead times the two candidate readers (pyarrow, DuckDB if installed) on one export of N contacts:
each format read whole into numpy columns, twice, against ``csv.reader``.

Run: python bench/files_scale.py [--contacts 20000 100000 ...] [--formats csv parquet] [--choose 1000000]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def make_export(folder: Path, n: int, parquet: bool = False) -> None:
    """``contacts.csv`` (id, email, created, three properties) and ``deals.csv`` (3 per contact on average); with
    ``parquet``, the same as ``contacts.parquet`` and ``deals.parquet``."""
    with (folder / "contacts.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "email", "created_at", "jobtitle", "numemployees", "hs_email_open"])
        for i in range(n):
            writer.writerow([f"c{i}", f"p{i}@example.com", f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}",
                             "VP Sales" if i % 3 else "Engineer", 10 * (i % 50), i % 7])
    with (folder / "deals.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "contact_id", "amount", "status", "created_at", "close_date"])
        for i in range(n):
            for k in range(i % 7):  # 0 to 6 deals, 3 on average
                writer.writerow([f"d{i}-{k}", f"c{i}", 20 + (i * 7 + k * 13) % 180, "won",
                                 f"2024-{1 + (i + k) % 12:02d}-05", f"2024-{1 + (i + k) % 12:02d}-06"])
    if parquet:
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        for name in ("contacts", "deals"):
            pq.write_table(pcsv.read_csv(folder / f"{name}.csv"), folder / f"{name}.parquet")


def anchor(folder: Path, fmt: str) -> tuple[int, float, float]:
    """Rows read, seconds and CPU seconds, by the floor of reading the format in Python."""
    import pyarrow.parquet as pq  # imported before the clock starts

    started, cpu = time.perf_counter(), time.process_time()
    rows = 0
    for name in ("contacts", "deals"):
        if fmt == "csv":
            with (folder / f"{name}.csv").open(newline="") as handle:
                rows += sum(1 for _ in csv.reader(handle)) - 1
        else:
            table = pq.read_table(folder / f"{name}.parquet")
            rows += len({c: table.column(c).to_numpy() for c in table.column_names}["id"])
    return rows, time.perf_counter() - started, time.process_time() - cpu


def one(n: int, folder: Path, fmt: str) -> dict[str, Any]:
    """Measure one size and format (run in its own process)."""
    sys.path.insert(0, str(REPO))
    from cli.wiring import build_connector, connection_id
    from core.config import parse_config
    from sync.runner import SyncOptions, SyncRunner
    from sync.state import SQLiteState

    rows, anchor_s, anchor_cpu = anchor(folder, fmt)
    config = parse_config({
        "crm": {"kind": "files"},
        "data": {"contact_properties": {"jobtitle": "string", "numemployees": "number", "hs_email_open": "number"}},
        "files": {"contacts": str(folder / f"contacts.{fmt}"), "deals": str(folder / f"deals.{fmt}"),
                  "output": str(folder / "out.csv")},
        "sync": {"state_path": str(folder / "state.db")},
    })
    connector = build_connector(config)
    started, cpu = time.perf_counter(), time.process_time()
    contacts, deals, bad = connector.read()  # type: ignore[attr-defined]
    read, read_cpu = time.perf_counter() - started, time.process_time() - cpu
    assert not bad and len(contacts) == n and len(contacts) + len(deals) == rows
    del contacts, deals
    row_wise_cpu = None
    if fmt == "csv":
        # The same CSV read row by row (what every CSV was before, and what a CSV whose rows span lines still is).
        from connectors.files import columns

        column_wise, columns.csv_table = columns.csv_table, lambda path, delimiter: None  # type: ignore[assignment]
        cpu = time.process_time()
        connector.read()  # type: ignore[attr-defined]
        row_wise_cpu = time.process_time() - cpu
        columns.csv_table = column_wise
    runs = []
    for _ in range(2):
        marks: dict[str, float] = {}

        def progress(step: str, done: int, total: int | None, marks: dict[str, float] = marks) -> None:
            now = time.perf_counter()
            marks.setdefault(f"first_{step}", now)
            marks[f"last_{step}"] = now

        runner = SyncRunner(config, build_connector(config), SQLiteState(config.sync.state_path, connection_id(config)),
                            progress=progress)
        started = time.perf_counter()
        summary = runner.run(SyncOptions())
        ended = time.perf_counter()
        pulled = marks.get("last_pull", started)
        written = marks.get("first_write", ended)
        runs.append({"s": ended - started, "read_diff_s": marks.get("first_pull", started) - started,
                     "mirror_s": pulled - marks.get("first_pull", started), "compute_plan_s": written - pulled,
                     "write_s": ended - written, "written": summary.written_records,
                     "pulled": summary.pulled_contacts + summary.pulled_deals, "status": summary.status})
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"contacts": n, "rows": rows, "anchor_s": anchor_s, "anchor_cpu_s": anchor_cpu, "read_s": read,
            "read_cpu_s": read_cpu, "row_wise_cpu_s": row_wise_cpu, "first": runs[0], "second": runs[1],
            "peak_rss_mb": peak}


def watched(command: list[str], max_rss_gb: float) -> str:
    """Run a child, stopping it when its resident memory passes the limit; its output."""
    with tempfile.TemporaryFile("w+") as out:
        child = subprocess.Popen(command, stdout=out, text=True)
        status = Path(f"/proc/{child.pid}/status")
        while child.poll() is None:
            try:
                rss_kb = next(int(line.split()[1]) for line in status.read_text().splitlines()
                              if line.startswith("VmRSS:"))
            except (OSError, StopIteration):
                rss_kb = 0
            if rss_kb > max_rss_gb * 1024 * 1024:
                child.kill()
                child.wait()
                raise SystemExit(f"stopped: the run passed {max_rss_gb} GB resident memory ({rss_kb / 1024:.0f} MB)")
            time.sleep(1)
        if child.returncode:
            raise SystemExit(f"the measuring process failed ({child.returncode})")
        out.seek(0)
        return out.read()


def choose(n: int) -> None:
    """pyarrow against DuckDB: each export read whole into numpy columns (the connector's first step)."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    readers: dict[str, Any] = {
        "pyarrow parquet": lambda f, name: {c: a.to_numpy() for c, a in
                                            zip(*_names_arrays(pq.read_table(f / f"{name}.parquet")), strict=True)},
        "pyarrow csv": lambda f, name: {c: a.to_numpy() for c, a in
                                        zip(*_names_arrays(pcsv.read_csv(f / f"{name}.csv")), strict=True)},
    }
    try:
        import duckdb

        readers["duckdb parquet"] = lambda f, name: duckdb.sql(
            f"select * from read_parquet('{f / name}.parquet')").fetchnumpy()
        readers["duckdb csv"] = lambda f, name: duckdb.sql(f"select * from read_csv('{f / name}.csv')").fetchnumpy()
    except ImportError:
        print("DuckDB is not installed: pip install duckdb to compare it")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_export(folder, n, parquet=True)
        print(f"| reader ({n:,} contacts, ~{3 * n:,} deals) | first read (s) | second read (s) | ratio to csv.reader |")
        print("|---|---:|---:|---:|")
        _, floor, _ = anchor(folder, "csv")
        for label, read in readers.items():
            times = []
            for _ in range(2):
                started = time.perf_counter()
                for name in ("contacts", "deals"):
                    read(folder, name)
                times.append(time.perf_counter() - started)
            print(f"| {label} | {times[0]:.2f} | {times[1]:.2f} | {min(times) / floor:.2f} |", flush=True)
        print(f"| csv.reader (anchor) | {floor:.2f} | | 1 |")


def _names_arrays(table: Any) -> tuple[list[str], list[Any]]:
    return table.column_names, [table.column(c) for c in table.column_names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--formats", nargs="+", choices=["csv", "parquet"], default=["csv", "parquet"])
    parser.add_argument("--max-rss-gb", type=float, default=12.0)
    parser.add_argument("--choose", type=int, help="compare pyarrow and DuckDB on this many contacts")
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(int(args.one[0]), Path(args.one[1]), args.one[2])))
        return
    if args.choose:
        choose(args.choose)
        return
    # CPU seconds beside wall seconds: on a shared machine the reading's ratio to its anchor is fairer in CPU time.
    print("| contacts | deals | format | anchor (s, CPU s) | connector read (s, CPU s) | ratio (CPU) | CSV row by row "
          "(CPU s) | first sync (s): read+diff / mirror / compute+plan / write | no-change sync (s): read+diff / rest "
          "| peak RSS (MB) |")
    print("|---:|---:|---|---:|---:|---:|---:|---|---|---:|")
    for n in args.contacts:
        with tempfile.TemporaryDirectory() as tmp:
            make_export(Path(tmp), n, parquet="parquet" in args.formats)
            for fmt in args.formats:
                for leftover in ("state.db", "state.db.exports", "out.csv"):
                    subprocess.run(["rm", "-rf", str(Path(tmp) / leftover)], check=True)
                out = watched([sys.executable, __file__, "--one", str(n), tmp, fmt], args.max_rss_gb)
                r = json.loads(out.strip().splitlines()[-1])
                first, second = r["first"], r["second"]
                assert first["written"] == n and second["written"] == 0 and second["pulled"] == 0
                print(f"| {n:,} | {r['rows'] - n:,} | {fmt} | {r['anchor_s']:.2f}, {r['anchor_cpu_s']:.2f} | "
                      f"{r['read_s']:.2f}, {r['read_cpu_s']:.2f} | {r['read_cpu_s'] / r['anchor_cpu_s']:.0f}x | "
                      f"{'-' if r['row_wise_cpu_s'] is None else format(r['row_wise_cpu_s'], '.2f')} | "
                      f"{first['s']:.1f}: {first['read_diff_s']:.1f} / "
                      f"{first['mirror_s']:.1f} / {first['compute_plan_s']:.1f} / {first['write_s']:.1f} | "
                      f"{second['s']:.1f}: {second['read_diff_s']:.1f} / {second['s'] - second['read_diff_s']:.1f} "
                      f"| {r['peak_rss_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
