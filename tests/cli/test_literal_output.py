"""CRM and configuration text reaches the terminal literally: never rich markup, a link or a MarkupError (issue 14).

Every case runs a real command through click's CliRunner against the HubSpot sandbox, with hostile text where a
CRM or a user can put it: a deal amount, a rejection reason, a config key, a file path, an error message.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from cli.main import cli  # first: it registers the commands' modules
from connectors.sandbox.faults import FaultRule
from connectors.sandbox.generator import generate
from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits, start_hubspot_sandbox
from connectors.sandbox.server import SandboxServer
from tests.projects import hubspot_project

HOSTILE = "[/x] [red]rejected[/] [link=http://evil]x[/link] :smile:"


@pytest.fixture
def sandbox() -> Iterator[tuple[SandboxServer, HubSpotEmulator]]:
    data = generate(120, seed=3)
    server, emulator = start_hubspot_sandbox(data.contact_records(), data.deal_records(),
                                             rate_limits=RateLimits.off())
    yield server, emulator
    server.stop()


def configure(tmp_path: Path, server: SandboxServer, monkeypatch: pytest.MonkeyPatch, token: str) -> Path:
    return hubspot_project(tmp_path, monkeypatch, server.url, token)


def no_traceback(result: Result) -> None:
    """The command ended by its own exit code, not by an exception escaping it."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


def test_a_hostile_deal_amount_and_rejection_reason_print_literally(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: tuple[SandboxServer, HubSpotEmulator]) -> None:
    server, emulator = sandbox
    configure(tmp_path, server, monkeypatch, emulator.token)
    deal_id = emulator.ids("deals")[0]
    store = emulator.store
    record = store.resolve("deals", deal_id)
    assert record is not None
    store.tables["deals"].put(record, "amount", HOSTILE)
    # HubSpot's 207 multi-status: one input of the batch refused with the CRM's own message text.
    emulator.add_fault(FaultRule(kind="partial_failure", path_prefix="/crm/v3/objects/contacts/batch/update",
                                 count=1, body={"category": "VALIDATION_ERROR", "message": HOSTILE}))
    result = CliRunner().invoke(cli, ["sync"])
    no_traceback(result)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    data_line = next(line for line in lines if line.startswith("  data "))
    assert data_line == f"  data deal {deal_id}, field amount: '{HOSTILE}' is not a number; the deal is skipped"
    rejected = [line for line in lines if line.startswith("  rejected ")]
    assert len(rejected) == 1 and rejected[0].endswith(HOSTILE), result.output
    # Our own label is styled, not printed as markup source.
    assert "  [red]rejected[/] " not in result.output


def test_error_messages_keep_their_brackets_and_config_keys_print_literally(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: tuple[SandboxServer, HubSpotEmulator]) -> None:
    server, emulator = sandbox
    path = configure(tmp_path, server, monkeypatch, emulator.token)
    # Unknown keys whose names are markup: a top-level key and a table.
    path.write_text('"[link=http://evil]x[/link]" = 1\n' + path.read_text() + '\n["[/x]"]\nkind = 1\n')
    runner = CliRunner()
    for args in (["sync"], ["check"], ["score", "-o", "s.csv"], ["report"], ["runs"]):
        result = runner.invoke(cli, args)
        no_traceback(result)
        assert result.exit_code in (1, 2), (args, result.output)
        assert "[/x]" in result.output and "[link=http://evil]x[/link]" in result.output, (args, result.output)
    checked = runner.invoke(cli, ["config", "check", "clm.toml"])
    no_traceback(checked)
    assert checked.exit_code == 2 and "[link=http://evil]x[/link]" in checked.output


def test_a_config_path_with_markup_prints_literally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "cfg[red"
    folder.mkdir()
    runner = CliRunner()
    assert runner.invoke(cli, ["init", "--crm", "hubspot", "--path", "cfg[red/x].toml"]).exit_code == 0
    result = runner.invoke(cli, ["config", "check", "cfg[red/x].toml"])
    no_traceback(result)
    assert result.exit_code == 0 and "✓ cfg[red/x].toml: valid (hubspot)" in result.output


def test_control_characters_in_crm_text_are_shown_escaped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: tuple[SandboxServer, HubSpotEmulator]) -> None:
    # An OSC 8 hyperlink and a colour change hidden in CRM text: shown as text, never sent to the terminal.
    server, emulator = sandbox
    configure(tmp_path, server, monkeypatch, emulator.token)
    hidden = "\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\ \x1b[31mred"
    emulator.add_fault(FaultRule(kind="partial_failure", path_prefix="/crm/v3/objects/contacts/batch/update",
                                 count=1, body={"category": "VALIDATION_ERROR", "message": hidden}))
    result = CliRunner().invoke(cli, ["sync"])
    no_traceback(result)
    assert "\x1b" not in result.output
    assert "\\x1b]8;;http://evil\\x1b\\click" in result.output


def test_progress_bars_print_step_names_literally(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    from cli import commands

    monkeypatch.setattr(commands, "err_console", Console(file=screen, force_terminal=True, width=100))
    with commands.progress_bars(True) as update:
        update("[/x]", 1, 2)
    assert "[/x]" in screen.getvalue()
