"""Preflight (issue 16): a configured property the CRM does not have is named with a did-you-mean by `clm check`,
and a run does not write the scores computed from it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from cli.main import cli
from connectors.sandbox.generator import generate
from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits, start_hubspot_sandbox
from connectors.sandbox.server import SandboxServer
from tests.projects import hubspot_project


@pytest.fixture
def sandbox() -> Iterator[tuple[SandboxServer, HubSpotEmulator]]:
    data = generate(300, seed=5)
    server, emulator = start_hubspot_sandbox(data.contact_records(), data.deal_records(),
                                             rate_limits=RateLimits.professional())
    yield server, emulator
    server.stop()


def configure(tmp_path: Path, server: SandboxServer, emulator: HubSpotEmulator, monkeypatch: pytest.MonkeyPatch,
              misspell: bool) -> None:
    path = hubspot_project(tmp_path, monkeypatch, server.url, emulator.token, per_10s=190)
    text = path.read_text()
    if misspell:
        text = text.replace("jobtitle", "jobtitel")
    path.write_text(text)


def test_check_names_a_misspelled_property_with_did_you_mean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             sandbox: tuple[SandboxServer, HubSpotEmulator]) -> None:
    server, emulator = sandbox
    configure(tmp_path, server, emulator, monkeypatch, misspell=True)
    result = CliRunner().invoke(cli, ["check", "--json"])
    assert result.exit_code == 1, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    line = checks["configured contact properties exist in the CRM"]
    assert not line["ok"]
    assert "no contact property 'jobtitel'" in line["detail"] and "did you mean 'jobtitle'?" in line["detail"]
    assert [m["name"] for m in line["missing"]] == ["jobtitel"]
    text = CliRunner().invoke(cli, ["check"])
    assert "✗ configured contact properties exist in the CRM" in text.output
    assert "data.contact_properties.jobtitel" in text.output


def test_run_withholds_scores_that_depend_on_a_missing_property(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                sandbox: tuple[SandboxServer, HubSpotEmulator]) -> None:
    server, emulator = sandbox
    configure(tmp_path, server, emulator, monkeypatch, misspell=True)
    dry = CliRunner().invoke(cli, ["sync", "--dry-run", "--json"])
    assert dry.exit_code == 4, dry.output  # finished, but fields of ours were withheld: not a success to cron
    summary = json.loads(dry.stdout)
    assert {"fit_score", "lead_score", "grade", "stage"} <= set(summary["unwritten_fields"])
    assert "clv" not in summary["unwritten_fields"]
    assert summary["problems"][0].startswith("data.contact_properties.jobtitel: the CRM has no contact property")
    assert "did you mean 'jobtitle'?" in summary["problems"][0]
    assert "fit_score" in summary["problems"][0]
    for name in ("fit_score", "lead_score", "grade", "stage"):
        assert name not in summary["planned_fields"], f"{name} depends on jobtitel and must not be planned"
    assert summary["planned_fields"].get("clv"), "fields that do not depend on it are still written"

    sync = CliRunner().invoke(cli, ["sync"])
    assert sync.exit_code == 4, sync.output
    assert "not written this run: " in sync.output and "fit_score" in sync.output
    assert "did you mean 'jobtitle'?" in sync.output
    some = emulator.ids("contacts")[0]
    assert emulator.property_writes_to("contacts", some).get("clm_clv")
    assert not emulator.property_writes_to("contacts", some).get("clm_fit_score")


def test_correct_configuration_passes_the_property_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          sandbox: tuple[SandboxServer, HubSpotEmulator]) -> None:
    server, emulator = sandbox
    configure(tmp_path, server, emulator, monkeypatch, misspell=False)
    checks = {c["name"]: c for c in json.loads(CliRunner().invoke(cli, ["check", "--json"]).stdout)["checks"]}
    assert checks["configured contact properties exist in the CRM"]["ok"]
    assert checks["configured deal properties exist in the CRM"]["ok"], checks["configured deal properties exist "
                                                                              "in the CRM"]["detail"]


def test_a_property_of_an_incompatible_type_is_refused_like_a_missing_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: tuple[SandboxServer, HubSpotEmulator]) -> None:
    """A property declared ``number`` that the CRM holds as a datetime never compares as a number: every rule on
    it would silently give nobody points."""
    server, emulator = sandbox
    configure(tmp_path, server, emulator, monkeypatch, misspell=False)
    path = tmp_path / "clm.toml"
    path.write_text(path.read_text().replace("numemployees", "createdate"))
    checks = {c["name"]: c for c in json.loads(CliRunner().invoke(cli, ["check", "--json"]).stdout)["checks"]}
    line = checks["configured contact properties exist in the CRM"]
    assert not line["ok"]
    assert "data.contact_properties.createdate: declared 'number'" in line["detail"]
    assert "of type 'datetime'" in line["detail"] and "declare each mistyped property" in line["fix"]
    dry = CliRunner().invoke(cli, ["sync", "--dry-run", "--json"])
    assert dry.exit_code == 4, dry.output
    summary = json.loads(dry.stdout)
    assert "fit_score" in summary["unwritten_fields"] and "fit_score" not in summary["planned_fields"]


def test_a_field_of_ours_recreated_with_another_type_fails_check_and_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: tuple[SandboxServer, HubSpotEmulator]) -> None:
    server, emulator = sandbox
    configure(tmp_path, server, emulator, monkeypatch, misspell=False)
    assert CliRunner().invoke(cli, ["fields", "ensure"]).exit_code == 0
    headers = {"Authorization": f"Bearer {emulator.token}"}
    # As a portal admin would: delete our number property and create a text one under the same name.
    assert httpx.delete(f"{server.url}/crm/v3/properties/contacts/clm_lead_score", headers=headers).status_code == 204
    created = httpx.post(f"{server.url}/crm/v3/properties/contacts", headers=headers, json={
        "name": "clm_lead_score", "label": "Lead score (text)", "groupName": "contactinformation",
        "type": "string", "fieldType": "text"})
    assert created.status_code == 201, created.text
    check = CliRunner().invoke(cli, ["check", "--json"])
    assert check.exit_code == 1, check.output
    line = {c["name"]: c for c in json.loads(check.stdout)["checks"]}["our properties exist with our types"]
    assert not line["ok"] and "clm_lead_score is 'string', we need 'number'" in line["detail"]
    run = CliRunner().invoke(cli, ["sync", "--json"])
    assert run.exit_code == 4, run.output
    summary = json.loads(run.stdout)
    assert summary["unwritten_fields"] == ["lead_score"]
    assert any("clm_lead_score" in p and "we need 'number'" in p for p in summary["problems"])
