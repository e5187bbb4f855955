"""Network failures another attempt cannot mend fail at once with the fix (issue 16), instead of 8 s of retries
ending in "HubSpot or the network is failing; run again later"."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from connectors.sandbox.hubspot import HubSpotEmulator, start_hubspot_sandbox
from connectors.sandbox.server import SandboxServer
from tests.projects import hubspot_project


def configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base_url: str, token: str = "pat-na1-x") -> None:
    hubspot_project(tmp_path, monkeypatch, base_url, token)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sync_error(tmp_path: Path) -> tuple[dict[str, str], float]:
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["sync", "--json"])
    elapsed = time.monotonic() - started
    assert result.exit_code == 1, result.output
    return json.loads(result.stdout), elapsed


@pytest.fixture
def tls_sandbox(tmp_path: Path) -> Iterator[SandboxServer]:
    server = SandboxServer(HubSpotEmulator(), tls_dir=tmp_path / "tls")
    server.start()
    yield server
    server.stop()


def test_connection_refused_fails_fast_naming_the_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = closed_port()
    configure(tmp_path, monkeypatch, f"http://127.0.0.1:{port}")
    error, elapsed = sync_error(tmp_path)
    assert elapsed < 3, "retrying a refused connection cannot help"
    assert f"127.0.0.1:{port} refused" in error["message"]
    assert "hubspot.base_url" in error["hint"] and "run again later" not in error["hint"]
    check = json.loads(CliRunner().invoke(cli, ["check", "--json"]).stdout)
    line = next(c for c in check["checks"] if c["name"].startswith("HubSpot reachable"))
    assert not line["ok"] and "nothing is listening" in line["detail"] and "clm sandbox serve" in line["fix"]


def test_unknown_host_name_is_a_dns_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # .invalid never resolves (RFC 6761 §6.4), with or without a network.
    configure(tmp_path, monkeypatch, "https://api.hubapi.invalid")
    error, elapsed = sync_error(tmp_path)
    assert elapsed < 3
    assert "host name 'api.hubapi.invalid' does not exist" in error["message"]
    assert "spelling of hubspot.base_url" in error["hint"]


def test_untrusted_certificate_is_a_tls_trust_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     tls_sandbox: SandboxServer) -> None:
    configure(tmp_path, monkeypatch, f"https://127.0.0.1:{tls_sandbox.port}")
    error, elapsed = sync_error(tmp_path)
    assert elapsed < 3
    assert "TLS certificate of 127.0.0.1 is not trusted" in error["message"]
    assert "CA bundle" in error["hint"]


def test_base_url_with_the_api_path_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server, emulator = start_hubspot_sandbox()
    try:
        configure(tmp_path, monkeypatch, f"{server.url}/crm/v3", token=emulator.token)
        error, elapsed = sync_error(tmp_path)
    finally:
        server.stop()
    assert elapsed < 3
    assert "404" in error["message"]
    assert "hubspot.base_url ends in '/crm/v3'" in error["hint"] and "https://api.hubapi.com" in error["hint"]


def test_a_failed_run_is_logged_as_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Log-based alerting (CloudWatch, journald filters) keys on the level: a failure logged at INFO goes unseen,
    # and at the default level (warnings) it was not even printed.
    configure(tmp_path, monkeypatch, f"http://127.0.0.1:{closed_port()}")
    result = CliRunner().invoke(cli, ["--log-format", "json", "sync", "--json"])
    assert result.exit_code == 1
    finish = [json.loads(line) for line in result.stderr.splitlines() if '"finish"' in line]
    assert len(finish) == 1 and finish[0]["level"] == "error" and " failed: " in finish[0]["message"], result.stderr
