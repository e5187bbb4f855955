"""The enrichment file: one row per contact, keyed by the CRM's id, updated in place by each written batch.

Three shapes (``files.output_format``):

- ``csv``: ``id`` and our logical field names; datetimes ISO 8601 in UTC.
- ``hubspot``: what HubSpot's import tool takes to update contacts: a header row whose column names are property
  internal names (knowledge.hubspot.com/import-and-export/set-up-your-import-file: "each column header corresponds
  to a property"), ``Record ID`` as the unique identifier, ``clm_*`` property names as the HubSpot connector names
  them, datetimes as epoch milliseconds (HubSpot's time format for datetime properties,
  developers.hubspot.com/docs/faq/how-should-timestamps-be-formatted-for-hubspots-apis). Our properties must exist
  first (``clm fields ensure`` with a HubSpot configuration).
- ``salesforce``: what Data Loader and ``sf data update bulk`` take: ``Id`` as the first column (the bulk update
  command requires it there), fields by API name (``CLM_Lead_Score__c``), datetimes as
  ``yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`` (developer.salesforce.com/docs/atlas.en-us.dataLoader.meta/dataLoader/
  supported_data_types.htm).

An output named ``*.parquet`` (``csv`` shape only) is written as Parquet through pyarrow, with typed columns: numbers
as float64, datetimes as UTC timestamps, booleans, text; an empty value is null.

"Written" means the row is in the file on disk: each batch rewrites the file to a temporary one, syncs it and
renames it over the old one, so a killed run leaves the file as of its last whole batch, which is exactly what the
state store records as written.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.csvcell import neutralise_cell
from core.errors import ConnectorError
from core.models import FieldSpec, FieldType

ID_COLUMN = {"csv": "id", "hubspot": "Record ID", "salesforce": "Id"}


def output_column(logical: str, output_format: str) -> str:
    """Our field's column name in an output of this shape (``lead_score`` -> ``clm_lead_score``,
    ``CLM_Lead_Score__c``)."""
    if output_format == "hubspot":
        return f"clm_{logical}"
    if output_format == "salesforce":
        parts = [p for p in re.split(r"[^A-Za-z0-9]+", logical) if p]
        return f"CLM_{'_'.join(p[:1].upper() + p[1:] for p in parts)}__c"
    return logical


def format_value(spec: FieldSpec, value: Any, output_format: str) -> str:
    """One of our values as a cell of this output shape."""
    if value is None:
        return ""
    if spec.type is FieldType.DATETIME and isinstance(value, datetime):
        moment = value.astimezone(UTC)
        if output_format == "hubspot":
            return str(int(moment.timestamp() * 1000))
        if output_format == "salesforce":
            return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        return moment.isoformat().replace("+00:00", "Z")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(neutralise_cell(str(value)))


class OutputFile:
    """The enrichment file, kept in memory as one CSV line per contact between batches of a run."""

    def __init__(self, path: Path, specs: Sequence[FieldSpec], output_format: str) -> None:
        self.path = path
        self.format = output_format
        self.specs = list(specs)
        self.by_name = {spec.name: spec for spec in specs}
        self.header = [ID_COLUMN[output_format], *(output_column(s.name, output_format) for s in self.specs)]
        self._lines: dict[str, str] | None = None
        self.parquet = path.suffix.lower() == ".parquet"

    def upsert(self, rows: Mapping[str, Mapping[str, Any]]) -> None:
        """Set these values (logical field names) on these contacts' rows, adding rows for new contacts, and
        replace the file on disk atomically."""
        lines = self._load()
        for record_id, values in rows.items():
            old = lines.get(record_id)
            cells = next(csv.reader([old])) if old is not None else [record_id] + [""] * len(self.specs)
            for i, spec in enumerate(self.specs, start=1):
                if spec.name in values:
                    cells[i] = format_value(spec, values[spec.name], self.format)
            lines[record_id] = _line(cells)
        self._save(lines)

    def retain(self, record_ids: Collection[str]) -> None:
        """Keep only these contacts' rows (the others are gone from the CRM)."""
        if not self.path.exists():
            return
        lines = self._load()
        gone = [rid for rid in lines if rid not in record_ids]
        for rid in gone:
            del lines[rid]
        if gone:
            self._save(lines)

    def rows(self) -> dict[str, dict[str, str]]:
        """The file as it is on disk: per id, column -> cell (tests, ``clm check``)."""
        lines = self._read()
        return {rid: dict(zip(self.header, next(csv.reader([line])), strict=True)) for rid, line in lines.items()}

    def _load(self) -> dict[str, str]:
        if self._lines is None:
            self._lines = self._read()
        return self._lines

    def _read(self) -> dict[str, str]:
        if self.parquet:
            return self._read_parquet()
        try:
            handle = self.path.open(encoding="utf-8", newline="")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConnectorError(f"files.output: cannot read {self.path} ({exc.strerror or exc})") from None
        with handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                return {}
            if header[0] != self.header[0]:
                raise ConnectorError(f"files.output: {self.path} is not an enrichment file of this shape (its first "
                                     f"column is {header[0]!r}, not {self.header[0]!r})",
                                     hint="name another output file, or remove this one to start it afresh")
            index = {name: i for i, name in enumerate(header)}
            out = {}
            for cells in reader:
                if cells:
                    # Columns are re-ordered to today's field list (write_fields may have changed).
                    out[cells[0]] = _line([cells[index[c]] if c in index and index[c] < len(cells) else ""
                                           for c in self.header])
            return out

    def _read_parquet(self) -> dict[str, str]:
        import pyarrow.parquet as pq

        if not self.path.exists():
            return {}
        try:
            table = pq.read_table(self.path)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise ConnectorError(f"files.output: cannot read {self.path} as Parquet ({exc})",
                                 hint="name another output file, or remove this one to start it afresh") from None
        if not table.column_names or table.column_names[0] != self.header[0]:
            raise ConnectorError(f"files.output: {self.path} is not an enrichment file of this shape (its first "
                                 f"column is not {self.header[0]!r})",
                                 hint="name another output file, or remove this one to start it afresh")
        columns = {name: table.column(name).to_pylist() for name in table.column_names}
        ids = columns[self.header[0]]
        cells: list[list[str]] = [[str(rid)] for rid in ids]
        for spec in self.specs:
            # Back to the cells the CSV shape holds, so the in-memory rows are one form whatever the file's.
            values = columns.get(output_column(spec.name, self.format), [None] * len(ids))
            for row, value in zip(cells, values, strict=True):
                row.append(format_value(spec, value, self.format))
        return {row[0]: _line(row) for row in cells}

    def _parquet_table(self, lines: Mapping[str, str]) -> Any:
        import pyarrow as pa

        order = sorted(lines)
        rows = [next(csv.reader([lines[rid]])) for rid in order]
        arrays = [pa.array(order, pa.string())]
        for i, spec in enumerate(self.specs, start=1):
            arrays.append(_typed(spec, [row[i] if i < len(row) else "" for row in rows]))
        return pa.table(arrays, names=self.header)

    def _save(self, lines: Mapping[str, str]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            if self.parquet:
                import pyarrow.parquet as pq

                with os.fdopen(fd, "wb") as raw:
                    pq.write_table(self._parquet_table(lines), raw)
                    raw.flush()
                    os.fsync(raw.fileno())
            else:
                with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                    handle.write(_line(self.header))
                    handle.writelines(lines[rid] for rid in sorted(lines))
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            raise ConnectorError(f"files.output: cannot write {self.path} ({exc.strerror or exc})",
                                 hint="choose an output path in a folder you can write to") from None


def _line(cells: Sequence[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


def _typed(spec: FieldSpec, cells: Sequence[str]) -> Any:
    """One output column as a typed Arrow array, from the cells the CSV shape holds (empty: null)."""
    import pyarrow as pa

    if spec.type is FieldType.NUMBER:
        return pa.array([float(c) if c else None for c in cells], pa.float64())
    if spec.type is FieldType.DATETIME:
        return pa.array([datetime.fromisoformat(c.replace("Z", "+00:00")) if c else None for c in cells],
                        pa.timestamp("us", tz="UTC"))
    if spec.type is FieldType.BOOL:
        return pa.array([c == "true" if c else None for c in cells], pa.bool_())
    return pa.array([c or None for c in cells], pa.string())
