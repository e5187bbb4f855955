"""Files written for people: score exports (``clm score -o``), plan exports (``clm sync --export-plan``) and the
HTML report (``clm report --html``).

They hold the same per-contact data as the state file, so they are created private (0600) like it (issue 14:
they were 0644 while the state file was 0600). Text in them is redacted as in logs and state (:mod:`core.redact`),
CSV cells are neutralised against formula injection, and a path that cannot be written is a UsageError (exit 2)
naming the path and the reason, never a traceback.
"""

from __future__ import annotations

import csv
import json
import os
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from core.csvcell import neutralise_cell
from core.errors import UsageError
from core.redact import redact, redact_values
from sync.planner import Plan


def cannot_write(path: Path, exc: OSError) -> UsageError:
    """The usage error (exit 2) for an output path the OS refused: the path, why, and what to do."""
    reason = exc.strerror or type(exc).__name__
    if isinstance(exc, IsADirectoryError) or path.is_dir():
        reason = "it is a directory; give a file name"
    elif isinstance(exc, FileExistsError | NotADirectoryError):  # making its folder met a file of that name
        reason = "a part of its folder path is a file, not a folder"
    return UsageError(f"cannot write {path}: {reason}",
                      hint="choose a path in a folder you can write to (its parent folders are created)")


def check_writable(path: Path) -> None:
    """Fail early, before a run does any work, when ``path`` cannot be written.

    Creates missing parent folders (as the write would) but leaves no file behind.
    """
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "is a directory", str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC))  # opened without truncating
        else:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
            path.unlink()
    except OSError as exc:
        raise cannot_write(path, exc) from None


@contextmanager
def private_file(path: Path, newline: str | None = None) -> Iterator[IO[str]]:
    """``path`` opened for writing as UTF-8 text, created 0600 (an existing regular file is made 0600 too)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        # The creation mode applies only to a new file; /dev/stdout or a FIFO keep their own modes.
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, 0o600)
        handle = os.fdopen(fd, "w", encoding="utf-8", newline=newline)
    except OSError as exc:
        raise cannot_write(path, exc) from None
    try:
        with handle:
            yield handle
    except OSError as exc:  # a full disk or an I/O error while writing
        raise cannot_write(path, exc) from None


def write_text(path: Path, text: str) -> None:
    """Write a whole text file (the HTML report) privately."""
    with private_file(path) as handle:
        handle.write(text)


def _cell(value: object) -> object:
    return neutralise_cell(redact(value) if isinstance(value, str) else value)


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write a CSV file privately, every text cell redacted (see :mod:`core.redact`) and neutralised (see
    :func:`neutralise_cell`)."""
    with private_file(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([_cell(name) for name in header])
        writer.writerows([_cell(cell) for cell in row] for row in rows)


def write_jsonl(path: Path, rows: Iterable[Any]) -> None:
    """Write JSON Lines privately, every text value redacted (JSON needs no neutralising: no spreadsheet
    evaluates it)."""
    with private_file(path) as handle:
        handle.writelines(json.dumps(redact_values(row)) + "\n" for row in rows)


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def export_plan(plan: Plan, path: Path, current: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Write the plan as JSON Lines (one record per line) or CSV (one record-field per row) by suffix, each new
    value beside the CRM's value of that field now (``current``: our fields' values as last pulled; empty when the
    record has none yet), so a reviewer sees old -> new, not only new."""
    now = current or {}
    if path.suffix.lower() == ".csv":
        write_csv(path, ["record_id", "field", "old_value", "new_value"],
                  ([rid, name, _jsonable(now.get(rid, {}).get(name)), _jsonable(value)]
                   for rid, values in plan.writes for name, value in values.items()))
        return
    write_jsonl(path, ({"record_id": rid, "values": {k: _jsonable(v) for k, v in values.items()},
                        "before": {k: _jsonable(now.get(rid, {}).get(k)) for k in values}}
                       for rid, values in plan.writes))
