"""`clm fields ensure` on Salesforce is an admin step: the integration user is told so, an admin creates the
fields and grants them to the integration user (`--assign-to`), and `clm check` as the integration user passes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from connectors.sandbox.salesforce import SalesforceEmulator, start_salesforce_sandbox
from connectors.sandbox.server import SandboxServer


@pytest.fixture
def org(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SandboxServer, SalesforceEmulator, Path]]:
    server, emulator = start_salesforce_sandbox(tls_dir=tmp_path / "tls")
    path = tmp_path / "clm.toml"
    assert CliRunner().invoke(cli, ["init", "--crm", "salesforce", "--path", str(path)]).exit_code == 0
    monkeypatch.setenv("SF_INSTANCE_URL", server.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_path))  # the client's own session trusts the sandbox CA
    yield server, emulator, path
    server.stop()
    assert emulator.internal_errors == []


def ensure(path: Path, *args: str) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(cli, ["fields", "ensure", "--config", str(path), "--json", *args])
    return result.exit_code, json.loads(result.stdout)


def test_fields_ensure_is_refused_to_the_integration_user_and_done_by_an_admin_for_it(
        org: tuple[SandboxServer, SalesforceEmulator, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _, emulator, path = org
    monkeypatch.setenv("SF_ACCESS_TOKEN", emulator.session_id)
    code, refused = ensure(path)
    assert code == 1 and refused["ok"] is False
    fields = refused["fields"]
    assert isinstance(fields, list) and {f["action"] for f in fields} == {"failed"}
    assert all("is an admin step" in f["detail"] and "--assign-to" in f["detail"] for f in fields)

    monkeypatch.setenv("SF_ACCESS_TOKEN", emulator.admin_session_id)
    code, done = ensure(path, "--assign-to", emulator.store.org.username)
    assert code == 0 and done["ok"] is True
    fields = done["fields"]
    assert isinstance(fields, list) and {f["action"] for f in fields} == {"created"} and len(fields) == 12
    # The starter configuration has no predictive score: no conversion-probability field that nothing would fill.
    assert not any("Conversion" in str(f["crm_name"]) for f in fields)
    assert all(emulator.field_access("Contact", str(f["crm_name"]).split(".")[1]) == (True, True) for f in fields)

    monkeypatch.setenv("SF_ACCESS_TOKEN", emulator.session_id)
    check = CliRunner().invoke(cli, ["check", "--config", str(path), "--json"])
    lines = {line["name"]: line for line in json.loads(check.stdout)["checks"]}
    assert lines["our fields on Contact exist and are visible"]["ok"] is True, lines


def test_assign_to_an_unknown_user_grants_nothing_and_says_so(org: tuple[SandboxServer, SalesforceEmulator, Path],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _, emulator, path = org
    monkeypatch.setenv("SF_ACCESS_TOKEN", emulator.admin_session_id)
    code, out = ensure(path, "--assign-to", "nobody@clm-sandbox.example")
    assert code == 1
    fields = out["fields"]
    assert isinstance(fields, list)
    assert all(f["action"] == "failed" and "no active Salesforce user" in f["detail"] for f in fields)
    assert "nobody@" not in json.dumps(out), "usernames look like e-mail addresses: not echoed"


def test_the_starter_configuration_passes_every_check_against_the_served_sandbox(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As `clm sandbox serve --crm salesforce` seeds it: a small data set whose open deals fill few MEDDIC criteria.
    # The starter [meddic] names used to be missing there (6 "no deal property 'Metrics__c'" warnings).
    from connectors.sandbox.generator import DEAL_PROPERTY_TYPES, generate

    data = generate(40, seed=7)
    server, emulator = start_salesforce_sandbox(data.contact_records(), data.deal_records(), tls_dir=tmp_path / "tls",
                                                deal_properties=DEAL_PROPERTY_TYPES)
    try:
        path = tmp_path / "clm.toml"
        assert CliRunner().invoke(cli, ["init", "--crm", "salesforce", "--path", str(path)]).exit_code == 0
        monkeypatch.setenv("SF_INSTANCE_URL", server.url)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_path))
        monkeypatch.setenv("SF_ACCESS_TOKEN", emulator.admin_session_id)
        assert ensure(path, "--assign-to", emulator.store.org.username)[0] == 0
        monkeypatch.setenv("SF_ACCESS_TOKEN", emulator.session_id)
        check = CliRunner().invoke(cli, ["check", "--config", str(path), "--json"])
        failed = [line for line in json.loads(check.stdout)["checks"] if not line["ok"]]
        assert check.exit_code == 0 and failed == []
    finally:
        server.stop()
