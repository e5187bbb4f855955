"""The file connector (``crm.kind = "files"``): an export of any CRM as the CRM.

Pull reads the whole export (contacts and deals, CSV, JSON Lines or Parquet, one file or a folder of them each) through
the ``[files]`` column mapping and diffs it against the export the mirror holds (:mod:`.snapshot`): records
added or changed are sent, records gone are deleted. A row that cannot be used is reported by file, line and
column (every one in ``<output>.bad-rows.csv``, the first ones in the run's problems; a Parquet file counts rows
where a text file counts lines) and the rest proceeds.
Write puts the enrichment into one CSV keyed by the CRM's id (:mod:`.output`).
"""

from __future__ import annotations

import csv
import gc
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from connectors.base import CheckResult, FieldStatus, FieldUpdate, Page, WriteResult
from connectors.files import columns
from connectors.files.output import OutputFile, output_column
from connectors.files.reader import Row, csv_delimiter, export_files, file_format, read_rows
from connectors.files.records import BadRow, MappingError, RecordMapper, bad
from connectors.files.snapshot import Digests, ExportDiff, SnapshotStore, diff, export_digest, record_digest
from core.config import FilesConfig
from core.models import Contact, Deal, FieldSpec, FieldType

#: Records per pulled page: each page is one mirror transaction.
PAGE_SIZE = 5_000
CURSOR_KEY = "files"
_R = TypeVar("_R", Contact, Deal)


class FilesConnector:
    """Reads exports, writes the enrichment file."""

    name = "files"

    def __init__(self, config: FilesConfig, *, base: Path, snapshots: Path, owned_fields: Sequence[FieldSpec] = (),
                 contact_properties: Mapping[str, FieldType] | None = None,
                 deal_properties: Mapping[str, FieldType] | None = None) -> None:
        """``base``: the folder relative paths are taken from (the configuration's); ``snapshots``: where the
        last export's fingerprints are kept (next to the state file)."""
        self.config = config
        self.batch_size = config.batch_size
        self.base = base
        self.contacts_path = None if config.contacts is None else base / config.contacts
        self.deals_path = None if config.deals is None else base / config.deals
        self.output = OutputFile(base / config.output, owned_fields, config.output_format)
        self.bad_rows_path = self.output.path.with_name(self.output.path.name + ".bad-rows.csv")
        self.snapshots = SnapshotStore(snapshots)
        self.mapper = RecordMapper(config, contact_properties or {}, deal_properties or {})
        self.last_diff: ExportDiff | None = None
        self.last_bad_rows: list[BadRow] = []
        self._columns: dict[str, set[str]] = {"contacts": set(), "deals": set()}
        self._export: tuple[object, tuple[list[Contact], list[Deal], list[BadRow]]] | None = None
        self.deadline: float | None = None
        """Unused: reading and writing files never waits on a CRM."""

    def crm_field_name(self, logical: str) -> str:
        """Our field's column in the output file."""
        return output_column(logical, self.config.output_format)

    def crm_properties(self, object_type: str) -> dict[str, str]:
        """The configured properties whose column is in the export, and every column under its own name (so a
        misspelled mapping is answered with the column meant): name -> ``column``.

        Reads the export once; the pull that follows uses the same reading unless a file changed meanwhile.
        """
        self._cached_read()
        kind, mapped = (("contacts", self.mapper.contact_properties) if object_type == "contact"
                        else ("deals", self.mapper.deal_properties))
        columns = self._columns[kind]
        found = {name: "column" for name, (column, _) in mapped.items() if column in columns}
        return {**{column: "column" for column in columns}, **found}

    def _cached_read(self) -> tuple[list[Contact], list[Deal], list[BadRow]]:
        signature = self._signature()
        if self._export is None or self._export[0] != signature:
            self._export = (signature, self.read())
        return self._export[1]

    def _signature(self) -> list[tuple[str, int, int]]:
        """Each export file with its modification time and size: a changed file is read again."""
        out = []
        for what, path in (("contacts", self.contacts_path), ("deals", self.deals_path)):
            if path is not None:
                for file in export_files(path, self.config.format, what):
                    stat = file.stat()
                    out.append((str(file), stat.st_mtime_ns, stat.st_size))
        return out

    def read(self) -> tuple[list[Contact], list[Deal], list[BadRow]]:
        """The whole export as records, and the rows left out."""
        self._columns = {"contacts": set(), "deals": set()}
        self.mapper.read_at = datetime.now(UTC)
        bad_rows: list[BadRow] = []
        with _no_cycle_collection():
            contacts = (self._records(self.contacts_path, "contacts", self.mapper.contact, bad_rows)
                        if self.contacts_path is not None else [])
            deals = self._records(self.deals_path, "deals", self.mapper.deal, bad_rows) if self.deals_path else []
        if self.contacts_path is None:
            contacts = _contacts_of(deals)
        return contacts, deals, bad_rows

    def pull(self, cursor: Mapping[str, str] | None) -> Iterator[Page]:
        """Everything (no cursor, or its snapshot is gone), else what changed since the export the cursor names."""
        contacts, deals, bad_rows = self._cached_read()
        self._export = None
        self.last_bad_rows = bad_rows
        self._report_bad_rows(bad_rows)
        digests: dict[str, Digests] = {"contacts": {c.id: record_digest(c) for c in contacts},
                                       "deals": {d.id: record_digest(d) for d in deals}}
        digest = export_digest(digests)
        previous = (cursor or {}).get(CURSOR_KEY)
        baseline = self.snapshots.load(previous) if previous else None
        if previous and baseline is not None:
            self.snapshots.keep_only(previous)
        changes = diff(baseline or {}, digests)
        self.last_diff = changes
        if baseline is not None:
            wanted = {*changes.added["contacts"], *changes.changed["contacts"]}
            contacts = [c for c in contacts if c.id in wanted]
            wanted = {*changes.added["deals"], *changes.changed["deals"]}
            deals = [d for d in deals if d.id in wanted]
        if digest != previous or baseline is None:
            self.snapshots.save(digest, digests)
        # A contact gone from the CRM takes our values with it, as in a CRM, whether the diff or a sweep finds it
        # gone (a stop after this re-diffs the same export, so the removal is repeated, never lost).
        self.output.retain(digests["contacts"].keys())
        pages = list(_pages(contacts, deals))
        pages[0].problems = [str(row) for row in bad_rows]
        if bad_rows:
            rows = "1 row" if len(bad_rows) == 1 else f"{len(bad_rows)} rows"
            pages[0].problems.insert(0, f"{rows} of the export skipped; every one is listed in {self.bad_rows_path}")
        last = pages[-1]
        last.deleted_contact_ids = changes.removed["contacts"]
        last.deleted_deal_ids = changes.removed["deals"]
        if previous and baseline is None:
            # The baseline is gone (snapshots deleted): a reconciling sweep instead, so deletions are not missed.
            last.live_contact_ids, last.live_deal_ids = list(digests["contacts"]), list(digests["deals"])
        last.cursor = {CURSOR_KEY: digest}
        yield from pages
        self.snapshots.keep_only(digest)

    def ensure_fields(self, specs: Sequence[FieldSpec]) -> list[FieldStatus]:
        """A file has no field definitions: every field is a column, created with the file."""
        return [FieldStatus(s.name, self.crm_field_name(s.name), "exists") for s in specs]

    def write(self, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        """Put one batch into the output file (rewritten atomically); every record is written."""
        self.output.upsert({u.record_id: u.values for u in updates})
        return [WriteResult(u.record_id, True) for u in updates]

    def check(self, specs: Sequence[FieldSpec]) -> list[CheckResult]:
        """The exports exist and the output's folder can be written."""
        results = []
        for what, path in (("contacts", self.contacts_path), ("deals", self.deals_path)):
            if path is None:
                continue
            ok = path.exists()
            results.append(CheckResult(f"files.{what}", ok, str(path),
                                       "" if ok else "export the records there or fix the path"))
        folder = self.output.path.parent
        writable = os.access(folder if folder.exists() else self.base, os.W_OK)
        results.append(CheckResult("files.output", writable, str(self.output.path),
                                   "" if writable else "choose an output path in a folder you can write to"))
        return results

    def _records(self, path: Path, what: str, build: Callable[[Mapping[str, Any]], _R],
                 bad_rows: list[BadRow]) -> list[_R]:
        """The records of every file of one export; a repeated id keeps its first row and reports the others."""
        out: list[_R] = []
        seen: dict[str, tuple[Path, int, str]] = {}
        id_column = self.config.contact_columns.id if what == "contacts" else self.config.deal_columns.id
        for file in export_files(path, self.config.format, what):
            unit = columns.UNIT if file_format(file, self.config.format) == "parquet" else "line"
            refused: list[BadRow] = []
            for item in self._file_records(file, what, build):
                if isinstance(item, BadRow):
                    refused.append(item)
                    continue
                position, record = item
                if record.id in seen:
                    where, first, first_unit = seen[record.id]
                    refused.append(BadRow(file, position, id_column,
                                          f"id {record.id!r} is already on {first_unit} {first} of {where.name}",
                                          unit))
                    continue
                seen[record.id] = (file, position, unit)
                out.append(record)
            # In file order, however the file was read (column-wise, repeated ids are found after the values).
            bad_rows.extend(sorted(refused, key=lambda row: row.line))
        return out

    def _file_records(self, file: Path, what: str,
                      build: Callable[[Mapping[str, Any]], _R]) -> Iterator[tuple[int, _R] | BadRow]:
        """One file's records with their line (row, for Parquet), and its rows that cannot be used.

        Parquet, and CSV whose lines are its rows, are read column-wise (:mod:`.columns`, several times faster);
        other CSV and JSON Lines row by row, with the same checks."""
        fmt = file_format(file, self.config.format)
        table, first, unit = None, 1, columns.UNIT
        if fmt == "parquet":
            table = columns.read_table(file)
        elif fmt == "csv":
            # The header is line 1, so the first row is line 2.
            table, first, unit = columns.csv_table(file, csv_delimiter(file, self.config.delimiter)), 2, "line"
        if table is not None:
            self._columns[what].update(table.column_names)
            # The two generators yield the record type asked for (contacts for contacts, deals for deals).
            records = (columns.contacts(table, file, self.mapper, first, unit) if what == "contacts"
                       else columns.deals(table, file, self.mapper, first, unit))
            yield from records  # type: ignore[misc]
            return
        for row in read_rows(file, self.config.format, self.config.delimiter):
            if isinstance(row, BadRow):
                yield row
                continue
            self._columns[what].update(row.values)
            record = self._build(row, build)
            yield record if isinstance(record, BadRow) else (row.line, record)

    @staticmethod
    def _build(row: Row, build: Callable[[Mapping[str, Any]], _R]) -> _R | BadRow:
        try:
            return build(row.values)
        except (MappingError, ValueError, TypeError) as exc:
            column, reason = bad(exc)
            return BadRow(row.file, row.line, column, reason)

    def _report_bad_rows(self, bad_rows: Sequence[BadRow]) -> None:
        """Every skipped row in a CSV next to the output (file, line, column, reason); none: the file is removed."""
        if not bad_rows:
            self.bad_rows_path.unlink(missing_ok=True)
            return
        self.bad_rows_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.bad_rows_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file", "line", "column", "reason"])
            writer.writerows([str(r.file), r.line, r.column or "", r.reason] for r in bad_rows)


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector paused while an export is read.

    Reading builds millions of records (dicts, tuples, models) and keeps them all, none in a reference cycle: each
    collection the allocations set off walks every record built so far, for nothing: at 100,000 contacts and
    300,000 deals that was a third of the reading's CPU time (5.5 s against 3.5 s). Freed objects are still freed
    at once (by reference counting), and the collector runs again when the reading is done.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _pages(contacts: Sequence[Contact], deals: Sequence[Deal]) -> Iterator[Page]:
    # Contacts first: a deal's contacts are then in the mirror when the deal arrives.
    for i in range(0, len(contacts), PAGE_SIZE):
        yield Page(contacts=list(contacts[i:i + PAGE_SIZE]))
    for i in range(0, len(deals), PAGE_SIZE):
        yield Page(deals=list(deals[i:i + PAGE_SIZE]))
    if not contacts and not deals:
        yield Page()


def _contacts_of(deals: Sequence[Deal]) -> list[Contact]:
    """Contacts of a transaction log without a contacts export: each deal's contacts, created on their first deal."""
    first: dict[str, datetime] = {}
    for deal in deals:
        for contact_id in deal.contact_ids:
            moment = deal.closed_at or deal.created_at
            if contact_id not in first or moment < first[contact_id]:
                first[contact_id] = moment
    return [Contact(id=cid, created_at=moment) for cid, moment in sorted(first.items())]
