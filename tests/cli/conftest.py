"""Fixtures shared by the report tests: one small HubSpot-sandbox project with two syncs around a campaign."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from connectors.sandbox.generator import generate
from connectors.sandbox.hubspot import RateLimits, start_hubspot_sandbox
from core.models import DealStatus


@dataclass(frozen=True)
class TwoRuns:
    """A project folder whose state holds run ``a`` (before) and run ``b`` (after a campaign)."""

    folder: Path
    token: str
    a: int
    b: int


@pytest.fixture(scope="module")
def campaign_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoRuns]:
    folder = tmp_path_factory.mktemp("campaign")
    data = generate(300, seed=11)
    server, emulator = start_hubspot_sandbox(data.contact_records(), data.deal_records(),
                                             rate_limits=RateLimits.professional(), search_lag_ms=0)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("HUBSPOT_TOKEN", emulator.token)
        assert CliRunner().invoke(cli, ["init", "--crm", "hubspot"]).exit_code == 0
        path = folder / "clm.toml"
        path.write_text(path.read_text().replace('base_url = "https://api.hubapi.com"', f'base_url = "{server.url}"')
                        .replace("requests_per_10s = 100", "requests_per_10s = 190"))
        first = json.loads(CliRunner().invoke(cli, ["sync", "--json"]).stdout)["run_id"]
        # A campaign: a hundred contacts click and view pages (leads), the open deals are won and a win-back
        # offer brings one won deal in twelve back to today (new, repeat and reactivated customers).
        emulator.bulk_edit("contacts", emulator.ids("contacts")[:100], {"hs_email_click": 30,
                                                                       "hs_analytics_num_page_views": 60})
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        deals = data.deal_records()
        emulator.bulk_edit("deals", [d.id for d in deals if d.status == DealStatus.OPEN],
                           {"dealstage": "closedwon", "closedate": now})
        emulator.bulk_edit("deals", [d.id for d in deals if d.status == DealStatus.WON][::12], {"closedate": now})
        second = json.loads(CliRunner().invoke(cli, ["sync", "--json"]).stdout)["run_id"]
    yield TwoRuns(folder, emulator.token, first, second)
    server.stop()


@pytest.fixture
def two_runs(campaign_project: TwoRuns, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """The campaign project as the current folder: ``(run before, run after)``."""
    monkeypatch.chdir(campaign_project.folder)
    monkeypatch.setenv("HUBSPOT_TOKEN", campaign_project.token)
    assert os.path.exists("clm.toml")
    return campaign_project.a, campaign_project.b
