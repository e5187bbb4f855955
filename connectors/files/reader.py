"""The files of an export (one file or a folder of them) and the rows of CSV and JSON Lines files, each row with
its file and line; Parquet files are read column-wise (:mod:`.columns`)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.files.records import BadRow
from core.errors import ConnectorError

#: File name endings read from a folder, by format.
SUFFIXES = {"csv": (".csv", ".tsv", ".txt"), "jsonl": (".jsonl", ".ndjson", ".json"), "parquet": (".parquet",)}


@dataclass(frozen=True)
class Row:
    """One record of an export: its values by column name, where it came from."""

    file: Path
    line: int
    values: dict[str, Any]


def export_files(path: Path, fmt: str, what: str) -> list[Path]:
    """The files of one export: ``path`` itself, or the files of the folder ``path`` in name order."""
    if path.is_dir():
        suffixes = SUFFIXES.get(fmt) or tuple(suffix for group in SUFFIXES.values() for suffix in group)
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
        if not files:
            raise ConnectorError(f"files.{what}: the folder {path} holds no {'/'.join(suffixes)} files",
                                 hint="put the exported files there, or name one file")
        return files
    if not path.is_file():
        raise ConnectorError(f"files.{what}: {path} does not exist", hint="check the path (relative paths are "
                                                                          "taken from the configuration's folder)")
    return [path]


def file_format(path: Path, fmt: str) -> str:
    """``csv``, ``jsonl`` or ``parquet``: the configured format, or the file's ending when it is ``auto``."""
    if fmt != "auto":
        return fmt
    if path.suffix.lower() in SUFFIXES["jsonl"]:
        return "jsonl"
    return "parquet" if path.suffix.lower() in SUFFIXES["parquet"] else "csv"


def csv_delimiter(path: Path, delimiter: str) -> str:
    """The configured delimiter, or a tab for a ``.tsv`` file."""
    return "\t" if path.suffix.lower() == ".tsv" else delimiter


def read_rows(path: Path, fmt: str, delimiter: str) -> Iterator[Row | BadRow]:
    """Every record of one file, or a :class:`BadRow` for one that cannot be read (the rest is still read)."""
    try:
        # utf-8-sig: spreadsheet programs start their CSV exports with a byte-order mark.
        with path.open(encoding="utf-8-sig", newline="") as handle:
            if file_format(path, fmt) == "jsonl":
                yield from _jsonl(path, handle)
            else:
                yield from _csv(path, handle, csv_delimiter(path, delimiter))
    except UnicodeDecodeError as exc:
        raise ConnectorError(f"{path}: not UTF-8 text (byte {exc.start})",
                             hint="export the file as UTF-8") from None
    except OSError as exc:
        raise ConnectorError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _csv(path: Path, handle: Any, delimiter: str) -> Iterator[Row | BadRow]:
    reader = csv.reader(handle, delimiter=delimiter)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        return
    start = reader.line_num + 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield BadRow(path, start, None, f"not readable as CSV ({exc})")
            start = reader.line_num + 1
            continue
        line, start = start, reader.line_num + 1
        if not values:
            continue
        if len(values) != len(header):
            column = header[len(values)] if len(values) < len(header) else None
            yield BadRow(path, line, column, f"{len(values)} values where the header has {len(header)} columns")
            continue
        yield Row(path, line, dict(zip(header, values, strict=True)))


def _jsonl(path: Path, handle: Any) -> Iterator[Row | BadRow]:
    for line, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            yield BadRow(path, line, None, f"not JSON ({exc.msg} at character {exc.colno})")
            continue
        if not isinstance(value, dict):
            yield BadRow(path, line, None, "not a JSON object")
            continue
        yield Row(path, line, value)
