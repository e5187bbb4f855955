"""Parquet exports: typed columns read as they are, the same records and enrichment as the same export in CSV,
bad values named by file, row and column, a folder of parts read as one export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from cli.wiring import build_connector
from connectors.files import FilesConnector
from sync.runner import SyncOptions
from tests.connectors.files.conftest import files_config, read_csv, runner
from tests.connectors.files.test_files_connector import AS_OF, CONTACT_HEADER, setup


def as_parquet(source: Path, target: Path, **columns: pa.Array) -> Path:
    """The CSV as Parquet with the types pyarrow infers (dates, timestamps, integers, booleans), as a tool that
    exports Parquet would type them; ``columns`` replace columns of the same name."""
    table = pcsv.read_csv(source)
    for name, array in columns.items():
        table = table.set_column(table.column_names.index(name), name, array)
    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, target)
    return target


def enrichment(path: Path) -> dict[str, dict[str, str]]:
    """The output file by id, without the time each row was computed."""
    return {row["id"]: {k: v for k, v in row.items() if k != "computed_at"} for row in read_csv(path)}


def records(config: Any) -> tuple[Any, Any, Any]:
    connector = build_connector(config)
    assert isinstance(connector, FilesConnector)
    contacts, deals, bad = connector.read()
    strip = {"updated_at"}
    return ([c.model_dump(exclude=strip) for c in contacts], [d.model_dump(exclude=strip) for d in deals], bad)


def test_a_parquet_export_syncs_exactly_as_the_same_export_in_csv(tmp_path: Path) -> None:
    c, d, mapping = setup(tmp_path / "csv")
    contacts_pq = as_parquet(c, tmp_path / "pq" / "contacts.parquet")
    # A deal's contacts as a Parquet list column (c5 and c6 for the shared open deals), not a separated cell.
    listed = pa.array([cell.split(";") for cell in pcsv.read_csv(d).column("Contacts").to_pylist()],
                      type=pa.list_(pa.string()))
    deals_pq = as_parquet(d, tmp_path / "pq" / "deals.parquet", Contacts=listed)
    typed = pq.read_schema(contacts_pq)
    assert pa.types.is_date32(typed.field("Created").type) and pa.types.is_integer(typed.field("Employees").type)
    assert pa.types.is_timestamp(pq.read_schema(deals_pq).field("Closed").type)

    csv_config = files_config(tmp_path / "csv", mapping)
    pq_config = files_config(tmp_path / "pq", {**mapping, "contacts": str(contacts_pq), "deals": str(deals_pq)})
    assert records(pq_config) == records(csv_config)
    from_csv = runner(csv_config).run(SyncOptions(as_of=AS_OF))
    from_pq = runner(pq_config).run(SyncOptions(as_of=AS_OF))
    assert from_pq.status == from_csv.status == "ok" and from_pq.problems == []
    assert (from_pq.pulled_contacts, from_pq.pulled_deals, from_pq.written_records) == (
        from_csv.pulled_contacts, from_csv.pulled_deals, from_csv.written_records) == (300, 510, 300)
    assert enrichment(tmp_path / "pq" / "out" / "enrichment.csv") == enrichment(
        tmp_path / "csv" / "out" / "enrichment.csv")
    again = runner(pq_config).run(SyncOptions(as_of=AS_OF))
    assert again.mode == "incremental" and again.pulled_contacts == again.pulled_deals == again.write_calls == 0


def test_bad_values_in_parquet_are_named_by_file_row_and_column(tmp_path: Path) -> None:
    c, d, mapping = setup(tmp_path, n=20)
    # Text columns as some exports type them, with values no reading accepts, on rows 3, 5, 8 and 9; and a
    # repeated id on row 12.
    created = [f"2024-01-{1 + i:02d}" for i in range(20)]
    created[2] = "31/31/2024"
    employees = [str(10 * i) for i in range(20)]
    employees[4] = "many"
    ids = [f"c{i}" for i in range(20)]
    ids[7] = ""
    ids[11] = "c0"
    created[8] = ""
    contacts_pq = as_parquet(c, tmp_path / "contacts.parquet", Created=pa.array(created),
                             Employees=pa.array(employees), **{"Contact ID": pa.array(ids)})
    table = pcsv.read_csv(d)
    amounts = pa.array(["ten dollars" if i == 1 else str(v) for i, v in enumerate(table.column("Amount").to_pylist())])
    closed = table.column("Closed").to_pylist()
    won_row = next(i for i, stage in enumerate(table.column("Stage").to_pylist()) if stage == "closedwon" and i > 2)
    closed[won_row] = None
    deals_pq = as_parquet(d, tmp_path / "deals.parquet", Amount=amounts,
                          Closed=pa.array(closed, type=table.schema.field("Closed").type))
    config = files_config(tmp_path, {**mapping, "contacts": str(contacts_pq), "deals": str(deals_pq)})
    summary = runner(config).run(SyncOptions(as_of=AS_OF))
    assert summary.status == "ok"
    report = read_csv(tmp_path / "out" / "enrichment.csv.bad-rows.csv")
    assert [(Path(r["file"]).name, int(r["line"]), r["column"]) for r in report] == [
        ("contacts.parquet", 3, "Created"), ("contacts.parquet", 5, "Employees"), ("contacts.parquet", 8, "Contact ID"),
        ("contacts.parquet", 9, "Created"), ("contacts.parquet", 12, "Contact ID"),
        ("deals.parquet", 2, "Amount"), ("deals.parquet", won_row + 1, "Closed")]
    reasons = [r["reason"] for r in report]
    assert "is not a readable date" in reasons[0] and "'many' is not a number" in reasons[1]
    assert reasons[2] == "no id" and reasons[3] == "no date"
    assert reasons[4] == "id 'c0' is already on row 1 of contacts.parquet"
    assert "'ten dollars' is not a number" in reasons[5] and "a won deal needs a close date" in reasons[6]
    assert summary.problems[0].startswith("7 rows of the export skipped")
    assert summary.problems[1].startswith("contacts.parquet, row 3, column Created: '31/31/2024' is not a readable")
    assert summary.pulled_contacts == 15 and summary.mirror["contacts"] == 15


def test_a_folder_of_parquet_parts_is_one_export(tmp_path: Path) -> None:
    c, d, mapping = setup(tmp_path / "csv")
    whole = pcsv.read_csv(c)
    parts = tmp_path / "pq" / "contacts"
    parts.mkdir(parents=True)
    for k, start in enumerate(range(0, whole.num_rows, 120)):
        pq.write_table(whole.slice(start, 120), parts / f"part-{k}.parquet")
    deals_pq = as_parquet(d, tmp_path / "pq" / "deals" / "part-0.parquet")
    (parts / "notes.txt").write_text("not part of a Parquet export\n")
    csv_config = files_config(tmp_path / "csv", mapping)
    pq_config = files_config(tmp_path / "pq", {**mapping, "contacts": str(parts), "deals": str(deals_pq.parent),
                                               "format": "parquet"})
    assert records(pq_config) == records(csv_config)
    runner(csv_config).run(SyncOptions(as_of=AS_OF))
    summary = runner(pq_config).run(SyncOptions(as_of=AS_OF))
    assert summary.status == "ok" and summary.pulled_contacts == 300
    assert enrichment(tmp_path / "pq" / "out" / "enrichment.csv") == enrichment(
        tmp_path / "csv" / "out" / "enrichment.csv")
    # A contact repeated in a later part keeps its first row and names where that is.
    pq.write_table(whole.slice(5, 1), parts / "part-9.parquet")
    _, _, bad = records(pq_config)
    assert [str(row) for row in bad] == [
        f"part-9.parquet, row 1, column {CONTACT_HEADER[0]}: id 'c5' is already on row 6 of part-0.parquet; "
        "the row is skipped"]
