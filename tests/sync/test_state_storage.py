"""Storage failures of the state file (issue 14): a full disk, a read-only file or mount, permission denied, a
damaged page, a directory at the path. Each is a StateError naming the path and a fix, and the store writes
nothing more after it; through the CLI, a message and a hint, a non-zero exit and no traceback."""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.main import cli  # first: it registers the commands' modules
from connectors.sandbox.generator import generate
from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits, start_hubspot_sandbox
from connectors.sandbox.server import SandboxServer
from core.errors import StateError
from core.models import Contact
from sync.state import SQLiteState

T = datetime(2026, 1, 1, tzinfo=UTC)


def contacts(n: int, start: int = 0) -> list[Contact]:
    return [Contact(id=str(i), created_at=T, properties={"jobtitle": "x" * 200}) for i in range(start, start + n)]


def page(state: SQLiteState, batch: list[Contact], cursor: str) -> None:
    state.apply_page(batch, [], [], [], {"contacts": cursor}, {}, keep_properties={"jobtitle"})


def filled(path: Path, n: int = 400) -> None:
    state = SQLiteState(path, "x")
    page(state, contacts(n), "1")
    state.close()  # the last connection's close checkpoints the WAL into the file


def test_a_directory_at_the_state_path_is_named_so_and_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    mode = stat.S_IMODE(folder.stat().st_mode)
    with pytest.raises(StateError) as caught:
        SQLiteState(folder, "x")
    assert caught.value.message == f"the state path {folder} is a directory, not a file"
    assert caught.value.hint is not None and str(folder / "state.db") in caught.value.hint
    assert stat.S_IMODE(folder.stat().st_mode) == mode  # not chmod-ed to 0600 on the way


def test_a_file_that_is_not_a_database_is_called_damaged(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is a spreadsheet someone saved here\n" * 200)
    with pytest.raises(StateError, match=r"state file .*state\.db is damaged or not a state file \(file is not a "
                                         r"database\)") as caught:
        SQLiteState(path, "x")
    assert caught.value.hint is not None and "move it aside" in caught.value.hint


def test_a_page_damaged_mid_file_stops_the_store(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    filled(path)
    size = path.stat().st_size
    with path.open("r+b") as handle:  # garbage over the pages in the middle of the file, not its header
        handle.seek(size // 2)
        handle.write(os.urandom(8192))
    with pytest.raises(StateError, match="is damaged") as caught:
        state = SQLiteState(path, "x")
        state.contacts()
    assert "malformed" in caught.value.message and str(path) in caught.value.message


def test_a_full_disk_mid_run_is_a_state_error_and_nothing_more_is_written(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    state = SQLiteState(path, "x")
    page(state, contacts(10), "1")
    pages = state.db.execute("PRAGMA page_count").fetchone()[0]
    # SQLite's own way to make a database "full": it may not grow past this many pages.
    state.db.execute(f"PRAGMA max_page_count = {pages + 1}")
    with pytest.raises(StateError) as caught:
        page(state, contacts(500, start=10), "2")
    assert caught.value.message == f"the disk holding the state file {path} is full (database or disk is full)"
    assert caught.value.hint is not None and "free space" in caught.value.hint and "resumes" in caught.value.hint
    # The store refuses everything after it (even a write that would fit) and the failed page left nothing.
    with pytest.raises(StateError, match="is full"):
        state.set_meta("x", "1")
    state.close()
    reopened = SQLiteState(path, "x")
    assert len(reopened.contacts()) == 10 and reopened.cursor() == {"contacts": "1"}
    assert reopened.meta_value("x") is None


def test_a_state_file_turned_read_only_mid_run_is_named_read_only(tmp_path: Path) -> None:
    state = SQLiteState(tmp_path / "state.db", "x")
    run_id = state.start_run("full", T)
    # What a file or mount turned read-only under an open connection gives (the suite may run as root, for whom
    # a chmod changes nothing): SQLITE_READONLY on the next write.
    state.db.execute("PRAGMA query_only = ON")
    with pytest.raises(StateError, match=r"state\.db is read-only \(attempt to write a readonly database\)") as caught:
        state.finish_run(run_id, "ok", {}, None)
    assert caught.value.hint is not None and "write access" in caught.value.hint


def test_a_state_file_owned_by_another_user_is_permission_denied(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.db"
    filled(path, 1)

    def refuse(target: Any, mode: int) -> None:  # chmod of a file another user owns (root passes every check)
        raise PermissionError(errno.EPERM, "Operation not permitted", str(target))

    monkeypatch.setattr(os, "chmod", refuse)
    with pytest.raises(StateError, match=r"cannot open the state file .*permission denied") as caught:
        SQLiteState(path, "x")
    assert caught.value.hint is not None and "write access" in caught.value.hint


def test_a_state_path_under_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(StateError, match="a part of its folder path is a file"):
        SQLiteState(tmp_path / "notes.txt" / "state.db", "x")


def test_our_own_bugs_are_not_passed_off_as_storage_errors(tmp_path: Path) -> None:
    state = SQLiteState(tmp_path / "state.db", "x")
    with pytest.raises(sqlite3.ProgrammingError):
        state.apply_page(contacts(1), [], [], [], {"contacts": object()}, {})  # type: ignore[dict-item]
    page(state, contacts(1), "1")  # and the store goes on working


# --- through the CLI ----------------------------------------------------------------------------------------


@pytest.fixture
def sandbox() -> Iterator[tuple[SandboxServer, HubSpotEmulator]]:
    data = generate(120, seed=5)
    server, emulator = start_hubspot_sandbox(data.contact_records(), data.deal_records(),
                                             rate_limits=RateLimits.off())
    yield server, emulator
    server.stop()


def configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: SandboxServer, token: str,
              state_path: str = ".clm/state.db") -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HUBSPOT_TOKEN", token)
    assert CliRunner().invoke(cli, ["init", "--crm", "hubspot"]).exit_code == 0
    path = tmp_path / "clm.toml"
    text = path.read_text().replace('base_url = "https://api.hubapi.com"',
                                    f'base_url = "{server.url}"\nbatch_size = 10\nmax_concurrency = 1')
    path.write_text(text.replace('state_path = ".clm/state.db"', f'state_path = "{state_path}"'))


def failed_cleanly(result: Result, message: str) -> None:
    assert result.exit_code not in (0, None), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert f"error: {message}" in result.output and "hint: " in result.output, result.output


def written_in_crm(emulator: HubSpotEmulator) -> int:
    return sum(1 for i in emulator.ids("contacts")
               if ((emulator.record("contacts", i) or {}).get("properties") or {}).get("clm_stage"))


def test_clm_sync_stops_at_a_full_disk_with_a_message_and_writes_no_more(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: tuple[SandboxServer, HubSpotEmulator]) -> None:
    server, emulator = sandbox
    configure(tmp_path, monkeypatch, server, emulator.token)
    save_plan = SQLiteState.save_plan

    def then_full(self: SQLiteState, run_id: int, plan: Any) -> None:
        save_plan(self, run_id, plan)
        self.db.execute(f"PRAGMA max_page_count = {self.db.execute('PRAGMA page_count').fetchone()[0]}")

    monkeypatch.setattr(SQLiteState, "save_plan", then_full)
    result = CliRunner().invoke(cli, ["sync"])
    failed_cleanly(result, f"the disk holding the state file {tmp_path / '.clm' / 'state.db'} is full")
    # The first batch (10 records) reached the CRM; its checkpoint did not fit, so no other batch was sent.
    assert written_in_crm(emulator) == 10


def test_clm_commands_name_a_state_file_they_may_not_use(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: tuple[SandboxServer, HubSpotEmulator]) -> None:
    # (A directory at the state path is refused earlier, by the configuration checks.)
    server, emulator = sandbox
    configure(tmp_path, monkeypatch, server, emulator.token)
    filled(tmp_path / ".clm" / "state.db", 1)

    def refuse(target: Any, mode: int) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted", str(target))

    monkeypatch.setattr(os, "chmod", refuse)
    for args in (["sync"], ["pull"], ["runs"], ["report"], ["score", "-o", "s.csv"]):
        failed_cleanly(CliRunner().invoke(cli, args), f"cannot open the state file {tmp_path / '.clm' / 'state.db'}")
    assert written_in_crm(emulator) == 0


def test_clm_sync_on_a_damaged_state_file_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: tuple[SandboxServer, HubSpotEmulator]) -> None:
    server, emulator = sandbox
    configure(tmp_path, monkeypatch, server, emulator.token)
    state = tmp_path / ".clm" / "state.db"
    state.parent.mkdir()
    state.write_bytes(b"\0" * 100 + b"not sqlite" * 500)
    failed_cleanly(CliRunner().invoke(cli, ["sync"]), f"the state file {state} is damaged")
