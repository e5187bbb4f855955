"""The single-run report page answers the CLM method's baseline questions (issue 16): the sales funnel apart from
the post-sale states with each rate named for what it is, days per stage from the data's own history and the
whole lifecycle's length, the MQL/SQL thresholds on the score histogram, the grade distribution, churn drawn in a
colour that means it, why P(alive) can rise with silence, and what the run could not write."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import wiring
from cli.main import cli
from cli.report import render_html
from sync.state import RunRecord

ACTIVE_GREEN = "#16a34a"


@pytest.fixture
def run_b(two_runs: tuple[int, int]) -> RunRecord:
    state = wiring.open_state(wiring.load(Path("clm.toml")))
    try:
        return state.run(two_runs[1])
    finally:
        state.close()


def _section(page: str, title: str) -> str:
    """The SVG chart whose title starts with ``title``."""
    found = re.search(r'<svg class="chart[^"]*"[^>]*aria-label="' + re.escape(title) + r'.*?</svg>', page, re.S)
    assert found, f"no chart titled {title!r}"
    return found.group(0)


def test_funnel_apart_from_post_sale_states_with_rates_named(run_b: RunRecord) -> None:
    page = render_html(run_b)
    metrics = run_b.metrics or {}
    funnel = _section(page, "Sales funnel")
    lead = next(s for s in metrics["funnel_stages"] if s["stage"] == "lead")
    assert f"{100 * lead['step_rate']:.1f}% of previous step" in funnel
    assert f"{lead['reached']:,}" in funnel, "the bar is the contacts who reached the stage, as the rate is"
    assert "Churned" not in funnel and "At risk" not in funnel, "post-sale states are not funnel steps"
    after = _section(page, "After the first purchase")
    churned = next(s for s in metrics["post_sale"] if s["stage"] == "churned")
    assert f"{100 * churned['share_of_customers']:.1f}% of customers" in after
    assert "Lead" not in after


def test_days_per_stage_and_lifecycle_length_from_the_history(run_b: RunRecord) -> None:
    page = render_html(run_b)
    days = _section(page, "Average days in the current stage")
    values = [float(v.replace(",", "")) for v in re.findall(r'class="value"[^>]*>([\d,.]+)', days)]
    assert values and max(values) > 0, "days come from first touch / purchases, not from our runs alone"
    lifecycle = _section(page, "Lifecycle length")
    ended = (run_b.metrics or {})["lifecycle"]["median_lifecycle_days_ended"]
    assert f"{ended:,.0f}" in lifecycle and "whole lifecycle" in lifecycle


def test_threshold_lines_on_the_score_histogram_and_a_grade_chart(run_b: RunRecord) -> None:
    page = render_html(run_b)
    histogram = _section(page, "Lead score distribution")
    assert re.search(r'class="threshold"[^>]*>.*?MQL 40', histogram, re.S)
    assert re.search(r'class="threshold"[^>]*>.*?SQL 70', histogram, re.S)
    grades = _section(page, "Grade distribution")
    for grade, count in (run_b.metrics or {})["scores"]["grade_counts"].items():
        assert f">{grade}<" in grades and f"{count}" in grades


def test_churn_is_not_drawn_in_the_active_green(run_b: RunRecord) -> None:
    page = render_html(run_b)
    retention = _section(page, "Retention and churn")
    bars = dict(re.findall(r'<rect[^>]*data-label="([^"]+)"[^>]*fill="(#[0-9a-f]{6})"', retention))
    assert bars["active"] == ACTIVE_GREEN
    assert bars["churned"] != ACTIVE_GREEN and bars["churned"] in ("#dc2626", "#b91c1c")
    assert bars["lost (1 y cohort)"] != ACTIVE_GREEN


def test_p_alive_chart_explains_why_it_can_rise(run_b: RunRecord) -> None:
    page = render_html(run_b)
    start = page.index('aria-label="P(alive) by days since last purchase')
    note = page[start:].split("</section>")[0]
    assert "class=note" in note and "rise" in note and "bought" in note


def test_rejected_conflicting_and_unwritten_on_the_page_capped(run_b: RunRecord) -> None:
    clean = render_html(run_b)
    assert "Nothing rejected" in clean
    rejected = [{"record_id": f"{i}", "field": "clm_lead_score", "reason": f"INVALID_FIELD value {i} for jo@x.com"}
                for i in range(40)]
    conflicts = [{"record_id": "7", "field": "clm_stage", "crm": "lead", "we_wrote": "subscriber", "we_want": "lead"}]
    summary = {**run_b.summary, "rejected": rejected, "rejected_count": 57, "conflicts": 1,
               "conflict_samples": conflicts, "unwritten_fields": ["conversion_probability"]}
    page = render_html(dataclasses.replace(run_b, summary=summary))
    block = page[page.index("<h2>What this run could not write"):].split("</section>")[0]
    assert block.count("<tr class=rejected>") == 10
    assert "… and 47 more rejected" in block and f"clm runs show {run_b.id}" in block
    assert "<td>7</td><td>clm_stage</td>" in block and "we wrote" in block
    assert "conversion_probability" in block
    assert "jo@x.com" not in block, "e-mail addresses in CRM messages are redacted"


def test_report_html_of_one_run_from_the_cli(two_runs: tuple[int, int], tmp_path: Path) -> None:
    out = tmp_path / "one.html"
    result = CliRunner().invoke(cli, ["report", "--run", str(two_runs[1]), "--html", str(out)])
    assert result.exit_code == 0, result.output
    assert "Sales funnel" in out.read_text()
