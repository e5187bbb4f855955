"""What a new user does, end to end against the HubSpot sandbox; the demo; the serverless handler; the report
rendered in headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import cli
from connectors.sandbox.generator import generate
from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits, start_hubspot_sandbox
from connectors.sandbox.server import SandboxServer
from tests.projects import hubspot_project

REPO = Path(__file__).resolve().parents[2]
CLM = "from cli.main import main; main()"  # the `clm` console script, with this interpreter


@pytest.fixture
def sandbox() -> Iterator[tuple[SandboxServer, HubSpotEmulator]]:
    data = generate(1_500, seed=5)
    server, emulator = start_hubspot_sandbox(data.contact_records(), data.deal_records(),
                                             rate_limits=RateLimits.professional())
    yield server, emulator
    server.stop()


def configure(tmp_path: Path, server: SandboxServer, monkeypatch: pytest.MonkeyPatch, token: str) -> Path:
    return hubspot_project(tmp_path, monkeypatch, server.url, token, per_10s=190)


def test_new_user_init_check_dry_run_sync_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 sandbox: tuple[SandboxServer, HubSpotEmulator]) -> None:
    server, emulator = sandbox
    configure(tmp_path, server, monkeypatch, emulator.token)
    runner = CliRunner()

    check = runner.invoke(cli, ["check"])
    assert "✓ HubSpot reachable, token accepted" in check.output
    assert "✗ our properties exist with our types" in check.output and "clm sync" in check.output
    assert check.exit_code == 1

    pulled = runner.invoke(cli, ["pull", "--json"])
    assert pulled.exit_code == 0, pulled.output
    assert json.loads(pulled.stdout)["mirror"]["contacts"] == 1_500
    scored = runner.invoke(cli, ["score", "--no-pull", "-o", "scores.csv"])
    assert scored.exit_code == 0, scored.output
    rows = (tmp_path / "scores.csv").read_text().splitlines()
    assert len(rows) == 1_501 and rows[0].startswith("contact_id,stage,stage_since,lead_score")

    dry = runner.invoke(cli, ["sync", "--dry-run", "--export-plan", "plan.jsonl", "--json"])
    assert dry.exit_code == 0, dry.output
    plan = json.loads(dry.stdout)
    assert plan["planned_records"] == 1_500 and plan["write_calls"] == 0
    assert len((tmp_path / "plan.jsonl").read_text().splitlines()) == 1_500
    assert emulator.total_writes() == 0, "a dry run writes nothing to the CRM"

    sync = runner.invoke(cli, ["sync"])
    assert sync.exit_code == 0, sync.output
    assert "wrote 1,500 records" in sync.output
    assert runner.invoke(cli, ["check"]).exit_code == 0

    again = runner.invoke(cli, ["sync", "--json"])
    assert json.loads(again.stdout)["write_calls"] == 0

    runs = runner.invoke(cli, ["runs", "--json"])
    assert [r["status"] for r in json.loads(runs.stdout)] == ["ok", "ok", "ok", "ok"]

    report = runner.invoke(cli, ["report", "--html", "report.html"])
    assert report.exit_code == 0, report.output
    assert "Marketing qualified" in report.output  # stages as the CRM labels them
    html = (tmp_path / "report.html").read_text()
    # Self-contained: no scripts, no external stylesheets, images or fonts (works offline).
    assert "<svg" in html and "<script" not in html and 'src="' not in html and "<link" not in html
    compare = runner.invoke(cli, ["report", "--compare", "3", "4", "--html", "compare.html"])
    assert compare.exit_code == 0 and "Before vs after" in (tmp_path / "compare.html").read_text()

    state = tmp_path / ".clm" / "state.db"
    assert oct(state.stat().st_mode & 0o777) == "0o600"
    assert b"@example." not in state.read_bytes(), "no email addresses in the state file"


def test_serverless_handler_runs_within_its_budget_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               sandbox: tuple[SandboxServer, HubSpotEmulator]) -> None:
    from cli.serverless import handler

    server, emulator = sandbox
    path = configure(tmp_path, server, monkeypatch, emulator.token)
    assert CliRunner().invoke(cli, ["fields", "ensure"]).exit_code == 0  # done once at deployment
    path.write_text(path.read_text().replace("requests_per_10s = 190", "requests_per_10s = 4"))
    monkeypatch.setenv("CLM_CONFIG", str(path))
    monkeypatch.setenv("CLM_STATE_PATH", str(tmp_path / "efs" / "state.db"))
    context = SimpleNamespace(get_remaining_time_in_millis=lambda: 30_000)
    # 30 s left in the invocation: the handler keeps a safety margin that covers a full rate-limit window.
    first = handler({}, context)
    assert first["ok"] and first["status"] == "partial", first["summary"]["message"]
    assert first["summary"]["seconds"] < 30
    path.write_text(path.read_text().replace("requests_per_10s = 4", "requests_per_10s = 190"))
    second = handler({}, context)
    assert second["ok"] and second["status"] == "ok", second
    assert emulator.total_writes() == 1_500 and emulator.max_writes_per_record() == 1
    assert (tmp_path / "efs" / "state.db").exists()
    bad = handler({"config": str(tmp_path / "missing.toml")}, context)
    assert not bad["ok"] and bad["error"] == "ConfigError"


def test_demo_command_output_and_report(tmp_path: Path) -> None:
    report = tmp_path / "demo.html"
    result = subprocess.run([sys.executable, "-c", CLM, "demo", "--contacts", "1500", "--report",
                             str(report)], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "COLUMNS": "120"})
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for expected in ("HubSpot sandbox at http://127.0.0.1", "fields: 13 created", "wrote 1,500 records",
                     "Top customers by CLV", "made 0 write calls", "report:"):
        assert expected in out, expected
    assert report.exists() and "Sales funnel" in report.read_text()


def json_demo(crm: str, contacts: int, tmp_path: Path) -> dict[str, Any]:
    """``clm demo --crm CRM --json`` run as a user runs it; its JSON document (the report checked too)."""
    report = tmp_path / "demo.html"
    result = subprocess.run([sys.executable, "-c", CLM, "demo", "--crm", crm, "--contacts", str(contacts),
                             "--report", str(report), "--json"], cwd=REPO, capture_output=True, text=True,
                            timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    out: dict[str, Any] = json.loads(result.stdout)
    assert out["crm"] == crm and out["first"]["status"] == "ok" and out["first"]["problems"] == []
    assert out["second"]["write_calls"] == 0
    assert report.exists() and "Sales funnel" in report.read_text()
    return out


def test_demo_against_the_salesforce_sandbox(tmp_path: Path) -> None:
    assert json_demo("salesforce", 1_200, tmp_path)["first"]["written_records"] == 1_200


def test_demo_against_the_engagebay_sandbox(tmp_path: Path) -> None:
    first = json_demo("engagebay", 400, tmp_path)["first"]
    # One update-partial call per contact (EngageBay has no batch update); the second sync writes nothing.
    assert first["written_records"] == 400 == first["write_calls"]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    assert CHROMIUM is not None
    html = tmp_path / "r.html"
    done = subprocess.run([sys.executable, "-c", CLM, "demo", "--contacts", "800", "--report", str(html)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    shot = tmp_path / "report.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1900", "--enable-logging=stderr",
             "--v=0"]
    render = subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", html.as_uri()], capture_output=True,
                            text=True, timeout=90)
    assert shot.exists() and shot.stat().st_size > 50_000, render.stderr[-2000:]
    console_errors = [line for line in render.stderr.splitlines() if "CONSOLE" in line and "ERROR" in line]
    assert console_errors == []
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", html.as_uri()], capture_output=True, text=True,
                         timeout=90)
    assert dom.stdout.count("<svg") >= 7, "every chart is in the rendered page"
