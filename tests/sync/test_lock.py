"""The run lock under contention: one holder per state file, guaranteed by the OS (issue 14)."""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from multiprocessing.sharedctypes import SynchronizedArray
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from core.errors import StateError
from sync.lock import RunLock

TRIALS = 200
REPO = Path(__file__).resolve().parents[2]


def _contend(slot: int, base: Path, start: Barrier, tried: Barrier, took: SynchronizedArray[int]) -> None:
    """One contender: in every trial, take the lock at the same instant as the other and report the result."""
    for trial in range(TRIALS):
        # Each lock file serves two trials: first freshly created by the two racers, then reused after release.
        path = base / f"state-{trial // 2}.db.lock"
        start.wait()
        try:
            with RunLock(path):
                took[2 * trial + slot] = 1
                # Hold until the other has tried, so the two attempts overlap in every trial.
                tried.wait()
        except StateError:
            took[2 * trial + slot] = 0
            tried.wait()


def test_two_processes_starting_at_one_instant_never_both_hold_the_lock(tmp_path: Path) -> None:
    # fork: the contenders need no pickling and start in milliseconds; the barriers start both at one instant.
    ctx = multiprocessing.get_context("fork")
    start, tried = ctx.Barrier(2, timeout=20), ctx.Barrier(2, timeout=20)
    took = ctx.Array("b", [-1] * (2 * TRIALS))
    began = time.monotonic()
    racers = [ctx.Process(target=_contend, args=(slot, tmp_path, start, tried, took)) for slot in (0, 1)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(60)
    assert [r.exitcode for r in racers] == [0, 0]
    holders = [took[2 * t] + took[2 * t + 1] for t in range(TRIALS)]
    assert holders == [1] * TRIALS, f"trials without exactly one holder: {[t for t, h in enumerate(holders) if h != 1]}"
    # Both processes win some trials: the race is real, not one process always first.
    assert 0 < sum(took[0::2]) < TRIALS
    assert time.monotonic() - began < 20


HOLD = """
import sys, time
from pathlib import Path
from sync.lock import RunLock
with RunLock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_killed_holder_releases_the_lock_and_the_message_names_it(tmp_path: Path) -> None:
    path = tmp_path / "state.db.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StateError) as refused, RunLock(path):
            pass
        assert f"pid {holder.pid} on {socket.gethostname()} since " in refused.value.message
        assert "never delete the lock file" in (refused.value.hint or "")
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    finally:
        holder.kill()
    with RunLock(path) as lock:
        # kill -9 left its info behind: reported as recovered, but it decided nothing.
        assert lock.recovered_from is not None and lock.recovered_from["pid"] == holder.pid


def test_a_holder_that_has_not_written_its_info_yet_still_excludes(tmp_path: Path) -> None:
    # The old lock read a created-but-empty file as stale and took it over: the lock must not depend on the text.
    path = tmp_path / "state.db.lock"
    path.touch()
    raw = subprocess.Popen([sys.executable, "-c",
                            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); "
                            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)", str(path)],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert raw.stdout is not None and raw.stdout.readline().strip() == "held"
        with pytest.raises(StateError, match="has just started"), RunLock(path):
            pass
        # Info naming a dead process does not make a held lock free either.
        path.write_text(json.dumps({"pid": 2 ** 22 + 1, "host": socket.gethostname(), "since": "x"}))
        with pytest.raises(StateError, match=f"pid {2 ** 22 + 1}"), RunLock(path):
            pass
    finally:
        raw.kill()
        raw.wait(10)


def test_the_lock_file_stays_private_and_is_emptied_on_release(tmp_path: Path) -> None:
    path = tmp_path / "state" / "state.db.lock"
    with RunLock(path) as lock:
        assert lock.recovered_from is None
        info = json.loads(path.read_text())
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
        inode = path.stat().st_ino
    # Never deleted (a new file would be a new inode, and two runs could each lock one), only emptied.
    assert path.stat().st_ino == inode and path.read_text() == ""
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with RunLock(path) as lock:
        assert lock.recovered_from is None, "a clean release is not reported as a recovery"
    # Free again: another process can take it with a plain flock.
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


def test_one_process_cannot_hold_one_lock_twice(tmp_path: Path) -> None:
    # On NFS flock is a POSIX lock, which a second attempt of the same process would get: refused before opening.
    path = tmp_path / "state.db.lock"
    with RunLock(path):
        with pytest.raises(StateError, match=f"pid {os.getpid()}"), RunLock(tmp_path / "." / "state.db.lock"):
            pass
        assert json.loads(path.read_text())["pid"] == os.getpid(), "the refused attempt left the holder's info"
    with RunLock(path):
        pass


def test_a_symlink_at_the_lock_path_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "state.db.lock").symlink_to(victim)
    with pytest.raises(StateError, match="cannot open the lock file"), RunLock(tmp_path / "state.db.lock"):
        pass
    assert victim.read_text() == "keep me"
