"""``clm clv holdout``: the model comparison a user runs on a transaction file (the CDNOW table in
bench/RESULTS.md comes from this command)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from tests.core.clv.data import DATA


@pytest.fixture(scope="module")
def cdnow_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CDNOW_sample.txt (master id, sample id, YYYYMMDD, CDs, dollars) as the CSV a CRM export would be."""
    source = DATA / "CDNOW_sample.txt"
    if not source.exists():
        pytest.skip(f"public test data not found: {source}")
    lines = ["customer_id,date,amount"]
    for raw in source.read_text().splitlines():
        _, sample_id, day, _, dollars = raw.split()
        lines.append(f"{sample_id},{day},{dollars}")
    path = tmp_path_factory.mktemp("cdnow") / "cdnow.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_prints_the_cdnow_comparison_for_weeks_40_to_78(cdnow_csv: Path) -> None:
    result = CliRunner().invoke(cli, ["clv", "holdout", "-t", str(cdnow_csv), "--calibration-end", "1997-09-30",
                                      "--holdout-end", "1998-06-30"])
    assert result.exit_code == 0, result.output
    print("\n" + result.output)
    assert "(39 weeks), 2,357 customers, actual 1,882 repeat transactions" in result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.split()}
    assert lines["BG/NBD"].split()[1] == "-9582.4"  # the published BG/NBD optimum
    assert lines["Pareto/NBD"].split()[1] == "-9595.0"
    assert "<- chosen" in result.output


def test_json_has_every_model_with_standard_errors(cdnow_csv: Path) -> None:
    result = CliRunner().invoke(cli, ["clv", "holdout", "-t", str(cdnow_csv), "--calibration-end", "19970930",
                                      "--holdout-end", "19980630", "--criterion", "rmse", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["customers"] == 2357 and payload["actual"] == 1882
    assert set(payload["models"]) == {"bgnbd", "mbgnbd", "pareto_nbd"}
    assert payload["models"]["bgnbd"]["standard_errors"]["r"] == pytest.approx(0.01256, abs=1e-4)
    assert payload["chosen"] in payload["models"] and payload["criterion"] == "rmse"


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("who,when,amount\n1,2024-01-01,5\n", [], "no column 'customer_id', 'date'"),
        ("customer_id,date,amount\n1,2024-01-01,5\n2,yesterday,5\n", [], "line 3, date: 'yesterday' is not a date"),
        ("customer_id,date,amount\n1,2024-01-01,five\n", [], "line 2, amount: 'five' is not a number"),
        ("customer_id,date,amount\n1,2024-01-01,5\n", ["--holdout-end", "2023-01-01"], "must be after"),
    ],
)
def test_bad_input_names_line_and_column(tmp_path: Path, content: str, args: list[str], message: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(content)
    base = ["clv", "holdout", "-t", str(path), "--calibration-end", "2024-06-30", "--holdout-end", "2024-12-31"]
    result = CliRunner().invoke(cli, [*base, *args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
