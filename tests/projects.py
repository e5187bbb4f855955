"""The set-up CLI tests of a HubSpot project share: `clm init --crm hubspot` in a folder, pointed at a sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli

#: The starter configuration's line that names HubSpot's real API.
STARTER_URL = 'base_url = "https://api.hubapi.com"'


def hubspot_project(folder: Path, monkeypatch: pytest.MonkeyPatch, base_url: str, token: str, *,
                    per_10s: int | None = None) -> Path:
    """Make ``folder`` the working directory, export ``token`` as HUBSPOT_TOKEN, write the starter ``clm.toml``
    there with ``base_url`` (and ``requests_per_10s`` when given: 190 is Professional's), and return its path."""
    monkeypatch.chdir(folder)
    monkeypatch.setenv("HUBSPOT_TOKEN", token)
    result = CliRunner().invoke(cli, ["init", "--crm", "hubspot"])
    assert result.exit_code == 0, result.output
    path = folder / "clm.toml"
    text = path.read_text().replace(STARTER_URL, f'base_url = "{base_url}"')
    if per_10s is not None:
        text = text.replace("requests_per_10s = 100", f"requests_per_10s = {per_10s}")
    path.write_text(text)
    return path
