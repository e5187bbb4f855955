"""A sandbox a user can come back to (issue 16): `clm sandbox serve` keeps its data in --state and its port, so
a project pointed at it keeps syncing after a restart with no edit; its generated data is dated today."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from cli.main import cli

CLM = "from cli.main import main; main()"


@contextmanager
def serving(state: Path, *extra: str) -> Iterator[tuple[str, str]]:
    """Run `clm sandbox serve` in a process; yield its base URL and token; stop it as Ctrl-C/SIGTERM would."""
    process = subprocess.Popen([sys.executable, "-c", CLM, "sandbox", "serve", "--contacts", "60", "--state",
                                str(state), "--no-rate-limit", *extra], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("serving"):
            break
    text = "".join(lines)
    try:
        url = text.split("HubSpot sandbox: http", 1)[1].split()[0]
        token = text.split("export HUBSPOT_TOKEN=", 1)[1].split()[0]
        yield "http" + url, token
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def latest_close(url: str, token: str) -> str:
    """The latest deal close date in the sandbox, paging through every deal."""
    dates: list[str] = []
    after: str | None = None
    while True:
        params = {"limit": 100, "properties": "closedate", **({"after": after} if after else {})}
        body = httpx.get(f"{url}/crm/v3/objects/deals", params=params,
                         headers={"Authorization": f"Bearer {token}"}).json()
        dates += [d["properties"]["closedate"] for d in body["results"] if d["properties"].get("closedate")]
        after = (body.get("paging") or {}).get("next", {}).get("after")
        if not after:
            return max(dates)


def test_restarted_sandbox_keeps_data_and_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "sandbox"
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(cli, ["init", "--crm", "hubspot"]).exit_code == 0
    with serving(state) as (url, token):
        monkeypatch.setenv("HUBSPOT_TOKEN", token)
        path = tmp_path / "clm.toml"
        path.write_text(path.read_text().replace('base_url = "https://api.hubapi.com"', f'base_url = "{url}"'))
        first = CliRunner().invoke(cli, ["sync"])
        assert first.exit_code == 0, first.output
        assert "wrote 60 records" in first.output
        latest = latest_close(url, token)
        assert datetime.fromisoformat(latest.replace("Z", "+00:00")) > datetime.now(UTC) - timedelta(days=120), \
            "generated data is dated up to today"
    assert (state / "hubspot.sqlite").exists()
    with serving(state) as (again, _):
        assert again == url, "the same address after a restart"
        second = CliRunner().invoke(cli, ["sync", "--json"])
        assert second.exit_code == 0, second.output
        assert '"write_calls": 0' in second.output, "the data, our written values included, came back"


@contextmanager
def serving_json(state: Path, *extra: str, contacts: int = 60) -> Iterator[dict[str, Any]]:
    """Run `clm sandbox serve --json` in a process; yield its document; stop it as SIGTERM would. Nothing but the
    document may reach stdout."""
    process = subprocess.Popen([sys.executable, "-c", CLM, "sandbox", "serve", "--contacts", str(contacts),
                                "--state", str(state), "--json", *extra], stdout=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stdout is not None
    try:
        text = ""
        while not text.endswith("\n}\n"):
            line = process.stdout.readline()
            assert line, "the process ended before printing its document"
            text += line
        yield json.loads(text)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    assert process.stdout.read() == "", "nothing but the document on stdout"


def test_restarted_engagebay_sandbox_keeps_data_and_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "sandbox"
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(cli, ["init", "--crm", "engagebay"]).exit_code == 0
    with serving_json(state, "--crm", "engagebay", "--no-rate-limit") as document:
        info = document["engagebay"]
        assert info["restored"] is False
        monkeypatch.setenv("ENGAGEBAY_API_KEY", info["api_key"])
        path = tmp_path / "clm.toml"
        path.write_text(path.read_text().replace('base_url = "https://app.engagebay.com"',
                                                 f'base_url = "{info["base_url"]}"'))
        first = CliRunner().invoke(cli, ["sync", "--json"])
        assert first.exit_code == 0, first.output
        assert json.loads(first.stdout)["written_records"] == 60
    assert (state / "engagebay.json").exists()
    assert (state / "engagebay.json").stat().st_mode & 0o077 == 0, "personal data: private to its owner"
    with serving_json(state, "--crm", "engagebay", "--no-rate-limit") as again:
        assert again["engagebay"]["restored"] is True
        assert again["engagebay"]["base_url"] == info["base_url"], "the same address after a restart"
        second = CliRunner().invoke(cli, ["sync", "--json"])
        assert second.exit_code == 0, second.output
        assert json.loads(second.stdout)["write_calls"] == 0, "the data, our written values included, came back"


def test_restarted_salesforce_sandbox_keeps_the_org_its_fields_and_sessions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "sandbox"
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(cli, ["init", "--crm", "salesforce"]).exit_code == 0
    with serving_json(state, "--crm", "salesforce", "--no-rate-limit") as document:
        info = document["salesforce"]
        assert info["restored"] is False
        monkeypatch.setenv("SF_INSTANCE_URL", info["instance_url"])
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", info["ca_path"])
        monkeypatch.setenv("SF_ACCESS_TOKEN", info["admin_session_id"])
        ensured = CliRunner().invoke(cli, ["fields", "ensure", "--assign-to", info["username"], "--json"])
        assert ensured.exit_code == 0, ensured.output
        monkeypatch.setenv("SF_ACCESS_TOKEN", info["session_id"])
        first = CliRunner().invoke(cli, ["sync", "--json"])
        assert first.exit_code == 0, first.output
        assert json.loads(first.stdout)["written_records"] == 60
    assert (state / "salesforce.org").stat().st_mode & 0o077 == 0, "personal data: private to its owner"
    # The same exported variables as before the restart: same address, same CA, same session id.
    with serving_json(state, "--crm", "salesforce", "--no-rate-limit") as again:
        assert again["salesforce"]["restored"] is True
        assert again["salesforce"]["instance_url"] == info["instance_url"], "the same address after a restart"
        second = CliRunner().invoke(cli, ["sync", "--json"])
        assert second.exit_code == 0, second.output
        assert json.loads(second.stdout)["write_calls"] == 0, "the org, our fields and written values came back"


def test_a_saved_org_someone_else_could_write_is_not_loaded(tmp_path: Path) -> None:
    from connectors.sandbox.salesforce import SalesforceEmulator

    saved = tmp_path / "salesforce.org"
    SalesforceEmulator().save(saved)
    assert SalesforceEmulator.load(saved).store.org.username
    saved.chmod(0o666)  # unpickling runs code: a file others may write is refused
    with pytest.raises(PermissionError, match="not private"):
        SalesforceEmulator.load(saved)
    saved.chmod(0o600)
    saved.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a saved org"):
        SalesforceEmulator.load(saved)


def test_as_of_dates_the_generated_data(tmp_path: Path) -> None:
    with serving(tmp_path / "s", "--as-of", "2025-06-30", "--port", "0") as (url, token):
        latest = latest_close(url, token)
    assert "2025-03-01" < latest[:10] <= "2025-06-30"


def test_state_rebind_to_a_new_url_of_the_same_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from connectors.sandbox.generator import generate
    from connectors.sandbox.hubspot import RateLimits, start_hubspot_sandbox

    data = generate(80, seed=2)
    server, emulator = start_hubspot_sandbox(data.contact_records(), data.deal_records(),
                                             rate_limits=RateLimits.off(), search_lag_ms=0)
    try:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("HUBSPOT_TOKEN", emulator.token)
        assert CliRunner().invoke(cli, ["init", "--crm", "hubspot"]).exit_code == 0
        path = tmp_path / "clm.toml"
        starter = path.read_text()
        path.write_text(starter.replace('base_url = "https://api.hubapi.com"', f'base_url = "{server.url}"'))
        assert CliRunner().invoke(cli, ["sync"]).exit_code == 0
        # The same portal under another spelling of its address, as after fixing a typo in base_url.
        moved = server.url.replace("127.0.0.1", "localhost")
        path.write_text(starter.replace('base_url = "https://api.hubapi.com"', f'base_url = "{moved}"'))
        refused = CliRunner().invoke(cli, ["sync"])
        assert refused.exit_code != 0 and "clm state rebind" in refused.output
        unconfirmed = CliRunner().invoke(cli, ["state", "rebind"])
        assert unconfirmed.exit_code == 2 and "--yes" in unconfirmed.output
        rebound = CliRunner().invoke(cli, ["state", "rebind", "--yes"])
        assert rebound.exit_code == 0, rebound.output
        again = CliRunner().invoke(cli, ["sync", "--json"])
        assert again.exit_code == 0, again.output
        assert '"write_calls": 0' in again.output, "the mirror and written values were kept"
    finally:
        server.stop()


def test_serve_json_prints_one_document_a_script_can_read(tmp_path: Path) -> None:
    # The README says every command takes --json; a script starting the sandbox in the background reads it.
    with serving_json(tmp_path / "sb", contacts=20) as document:
        assert document["ok"] is True and document["hubspot"]["restored"] is False
        body = httpx.get(f"{document['hubspot']['base_url']}/crm/v3/objects/contacts", params={"limit": 5},
                         headers={"Authorization": f"Bearer {document['hubspot']['token']}"}).json()
        assert len(body["results"]) == 5


def test_every_option_of_every_command_has_help_and_every_command_takes_json() -> None:
    import click

    def walk(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                yield from walk(command, f"{prefix}{name} ")
                if not command.invoke_without_command:
                    continue
            yield f"{prefix}{name}", command

    commands = dict(walk(cli))
    assert "sandbox serve" in commands
    undocumented = [f"{name} {param.opts[0]}" for name, command in commands.items() for param in command.params
                    if isinstance(param, click.Option) and not param.help]
    assert undocumented == []
    assert [name for name, command in commands.items()
            if not any("--json" in getattr(p, "opts", ()) for p in command.params)] == []
