"""The file connector at scale: N contacts and 3N deals from CSV, a first sync and a no-change sync.

Per size, in a fresh process (so its peak RSS is that size's alone): the anchor (Python's ``csv.reader`` over the
same two files, the floor of any CSV reading in Python), the connector's read (rows -> checked records), the
first sync through the normal runner (read, diff, mirror, enrich, plan, write the output file) and a second sync
with the export unchanged (reads and diffs everything, writes nothing).

Run: python bench/files_scale.py [--contacts 20000 100000 ...]
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


def make_export(folder: Path, n: int) -> None:
    """``contacts.csv`` (id, email, created, three properties) and ``deals.csv`` (3 per contact on average)."""
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


def one(n: int, folder: Path) -> dict[str, Any]:
    """Measure one size (run in its own process)."""
    sys.path.insert(0, str(REPO))
    from cli.wiring import build_connector, connection_id
    from core.config import parse_config
    from sync.runner import SyncOptions, SyncRunner
    from sync.state import SQLiteState

    started = time.perf_counter()
    rows = 0
    for name in ("contacts.csv", "deals.csv"):
        with (folder / name).open(newline="") as handle:
            rows += sum(1 for _ in csv.reader(handle)) - 1
    anchor = time.perf_counter() - started
    config = parse_config({
        "crm": {"kind": "files"},
        "data": {"contact_properties": {"jobtitle": "string", "numemployees": "number", "hs_email_open": "number"}},
        "files": {"contacts": str(folder / "contacts.csv"), "deals": str(folder / "deals.csv"),
                  "output": str(folder / "out.csv")},
        "sync": {"state_path": str(folder / "state.db")},
    })
    connector = build_connector(config)
    started = time.perf_counter()
    contacts, deals, bad = connector.read()  # type: ignore[attr-defined]
    read = time.perf_counter() - started
    assert not bad and len(contacts) == n
    del contacts, deals
    runs = []
    for _ in range(2):
        runner = SyncRunner(config, build_connector(config), SQLiteState(config.sync.state_path, connection_id(config)))
        started = time.perf_counter()
        summary = runner.run(SyncOptions())
        runs.append((time.perf_counter() - started, summary.written_records, summary.pulled_contacts))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"contacts": n, "rows": rows, "anchor_s": anchor, "read_s": read, "first_s": runs[0][0],
            "first_written": runs[0][1], "second_s": runs[1][0], "second_written": runs[1][1],
            "second_pulled": runs[1][2], "peak_rss_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(int(args.one[0]), Path(args.one[1]))))
        return
    print("| contacts | deals | csv.reader (s) | connector read (s) | ratio | first sync (s) | no-change sync (s) "
          "| peak RSS (MB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.contacts:
        with tempfile.TemporaryDirectory() as tmp:
            make_export(Path(tmp), n)
            out = subprocess.run([sys.executable, __file__, "--one", str(n), tmp], capture_output=True, text=True,
                                 check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            assert r["first_written"] == n and r["second_written"] == 0 and r["second_pulled"] == 0
            print(f"| {n:,} | {r['rows'] - n:,} | {r['anchor_s']:.2f} | {r['read_s']:.2f} | "
                  f"{r['read_s'] / r['anchor_s']:.0f}x | {r['first_s']:.1f} | {r['second_s']:.1f} | "
                  f"{r['peak_rss_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
