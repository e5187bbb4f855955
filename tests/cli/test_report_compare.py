"""`clm report --compare A B` gives the before-vs-after comparison and the stage flow (who moved where: a
transition matrix and a flow diagram) in the terminal, in JSON and in HTML (issue 16: it printed only run B in
the terminal and JSON, counts as "5,000.000", "+0.000" while contacts changed stage, and no stage-flow view)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from cli import wiring
from cli.main import cli
from cli.report import GONE, NEW, render_html, stage_flow


def _flow(a: int, b: int) -> dict[str, object]:
    payload = json.loads(CliRunner().invoke(cli, ["report", "--compare", str(a), str(b), "--json"]).stdout)
    flow: dict[str, object] = payload["compare"]["flow"]
    return flow


def test_compare_in_the_terminal(two_runs: tuple[int, int]) -> None:
    a, b = two_runs
    result = CliRunner().invoke(cli, ["report", "--compare", str(a), str(b)], terminal_width=120)
    assert result.exit_code == 0, result.output
    assert f"Before vs after: run {a}" in result.output and f"run {b}" in result.output
    assert "contacts in Marketing qualified" in result.output and "churn rate" in result.output
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
    for key in ("sales.won_amount", "sales.repeat_buyer_share", "customers.retention.retention_rate",
                "customers.retention.churn_rate", "clv.total"):
        assert key in rows, f"the method's before-vs-after metric {key} is compared"


def test_stage_flow_in_json_is_the_runs_moves(two_runs: tuple[int, int]) -> None:
    a, b = two_runs
    flow = _flow(a, b)
    matrix: dict[str, dict[str, int]] = flow["matrix"]  # type: ignore[assignment]
    moves: list[dict[str, object]] = flow["moves"]  # type: ignore[assignment]
    recorded = json.loads(CliRunner().invoke(cli, ["runs", "show", str(b), "--json"]).stdout)["summary"]
    assert {(m["from"], m["to"]): m["contacts"] for m in recorded["stage_moves"]} == \
        {(m["from"], m["to"]): m["contacts"] for m in moves}, "the flow is what run B recorded"
    changed = [m for m in moves if m["from"] is not None and m["to"] is not None]
    assert flow["moved"] == sum(int(m["contacts"]) for m in changed) > 0  # type: ignore[call-overload]
    off_diagonal = sum(n for row, cells in matrix.items() for col, n in cells.items()
                       if row != col and row != NEW and col != GONE)
    assert off_diagonal == flow["moved"]
    after = {row["metric"][len("stage_counts."):]: row["after"] for row in json.loads(CliRunner().invoke(
        cli, ["report", "--compare", str(a), str(b), "--json"]).stdout)["compare"]["changes"]
        if row["metric"].startswith("stage_counts.")}
    for stage, count in after.items():
        assert sum(cells.get(stage, 0) for cells in matrix.values()) == count, f"column {stage} sums to run B"
    assert NEW in matrix and all(GONE in cells for cells in matrix.values())


def test_stage_flow_in_the_terminal(two_runs: tuple[int, int]) -> None:
    a, b = two_runs
    moves = _flow(a, b)["moves"]
    result = CliRunner().invoke(cli, ["report", "--compare", str(a), str(b)], terminal_width=120)
    assert f"Stage flow: run {a} → run {b}" in result.output
    top = moves[0]  # type: ignore[index]
    line = next(ln for ln in result.output.splitlines() if "→" in ln and str(top["contacts"]) in ln
                and "Subscriber" in ln)
    assert "Lead" in line, "the largest move is listed from → to with its count"


def test_compare_in_html(two_runs: tuple[int, int], tmp_path: Path) -> None:
    a, b = two_runs
    page_path = tmp_path / "r.html"
    result = CliRunner().invoke(cli, ["report", "--compare", str(a), str(b), "--html", str(page_path)])
    assert result.exit_code == 0, result.output
    page = page_path.read_text()
    assert f"Before vs after: run {a} → run {b}" in page
    assert "<td>contacts</td><td>300</td><td>300</td>" in page and "5,000.000" not in page
    row = page[page.index("<td>churn rate</td>"):].split("</tr>")[0]
    assert row.count("%") == 2 and " pts" in row, "rates as percentages, their change in points"
    assert '<table class="flow">' in page, "the transition matrix"
    assert re.search(r'<svg class="chart flow"[^>]*aria-label="Stage flow', page), "the flow diagram"
    moved = _flow(a, b)["moved"]
    assert f"{moved} contacts changed stage" in page


def test_compare_takes_the_earlier_run_first(two_runs: tuple[int, int]) -> None:
    a, b = two_runs
    result = CliRunner().invoke(cli, ["report", "--compare", str(b), str(a)])
    assert result.exit_code == 2
    assert "earlier run first" in result.output and f"clm report --compare {a} {b}" in result.output


def test_new_and_removed_contacts_in_the_flow(two_runs: tuple[int, int]) -> None:
    a, b = two_runs
    state = wiring.open_state(wiring.load(Path("clm.toml")))
    try:
        before, after = state.run(a), state.run(b)
    finally:
        state.close()
    moves = [("1", "lead", "marketing_qualified"), ("new-1", None, "subscriber"), ("new-2", None, "subscriber"),
             ("gone-1", "churned", None), ("1", "marketing_qualified", "lead")]
    flow = stage_flow(after, moves)
    assert (flow["moved"], flow["new"], flow["removed"]) == (0, 2, 1), "contact 1 is back where it started"
    assert flow["matrix"][NEW]["subscriber"] == 2 and flow["matrix"]["churned"][GONE] == 1
    page = render_html(after, before, moves)
    diagram = page[page.index('<svg class="chart flow"'):].split("</svg>")[0]
    assert "(new contacts) 2" in diagram and "(removed) 1" in diagram
