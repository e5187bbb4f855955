"""The state store: private file, atomic pages, identity, full-pull deletions, lock."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.errors import StateError
from core.models import Contact, Deal, DealStatus
from sync.lock import RunLock
from sync.state import SQLiteState, StateStore

T = datetime(2026, 1, 1, tzinfo=UTC)


def contact(i: str, **props: object) -> Contact:
    return Contact(id=i, email=f"{i}@example.com", created_at=T, properties=props)  # type: ignore[arg-type]


def test_state_file_is_private_and_holds_no_email(tmp_path: Path) -> None:
    state = SQLiteState(tmp_path / ".clm" / "state.db", "hubspot:test")
    state.apply_page([contact("1", jobtitle="CEO", clm_stage="lead", secret_note="x")], [], [], [],
                     {"contacts": "5"}, {"clm_stage": "stage"}, keep_properties={"jobtitle"})
    mode = stat.S_IMODE(os.stat(state.path).st_mode)
    assert mode == 0o600
    state.close()
    raw = state.path.read_bytes()
    assert b"example.com" not in raw and b"secret_note" not in raw
    state = SQLiteState(state.path, "hubspot:test")
    [c] = state.contacts()
    assert c.properties == {"jobtitle": "CEO"}
    assert state.owned_values() == {"1": {"stage": "lead"}}
    assert state.cursor() == {"contacts": "5"}


def test_state_belongs_to_one_connection(tmp_path: Path) -> None:
    SQLiteState(tmp_path / "s.db", "hubspot:a").close()
    with pytest.raises(StateError, match="another CRM connection"):
        SQLiteState(tmp_path / "s.db", "hubspot:b")


def test_full_pull_drops_records_that_are_gone(make_store: Callable[..., StateStore]) -> None:
    state = make_store()
    deal = Deal(id="d1", amount=5.0, status=DealStatus.WON, created_at=T, closed_at=T, contact_ids=("1",))
    state.apply_page([contact("1"), contact("2")], [deal], [], [], {}, {})
    state.start_full_pull()
    state.apply_page([contact("1")], [], [], [], {"contacts": "9"}, {})
    assert state.finish_full_pull() == (1, 1)
    assert [c.id for c in state.contacts()] == ["1"] and state.deals() == []


def test_a_failed_page_changes_nothing(make_store: Callable[..., StateStore]) -> None:
    state = make_store()
    # A value the driver cannot send is our bug: sqlite3's or psycopg's ProgrammingError, not a storage error.
    with pytest.raises(Exception) as raised:
        state.apply_page([contact("1")], [], [], [], {"contacts": object()}, {})  # type: ignore[dict-item]
    assert type(raised.value).__name__ == "ProgrammingError"
    assert state.contacts() == [] and state.cursor() == {}


def test_lock_refuses_a_live_holder_and_recovers_a_dead_one(tmp_path: Path) -> None:
    path = tmp_path / "state.db.lock"
    with RunLock(path), pytest.raises(StateError, match=f"pid {os.getpid()}"), RunLock(path):
        pass
    assert path.exists() and path.read_text() == ""  # never deleted: a new file would be a new, unlocked inode
    # A process that died holding the lock (kill -9 leaves the file behind).
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import json
    import socket

    path.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "since": "x"}))
    with RunLock(path) as lock:
        assert lock.recovered_from is not None and lock.recovered_from["pid"] == int(dead.stdout)


def test_stage_moves_between_two_runs_in_run_order(make_store: Callable[..., StateStore]) -> None:
    # The report's stage flow (clm report --compare A B) reads these on either store.
    state = make_store()
    runs = [state.start_run("sync", T) for _ in range(3)]
    state.save_stage_moves(runs[0], [("7", None, "lead")])
    state.save_stage_moves(runs[1], [("b2", "lead", "customer"), ("a1", None, "lead")])
    state.save_stage_moves(runs[2], [("a1", "lead", "sales_qualified")])
    state.save_stage_moves(runs[2], [("a1", "lead", "customer")])  # the run's last word on a contact counts
    assert state.stage_moves(runs[0], runs[2]) == [("a1", None, "lead"), ("b2", "lead", "customer"),
                                                   ("a1", "lead", "customer")]
    assert state.stage_moves(runs[1], runs[2]) == [("a1", "lead", "customer")]
    assert state.stage_moves(runs[2], runs[2]) == []
