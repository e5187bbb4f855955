"""The file connector through the normal runner: bad rows, incremental diffs, the output file and its shapes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cli.wiring import build_connector
from connectors.files import FilesConnector
from core.engine import enrich
from core.errors import ConfigError, ConnectorError
from sync.planner import same
from sync.runner import SyncOptions, output_specs
from tests.connectors.files.conftest import files_config, read_csv, runner, write_csv

AS_OF = datetime(2025, 6, 30, tzinfo=UTC)
#: Every contact property the starter configuration reads, as columns of the export (a column named after the
#: property; ``numemployees`` is mapped from "Employees" to show the mapping).
STARTER = files_config(Path("/nonexistent"), {"deals": "x.csv"})
PROPERTIES = sorted(STARTER.data.contact_properties)
CONTACT_HEADER = ["Contact ID", "E-mail", "Created",
                  *("Employees" if name == "numemployees" else name for name in PROPERTIES)]
MEDDIC = sorted(v for v in STARTER.meddic.model_dump().values() if v)
DEAL_HEADER = ["Deal ID", "Contacts", "Amount", "Currency", "Stage", "Closed", "Opened", *MEDDIC]


def value(name: str, i: int) -> Any:
    kind = STARTER.data.contact_properties[name].value
    if name == "jobtitle":
        return "VP Sales" if i % 3 else "Engineer"
    if kind == "number":
        return 10 * (i % 50) if name == "numemployees" else i % 7
    if kind == "datetime":
        return f"2025-0{1 + i % 6}-15" if i % 4 else ""
    if kind == "bool":
        return "true" if i % 11 == 0 else "false"
    return ["software", "retail", "finance"][i % 3]


def contacts(n: int, start: int = 0) -> list[list[Any]]:
    return [[f"c{i}", f"p{i}@example.com", f"2024-0{1 + i % 9}-1{i % 10}", *(value(p, i) for p in PROPERTIES)]
            for i in range(start, start + n)]


def deals(n_contacts: int) -> list[list[Any]]:
    out = []
    for i in range(n_contacts):
        for k in range(i % 4):  # 0 to 3 purchases each
            out.append([f"d{i}-{k}", f"c{i}", 100 + 17 * ((i + k) % 9), "USD", "closedwon",
                        f"2024-{1 + (i + 3 * k) % 12:02d}-{1 + k * 7:02d}T10:00:00Z", "2023-12-01",
                        *([""] * len(MEDDIC))])
        if i % 5 == 0:
            out.append([f"o{i}", f"c{i};c{(i + 1) % n_contacts}", 500, "USD", "negotiation", "", "2025-05-01",
                        *("yes" if (i + j) % 2 else "" for j in range(len(MEDDIC)))])
    return out


def setup(tmp_path: Path, n: int = 300, **files: Any) -> tuple[Path, Path, dict[str, Any]]:
    c = write_csv(tmp_path / "exports" / "contacts.csv", CONTACT_HEADER, contacts(n))
    d = write_csv(tmp_path / "exports" / "deals.csv", DEAL_HEADER, deals(n))
    mapping = {
        "contacts": str(c), "deals": str(d),
        "contact_columns": {"id": "Contact ID", "email": "E-mail", "created": "Created"},
        "deal_columns": {"id": "Deal ID", "contact_ids": "Contacts", "amount": "Amount", "currency": "Currency",
                         "status": "Stage", "closed": "Closed", "created": "Opened"},
        "contact_properties": {"numemployees": "Employees"}, "deal_properties": {"dealstage": "Stage"},
        **files,
    }
    return c, d, mapping


def output(tmp_path: Path) -> dict[str, dict[str, str]]:
    return {row["id"]: row for row in read_csv(tmp_path / "out" / "enrichment.csv")}


def test_the_output_file_holds_what_enrich_computes_and_a_second_run_writes_nothing(tmp_path: Path) -> None:
    _, _, mapping = setup(tmp_path)
    config = files_config(tmp_path, mapping)
    first = runner(config).run(SyncOptions(as_of=AS_OF))
    assert first.status == "ok" and first.problems == []
    assert first.pulled_contacts == 300 and first.written_records == 300
    connector = build_connector(config)
    assert isinstance(connector, FilesConnector)
    people, sales, _ = connector.read()
    direct = {r.contact_id: r.model_dump() for r in enrich(people, sales, config, AS_OF).records()}
    rows = output(tmp_path)
    assert set(rows) == set(direct)
    for spec in output_specs(config):
        if spec.name != "computed_at":
            assert all(same(spec, rows[i][spec.name], direct[i][spec.name], 1e-6) for i in direct), spec.name
    second = runner(config).run(SyncOptions(as_of=AS_OF))
    assert second.mode == "incremental" and second.pulled_contacts == second.pulled_deals == 0
    assert second.planned_records == 0 and second.write_calls == 0


def test_an_incremental_run_reads_what_changed_and_deletes_what_disappeared(tmp_path: Path) -> None:
    c, d, mapping = setup(tmp_path)
    config = files_config(tmp_path, mapping)
    runner(config).run(SyncOptions(as_of=AS_OF))
    assert "c7" in output(tmp_path)
    # The next export: c7 and its deals gone, c1's job title changed, c3's deal repriced, d6-1 deleted, one new
    # contact with a purchase.
    people = [row for row in contacts(300) if row[0] != "c7"] + contacts(1, start=300)
    title = CONTACT_HEADER.index("jobtitle")
    people = [[*row[:title], "Chief Revenue Officer", *row[title + 1:]] if row[0] == "c1" else row
              for row in people]
    sales = [row for row in deals(300) if "c7" not in row[1].split(";") and row[0] != "d6-1"]
    sales = [[row[0], row[1], 9_999, *row[3:]] if row[0] == "d3-0" else row for row in sales]
    sales.append(["d300-0", "c300", 250, "USD", "closedwon", "2025-06-01T00:00:00Z", "2025-05-20",
                  *([""] * len(MEDDIC))])
    write_csv(c, CONTACT_HEADER, people)
    write_csv(d, DEAL_HEADER, sales)
    connector = build_connector(config)
    run = runner(config)
    summary = run.run(SyncOptions(as_of=AS_OF))
    assert summary.mode == "incremental" and summary.status == "ok" and summary.problems == []
    assert summary.pulled_contacts == 2  # c1 changed, c300 added
    assert summary.pulled_deals == 2  # d3-0 changed, d300-0 added
    removed = {row[0] for row in deals(300) if "c7" in row[1].split(";")} | {"d6-1"}
    assert summary.deleted == 1 + len(removed)
    assert isinstance(run.connector, FilesConnector) and run.connector.last_diff is not None
    assert run.connector.last_diff.counts() == {
        "added": {"contacts": 1, "deals": 1}, "changed": {"contacts": 1, "deals": 1},
        "removed": {"contacts": 1, "deals": len(removed)}}
    # The mirror now equals the new export read whole, and the output lost the contact that is gone.
    state = run.state
    people_now, deals_now, _ = connector.read()
    assert {x.id: x.properties for x in state.contacts()} == {x.id: x.properties for x in people_now}
    assert {x.id: (x.amount, x.contact_ids) for x in state.deals()} == {
        x.id: (x.amount, x.contact_ids) for x in deals_now}
    rows = output(tmp_path)
    assert "c7" not in rows and "c300" in rows and len(rows) == 300
    assert float(rows["c300"]["historical_value"]) == pytest.approx(250)


def test_malformed_rows_are_each_reported_by_file_line_and_column_and_the_rest_proceeds(tmp_path: Path) -> None:
    c, d, mapping = setup(tmp_path, n=200)
    good_contacts, good_deals = contacts(200), deals(200)
    broken_contacts: list[list[Any]] = []
    expected: list[tuple[str, int, str]] = []  # file, line, column
    columns = ["Created", "Employees", CONTACT_HEADER[5], "Contact ID", "Created"]
    for k in range(50):
        kind = k % 5
        row = [f"x{k}", *contacts(1, start=1000 + k)[0][1:]]
        if kind == 0:
            row[2] = "31/31/2024"
        elif kind == 1:
            row[CONTACT_HEADER.index("Employees")] = "many"
        elif kind == 2:
            row = row[:5]  # values missing from the sixth column on
        elif kind == 3:
            row[0] = ""
        else:
            row[2] = ""
        broken_contacts.append(row)
    lines = good_contacts + broken_contacts
    write_csv(c, CONTACT_HEADER, lines)
    for k in range(50):
        expected.append(("contacts.csv", 2 + 200 + k, columns[k % 5]))
    # Deals as JSON Lines this time, with 50 bad ones among the good.
    d.unlink()
    jsonl = tmp_path / "exports" / "deals.jsonl"
    records: list[dict[str, Any]] = [dict(zip(DEAL_HEADER, row, strict=True)) for row in good_deals]
    for record in records:  # JSON Lines exports list several contacts as a JSON list
        record["Contacts"] = record["Contacts"].split(";")
    bad_deals: list[str] = []
    for k in range(50):
        kind = k % 5
        record = {"Deal ID": f"bad{k}", "Contacts": "c1", "Amount": 10, "Currency": "USD", "Stage": "closedwon",
                  "Closed": "2024-05-05", "Opened": "2024-05-01"}
        if kind == 0:
            record["Amount"] = "ten dollars"
        elif kind == 1:
            record["Closed"] = ""  # won without a close date
        elif kind == 2:
            record["Opened"] = "yesterday"
        elif kind == 3:
            record["Deal ID"] = "d1-0"  # repeated id
        bad_deals.append("{not json" if kind == 4 else json.dumps(record))
    texts = [json.dumps(r) for r in records] + bad_deals
    jsonl.write_text("\n".join(texts) + "\n")
    for k in range(50):
        column = ["Amount", "Closed", "Opened", "Deal ID", ""][k % 5]
        expected.append(("deals.jsonl", len(records) + 1 + k, column))
    config = files_config(tmp_path, {**mapping, "deals": str(jsonl)})
    summary = runner(config).run(SyncOptions(as_of=AS_OF))
    assert summary.status == "ok"
    assert summary.pulled_contacts == 200 and summary.pulled_deals == len(records)
    shared = next(d for d in runner(config).state.deals() if d.id == "o5")
    assert shared.contact_ids == ("c5", "c6")
    report = read_csv(tmp_path / "out" / "enrichment.csv.bad-rows.csv")
    assert sorted((Path(r["file"]).name, int(r["line"]), r["column"]) for r in report) == sorted(expected)
    assert all(r["reason"] for r in report)
    assert summary.problems[0].startswith("100 rows of the export skipped")
    assert "contacts.csv, line 202, column Created:" in summary.problems[1]
    assert "is not a readable date" in summary.problems[1]


def test_import_shapes_for_hubspot_and_salesforce(tmp_path: Path) -> None:
    _, _, mapping = setup(tmp_path, n=40)
    for shape, key, stage, since in (("hubspot", "Record ID", "clm_stage", "clm_stage_since"),
                                     ("salesforce", "Id", "CLM_Stage__c", "CLM_Stage_Since__c")):
        out = tmp_path / f"{shape}.csv"
        config = files_config(tmp_path / shape, {**mapping, "output": str(out), "output_format": shape})
        assert runner(config).run(SyncOptions(as_of=AS_OF)).written_records == 40
        rows = read_csv(out)
        assert next(iter(rows[0])) == key and stage in rows[0]
        value = rows[0][since]
        if shape == "hubspot":
            assert value.isdigit() and int(value) > 1_600_000_000_000  # epoch milliseconds
        else:
            assert datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")


def test_lost_snapshots_make_the_next_pull_a_reconciling_sweep(tmp_path: Path) -> None:
    c, _, mapping = setup(tmp_path, n=50)
    config = files_config(tmp_path, mapping)
    runner(config).run(SyncOptions(as_of=AS_OF))
    for path in (tmp_path / "state.db.exports").iterdir():
        path.unlink()
    write_csv(c, CONTACT_HEADER, contacts(49))  # c49 gone
    summary = runner(config).run(SyncOptions(as_of=AS_OF))
    assert summary.status == "ok" and summary.mirror["contacts"] == 49
    assert "c49" not in output(tmp_path)


def test_configuration_mistakes_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"files.*needs contacts or deals"):
        files_config(tmp_path, {})
    _, _, mapping = setup(tmp_path, n=5)
    config = files_config(tmp_path, {**mapping, "contacts": str(tmp_path / "missing.csv")})
    with pytest.raises(ConnectorError, match=r"files.contacts: .*missing.csv does not exist"):
        runner(config).run(SyncOptions(as_of=AS_OF))


def test_written_means_in_the_file_so_a_run_that_fails_mid_write_resumes_without_rewriting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from connectors.files.output import OutputFile

    _, _, mapping = setup(tmp_path, n=300)
    config = files_config(tmp_path, {**mapping, "batch_size": 50})
    saves: list[int] = []
    real_save = OutputFile._save

    def failing_save(self: OutputFile, lines: Any) -> None:
        saves.append(len(lines))
        if len(saves) == 3:
            raise ConnectorError("files.output: disk full (test)")
        real_save(self, lines)

    monkeypatch.setattr(OutputFile, "_save", failing_save)
    with pytest.raises(ConnectorError):
        runner(config).run(SyncOptions(as_of=AS_OF))
    assert len(output(tmp_path)) == 100
    monkeypatch.setattr(OutputFile, "_save", real_save)
    resumed = runner(config).run(SyncOptions(as_of=AS_OF))
    assert resumed.status == "ok" and resumed.written_records == 200
    assert len(output(tmp_path)) == 300
    assert runner(config).run(SyncOptions(as_of=AS_OF)).planned_records == 0


def test_a_full_run_rewrites_a_deleted_output_file(tmp_path: Path) -> None:
    _, _, mapping = setup(tmp_path, n=60)
    config = files_config(tmp_path, mapping)
    runner(config).run(SyncOptions(as_of=AS_OF))
    before = output(tmp_path)
    (tmp_path / "out" / "enrichment.csv").unlink()
    assert runner(config).run(SyncOptions(as_of=AS_OF)).written_records == 0  # nothing changed in the export
    summary = runner(config).run(SyncOptions(as_of=AS_OF, full=True))
    assert summary.written_records == 60
    assert {k: {f: v for f, v in row.items() if f != "computed_at"} for k, row in output(tmp_path).items()} == {
        k: {f: v for f, v in row.items() if f != "computed_at"} for k, row in before.items()}


def test_a_property_whose_column_is_not_in_the_export_is_named_and_its_scores_withheld(tmp_path: Path) -> None:
    _, _, mapping = setup(tmp_path, n=30)
    config = files_config(tmp_path, {**mapping, "contact_properties": {"numemployees": "Employes"}})
    summary = runner(config).run(SyncOptions(as_of=AS_OF))
    assert summary.status == "ok"
    assert summary.problems[0].startswith("data.contact_properties.numemployees: the CRM has no contact property")
    assert "lead_score" in summary.problems[0]
    assert all(row["lead_score"] == "" for row in output(tmp_path).values())


def test_records_built_from_checked_values_are_what_validation_builds(tmp_path: Path) -> None:
    # The reading skips pydantic's validation and model_construct (records.py): every field must still be set,
    # each exactly as the validated model holds it, and the models must still copy.
    _, _, mapping = setup(tmp_path, n=30)
    connector = build_connector(files_config(tmp_path, mapping))
    assert isinstance(connector, FilesConnector)
    people, sales, _ = connector.read()
    for record in [*people, *sales]:
        validated = type(record).model_validate(record.model_dump())
        assert validated == record and record.model_fields_set == set(type(record).model_fields)
        assert record.model_copy(update={"archived": True}).archived and not record.archived


def test_csv_read_column_wise_gives_the_records_and_reports_of_the_row_wise_reading(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from connectors.files import columns

    c, d, mapping = setup(tmp_path, n=120)
    people = contacts(120)
    created, employees = CONTACT_HEADER.index("Created"), CONTACT_HEADER.index("Employees")
    people[3][created] = "31/31/2024"
    people[5][employees] = "many"
    people[8][0] = "  "
    people[9][0] = " c1 "  # padded: the id c1, a second time
    people[10][created] = ""
    people[11][1] = "a, b <x@example.com>"  # a quoted delimiter
    write_csv(c, CONTACT_HEADER, people)
    c.write_bytes(b"\xef\xbb\xbf" + c.read_bytes())  # a spreadsheet's byte-order mark
    sales = deals(120)
    sales[1][2] = "ten dollars"
    sales[2][5] = ""  # won without a close date
    sales[4][6] = sales[4][5] = ""  # neither opened nor closed
    sales[6][6] = "yesterday"
    write_csv(d, DEAL_HEADER, sales)
    config = files_config(tmp_path, mapping)
    assert columns.csv_table(c, ",") is not None and columns.csv_table(d, ",") is not None

    def reading() -> tuple[Any, Any, list[str]]:
        connector = build_connector(config)
        assert isinstance(connector, FilesConnector)
        people, sales, bad = connector.read()
        strip = {"updated_at"}
        return ([x.model_dump(exclude=strip) for x in people], [x.model_dump(exclude=strip) for x in sales],
                [str(row) for row in bad])

    column_wise = reading()
    monkeypatch.setattr(columns, "csv_table", lambda path, delimiter: None)
    row_wise = reading()
    assert column_wise == row_wise
    assert column_wise[2] == [
        "contacts.csv, line 5, column Created: '31/31/2024' is not a readable date (write ISO 8601, epoch "
        "milliseconds or set files.date_format); the row is skipped",
        "contacts.csv, line 7, column Employees: 'many' is not a number; the row is skipped",
        "contacts.csv, line 10, column Contact ID: no id; the row is skipped",
        "contacts.csv, line 11, column Contact ID: id 'c1' is already on line 3 of contacts.csv; the row is skipped",
        "contacts.csv, line 12, column Created: no date; the row is skipped",
        "deals.csv, line 3, column Amount: 'ten dollars' is not a number; the row is skipped",
        "deals.csv, line 4, column Closed: a won deal needs a close date (it is the purchase date); the row is "
        "skipped",
        "deals.csv, line 6, column Opened: no creation or close date; the row is skipped",
        "deals.csv, line 8, column Opened: 'yesterday' is not a readable date (write ISO 8601, epoch milliseconds "
        "or set files.date_format); the row is skipped"]
    assert next(x for x in column_wise[0] if x["id"] == "c11")["email"] == "a, b <x@example.com>"


def test_a_csv_whose_rows_span_lines_is_read_row_wise_with_the_right_lines(tmp_path: Path) -> None:
    from connectors.files import columns

    c, _, mapping = setup(tmp_path, n=20)
    people = contacts(20)
    title = CONTACT_HEADER.index("jobtitle")
    people[2][title] = "VP\nSales"  # a quoted line break: row 3 is on lines 4 and 5
    people[6][CONTACT_HEADER.index("Created")] = "soon"
    write_csv(c, CONTACT_HEADER, people)
    assert columns.csv_table(c, ",") is None
    connector = build_connector(files_config(tmp_path, mapping))
    assert isinstance(connector, FilesConnector)
    read, _, bad = connector.read()
    assert [(row.line, row.column) for row in bad] == [(9, "Created")]
    assert next(x for x in read if x.id == "c2").properties["jobtitle"] == "VP\nSales"


def test_a_parquet_output_holds_typed_columns_equal_to_what_enrich_computes(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, _, mapping = setup(tmp_path)
    out = tmp_path / "out" / "enrichment.parquet"
    config = files_config(tmp_path, {**mapping, "output": str(out)})
    first = runner(config).run(SyncOptions(as_of=AS_OF))
    assert first.status == "ok" and first.written_records == 300
    connector = build_connector(config)
    assert isinstance(connector, FilesConnector)
    people, sales, _ = connector.read()
    direct = {r.contact_id: r.model_dump() for r in enrich(people, sales, config, AS_OF).records()}
    table = pq.read_table(out)
    assert table.schema.field("id").type == pa.string()
    rows = {row["id"]: row for row in table.to_pylist()}
    assert set(rows) == set(direct)
    for spec in output_specs(config):
        if spec.name == "computed_at":
            continue
        kind = table.schema.field(spec.name).type
        assert kind == {"number": pa.float64(), "datetime": pa.timestamp("us", tz="UTC"), "bool": pa.bool_()}.get(
            spec.type.value, pa.string()), spec.name
        assert all(same(spec, rows[i][spec.name], direct[i][spec.name], 1e-6) for i in direct), spec.name
    second = runner(config).run(SyncOptions(as_of=AS_OF))
    assert second.planned_records == 0 and second.write_calls == 0
    assert pq.read_table(out).equals(table), "a run that writes nothing leaves the file as it was"
    # A later export without c7: its row leaves the file, read back from Parquet by a new run; the rest stays.
    write_csv(tmp_path / "exports" / "contacts.csv", CONTACT_HEADER, [r for r in contacts(300) if r[0] != "c7"])
    write_csv(tmp_path / "exports" / "deals.csv", DEAL_HEADER,
              [r for r in deals(300) if "c7" not in r[1].split(";")])
    assert runner(config).run(SyncOptions(as_of=AS_OF)).status == "ok"
    after = {row["id"]: row for row in pq.read_table(out).to_pylist()}
    assert set(after) == set(rows) - {"c7"}
    assert after["c1"]["lead_score"] == rows["c1"]["lead_score"]


def test_parquet_is_refused_for_the_crm_import_shapes(tmp_path: Path) -> None:
    _, _, mapping = setup(tmp_path, n=3)
    with pytest.raises(ConfigError, match="import tools take CSV"):
        files_config(tmp_path, {**mapping, "output": "out.parquet", "output_format": "hubspot"})
