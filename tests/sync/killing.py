"""A sync run in a child process, killed with SIGKILL at chosen moments and then run to the end: the kill -9 tests
of every connector and state store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class KilledRuns:
    """``script`` (a sync run reading its arguments from ``sys.argv[1:]``) written into ``folder``, started again
    and again with ``argv``."""

    def __init__(self, script: str, folder: Path, *argv: str) -> None:
        path = folder / "run.py"
        path.write_text(script)
        self.args = [sys.executable, str(path), *argv]
        self.env = {**os.environ, "PYTHONPATH": str(REPO)}

    def kill_after(self, delays: Iterable[float], observe: Callable[[], None] | None = None) -> None:
        """Start the run and SIGKILL it after each delay in turn, calling ``observe`` after each kill."""
        for delay in delays:
            proc = subprocess.Popen(self.args, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if observe is not None:
                observe()

    def kill_when(self, ready: Iterable[Callable[[], bool]], timeout: float = 120.0) -> None:
        """Start the run and SIGKILL it as soon as each condition in turn holds (polled every 10 ms), however
        slow the machine: e.g. once it has written something, which fixed delays miss on a loaded machine. A run
        that ends first, or a condition still false after ``timeout`` seconds, fails the test."""
        for condition in ready:
            proc = subprocess.Popen(self.args, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            give_up = time.monotonic() + timeout
            while not condition():
                assert proc.poll() is None, "the run ended before the moment it was to be killed at"
                assert time.monotonic() < give_up, f"the run did not reach its kill point in {timeout:.0f} s"
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def finish(self) -> subprocess.CompletedProcess[str]:
        """Run once more, to the end; it must succeed."""
        final = subprocess.run(self.args, env=self.env, capture_output=True, text=True, timeout=300)
        assert final.returncode == 0, final.stderr[-2000:]
        return final
