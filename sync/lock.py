"""One run at a time per state file, guaranteed by the operating system: an exclusive ``flock`` on a lock file.

The kernel grants ``flock(LOCK_EX | LOCK_NB)`` to one open file at a time and releases it when its holder's
descriptors close, which happens when the process ends however it ends (``kill -9`` and crashes included), so
there is no stale lock to guess about and no takeover to race (issue 14: the previous lock read a file created
but not yet written as stale, and two runs held it in 2–6 of 25 trials).

The lock file is created once and never deleted, not even after release: a process that opened the old file
and one that created a new file at the same path would each hold "the lock" on a different inode. The file
holds the holder's pid, host and start time, written after the lock is taken and emptied on a clean release.
That text is only for the message a second run prints; it never decides who holds the lock. Text left in the
file when the lock is next taken means the previous holder ended without releasing (``recovered_from``).

Network mounts (NFS, and Amazon EFS, the mount the README suggests for Lambda): since Linux 2.6.12 the NFS
client emulates ``flock()`` with ``fcntl()`` byte-range locks over the whole file (flock(2), "NFS details"),
which NFSv4 sends to the server as a LOCK operation. So the lock does exclude runs on other hosts, with POSIX
lock semantics:

- POSIX locks belong to a process, not to an open file: a second lock taken by the same process succeeds, and
  closing any descriptor of the file in that process drops the lock. Hence the in-process registry below
  refuses a second holder in this process before opening the file, and the holder never reopens it.
- A mount with ``local_lock=flock``, ``local_lock=all`` or ``nolock`` (nfs(5)) keeps flock locks on each client:
  then nothing excludes a run on another host.
- NFSv4 locks are leases: a client cut off from the server longer than the lease (90 s by default) loses its
  lock while its run may still be going, and a crashed host's lock is held until its lease expires.

For several scheduled jobs sharing state across hosts, the README recommends the PostgreSQL state store
(issue 15), whose lock lives in the database and is not subject to any of this.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from core.errors import StateError

#: Holder info of every lock file this process holds, by real path (see the module docstring: on NFS a second
#: lock in one process would succeed, and closing its descriptor would drop the first).
_HELD: dict[str, dict[str, object]] = {}
_HELD_GUARD = threading.Lock()

#: Holder info is a few dozen bytes; anything longer is not ours and is shown truncated.
_MAX_INFO = 4096


def _read_info(fd: int) -> dict[str, object] | None:
    """The holder info in the lock file, or None when it is empty or unreadable (for messages only)."""
    try:
        raw = os.pread(fd, _MAX_INFO, 0)
        data = json.loads(raw) if raw.strip() else None
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class RunLock:
    """``with RunLock(path):`` — hold the run lock of one state file, or raise StateError naming its holder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        #: Holder info a previous run left behind because it ended without releasing (killed, crashed).
        self.recovered_from: dict[str, object] | None = None
        self._fd: int | None = None
        self._key = ""

    def __enter__(self) -> RunLock:
        self._key = os.path.realpath(self.path)
        with _HELD_GUARD:
            if self._key in _HELD:
                raise self._busy(_HELD[self._key])
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_info(fd)
                os.close(fd)
                raise self._busy(holder) from None
            except OSError as exc:
                os.close(fd)
                # ENOLCK: an NFS mount whose lock service is unreachable; never run unlocked.
                raise StateError(f"cannot lock {self.path}: {exc.strerror}",
                                 hint="check the mount's locking (NFS: lock service reachable, no `nolock`)") from None
            me: dict[str, object] = {"pid": os.getpid(), "host": socket.gethostname(),
                                     "since": datetime.now(UTC).isoformat()}
            _HELD[self._key] = me
            self._fd = fd
        self.recovered_from = _read_info(fd)
        # The info only improves another run's message: failing to write it (full disk) leaves the lock held.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
        return self

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # O_NOFOLLOW: a symlink planted at the lock path must not make us create or truncate another file.
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StateError(f"cannot open the lock file {self.path}: {exc.strerror}",
                             hint="the state file's folder must be writable by this user") from None

    def _busy(self, holder: dict[str, object] | None) -> StateError:
        if holder:
            who = f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
        else:
            who = "a run that has just started (it has not recorded itself yet)"
        return StateError(f"another clm run holds {self.path}: {who}",
                          hint="wait for it to finish; the lock is released when that process ends, even if it "
                               "is killed, so never delete the lock file")

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with _HELD_GUARD:
            # A clean release leaves no info for the next holder to report as recovered; a disk that refuses the
            # truncation must not keep the lock held (the next run then reports a recovery, which is harmless).
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            _HELD.pop(self._key, None)
