"""The report page as a browser lays it out (issue 16), for a single run and for a compare: no text label drawn
over another, and every chart has axis ticks. Headless Chromium renders the page with a measuring script appended
to a copy (the report itself has no scripts); the script writes what it found into the DOM, which ``--dump-dom``
returns."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import wiring
from cli.main import cli
from cli.report import render_html

REPO = Path(__file__).resolve().parents[2]
CLM = "from cli.main import main; main()"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Boxes of every SVG text in each chart, and of each KPI tile; pairs that intersect by more than a pixel either
# way are overlaps, and a text reaching past its chart's edge is cut off. Charts without at least two ticks (`.tick`
# groups) are listed too.
MEASURE = """<script>
const out = {overlaps: [], untickedCharts: [], clipped: [], charts: 0, kpiRows: 0};
const hit = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 1 &&
                      Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 1;
for (const svg of document.querySelectorAll('svg.chart')) {
  out.charts++;
  const title = svg.getAttribute('aria-label');
  if (svg.querySelectorAll('.tick').length < 2) out.untickedCharts.push(title);
  const texts = [...svg.querySelectorAll('text')].filter(t => t.textContent.trim());
  const boxes = texts.map(t => t.getBoundingClientRect());
  const frame = svg.getBoundingClientRect();
  texts.forEach((t, i) => { if (boxes[i].right > frame.right + 1 || boxes[i].left < frame.left - 1)
    out.clipped.push([title, t.textContent]); });
  for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++)
    if (hit(boxes[i], boxes[j])) out.overlaps.push([title, texts[i].textContent, texts[j].textContent]);
}
out.kpiRows = new Set([...document.querySelectorAll('.kpi')].map(k => Math.round(k.getBoundingClientRect().top))).size;
const pre = document.createElement('pre'); pre.id = 'measured'; pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"""


def measure(page: Path, tmp_path: Path, shot: Path, window: str = "1400,1900") -> dict[str, object]:
    assert CHROMIUM is not None
    probe = tmp_path / f"probe-{page.name}"
    probe.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    profile = f"--user-data-dir={tmp_path / 'profile'}"
    flags = [*FLAGS, f"--window-size={window}", profile]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", probe.as_uri()], capture_output=True,
                         text=True, timeout=90)
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom.stdout)
    assert found, dom.stderr[-2000:]
    shot.parent.mkdir(exist_ok=True)
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", page.as_uri()], capture_output=True,
                   timeout=90)
    result: dict[str, object] = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&")
                                          .replace("&lt;", "<").replace("&gt;", ">"))
    return result


def screenshot(tmp_path: Path, name: str) -> Path:
    """Where a test's screenshot goes: the README's picture under docs/ when CLM_UPDATE_SCREENSHOTS=1 (so running
    the tests does not change tracked files), else the test's folder."""
    return (REPO / "docs" if os.environ.get("CLM_UPDATE_SCREENSHOTS") == "1" else tmp_path) / name


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)")
def test_single_run_report_has_no_overlapping_labels_and_ticks_on_every_chart(tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    done = subprocess.run([sys.executable, "-c", CLM, "demo", "--contacts", "800", "--report", str(html)],
                          cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    found = measure(html, tmp_path, screenshot(tmp_path, "report.png"))
    assert found["charts"] >= 7  # type: ignore[operator]
    assert found["untickedCharts"] == [], "every chart has axis ticks"
    assert found["overlaps"] == [], "no text label drawn over another"
    assert found["clipped"] == [], "no label runs off its chart"
    assert found["kpiRows"] == 1, "the KPI tiles sit on one row"


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)")
def test_compare_report_has_no_overlapping_labels_and_ticks_on_every_chart(two_runs: tuple[int, int],
                                                                           tmp_path: Path) -> None:
    a, b = two_runs
    html = tmp_path / "compare.html"
    result = CliRunner().invoke(cli, ["report", "--compare", str(a), str(b), "--html", str(html)])
    assert result.exit_code == 0, result.output
    # The picture shows the top of the page: the KPIs, the before-vs-after table and the stage flow.
    found = measure(html, tmp_path, screenshot(tmp_path, "report_compare.png"), window="1400,1340")
    assert found["charts"] >= 9  # type: ignore[operator]
    assert found["untickedCharts"] == [], "every chart has axis ticks"
    assert found["overlaps"] == [], "no text label drawn over another"
    assert found["clipped"] == [], "no label runs off its chart"
    assert found["kpiRows"] == 1, "the KPI tiles sit on one row"


def _scaled(data: object, factor: int) -> object:
    """Every whole count in a metrics snapshot times ``factor`` (rates and days, floats, stay)."""
    if isinstance(data, dict):
        return {k: _scaled(v, factor) for k, v in data.items()}
    if isinstance(data, list):
        return [_scaled(v, factor) for v in data]
    return data * factor if isinstance(data, int) and not isinstance(data, bool) else data


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)")
def test_labels_of_a_base_of_millions_stay_inside_their_charts(two_runs: tuple[int, int], tmp_path: Path) -> None:
    state = wiring.open_state(wiring.load(Path("clm.toml")))
    try:
        run = state.run(two_runs[1])
    finally:
        state.close()
    big = dataclasses.replace(run, metrics=_scaled(run.metrics, 10_007))  # 3,002,100 contacts
    html = tmp_path / "big.html"
    html.write_text(render_html(big))
    found = measure(html, tmp_path, tmp_path / "big.png")
    assert found["clipped"] == [], "values and notes end inside the chart, however long the numbers"
    assert found["overlaps"] == []
