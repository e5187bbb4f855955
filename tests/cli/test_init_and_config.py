"""`clm --help`, `clm init` and `clm config check` as a user runs them."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from click.testing import CliRunner

from cli.main import cli

REPO = Path(__file__).resolve().parents[2]


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("init", "config"):
        assert command in result.output


def test_init_writes_a_valid_starter_for_each_crm(tmp_path: Path) -> None:
    runner = CliRunner()
    for crm in ("hubspot", "salesforce", "files"):
        path = tmp_path / f"{crm}.toml"
        result = runner.invoke(cli, ["init", "--crm", crm, "--path", str(path)])
        assert result.exit_code == 0, result.output
        assert tomllib.loads(path.read_text())["crm"]["kind"] == crm
        check = runner.invoke(cli, ["config", "check", str(path)])
        assert check.exit_code == 0, check.output
        # The example shipped in examples/ is exactly what init writes, so the two cannot drift.
        assert path.read_text() == (REPO / "examples" / f"{crm}.toml").read_text()


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "clm.toml"
    path.write_text("# mine\n")
    result = CliRunner().invoke(cli, ["init", "--crm", "hubspot", "--path", str(path)])
    assert result.exit_code == 2
    assert "already exists" in result.output and "--force" in result.output
    assert path.read_text() == "# mine\n"


def test_config_check_reports_every_problem_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "clm.toml"
    path.write_text(
        """
[crm]
kind = "hubspot"
colour = "blue"

[data.contact_properties]
numemployees = "number"

[[stages]]
name = "a"
criteria = [{ field = "numemployees", op = "greater", value = 5 }]

[[stages]]
name = "b"
criteria = [{ field = "numemploy", op = "gt", value = 5 }]

[[stages]]
name = "c"
criteria = [{ field = "numemployees", op = "gt", value = "many" }]

[clv]
margin = 2
"""
    )
    result = CliRunner().invoke(cli, ["config", "check", str(path), "--json"])
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    paths = [p["path"] for p in report["files"][0]["problems"]]
    assert sorted(paths) == sorted([
        "crm.colour", "stages[0].criteria[0].op", "stages[1].criteria[0].field",
        "stages[2].criteria[0].value", "clv.margin",
    ])
    text = CliRunner().invoke(cli, ["config", "check", str(path)])
    assert text.exit_code == 2
    assert "stages[0].criteria[0].op: unknown operator 'greater'" in text.output


def test_config_check_on_a_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["config", "check", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "clm init" in result.output
