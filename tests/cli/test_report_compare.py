"""`clm report --compare A B` gives the before-vs-after comparison in the terminal, in JSON and in HTML
(issue 16: it printed only run B in the terminal and JSON, and counts as "5,000.000")."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from connectors.sandbox.generator import generate
from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits, start_hubspot_sandbox


@pytest.fixture
def two_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, int]]:
    data = generate(300, seed=11)
    server, emulator = start_hubspot_sandbox(data.contact_records(), data.deal_records(),
                                             rate_limits=RateLimits.professional(), search_lag_ms=0)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HUBSPOT_TOKEN", emulator.token)
    assert CliRunner().invoke(cli, ["init", "--crm", "hubspot"]).exit_code == 0
    path = tmp_path / "clm.toml"
    path.write_text(path.read_text().replace('base_url = "https://api.hubapi.com"', f'base_url = "{server.url}"')
                    .replace("requests_per_10s = 100", "requests_per_10s = 190"))
    first = json.loads(CliRunner().invoke(cli, ["sync", "--json"]).stdout)["run_id"]
    _engage(emulator)
    second = json.loads(CliRunner().invoke(cli, ["sync", "--json"]).stdout)["run_id"]
    yield first, second
    server.stop()


def _engage(emulator: HubSpotEmulator) -> None:
    # A campaign: a hundred contacts click and view pages, so their scores and stages move.
    emulator.bulk_edit("contacts", emulator.ids("contacts")[:100], {"hs_email_click": 30,
                                                                   "hs_analytics_num_page_views": 60})


def test_compare_in_the_terminal(two_runs: tuple[int, int]) -> None:
    a, b = two_runs
    result = CliRunner().invoke(cli, ["report", "--compare", str(a), str(b)], terminal_width=120)
    assert result.exit_code == 0, result.output
    assert f"Before vs after: run {a}" in result.output and f"run {b}" in result.output
    assert "contacts in marketing_qualified" in result.output and "churn rate" in result.output
    assert ".000" not in result.output, "counts print whole"


def test_compare_in_json(two_runs: tuple[int, int]) -> None:
    a, b = two_runs
    payload = json.loads(CliRunner().invoke(cli, ["report", "--compare", str(a), str(b), "--json"]).stdout)
    compared = payload["compare"]
    assert (compared["before"], compared["after"]) == (a, b)
    rows = {row["metric"]: row for row in compared["changes"]}
    assert rows["contacts"]["before"] == rows["contacts"]["after"] == 300
    assert rows["contacts"]["text"] == {"before": "300", "after": "300", "change": "+0"}
    moved = [row for key, row in rows.items() if key.startswith("stage_counts.") and row["change"]]
    assert moved, "the campaign moved contacts between stages"
    assert rows["customers.repeat_share"]["text"]["change"].endswith(" pts")


def test_compare_in_html(two_runs: tuple[int, int], tmp_path: Path) -> None:
    a, b = two_runs
    result = CliRunner().invoke(cli, ["report", "--compare", str(a), str(b), "--html", "r.html"])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r.html").read_text()
    assert f"Before vs after: run {a} → run {b}" in page
    assert "<td>contacts</td><td>300</td><td>300</td>" in page and "5,000.000" not in page
    row = page[page.index("<td>churn rate</td>"):].split("</tr>")[0]
    assert row.count("%") == 2 and " pts" in row, "rates as percentages, their change in points"
