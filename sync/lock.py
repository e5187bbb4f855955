"""One run at a time per state file: a lock file naming its holder, recovered when the holder is dead."""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from core.errors import StateError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class RunLock:
    """``with RunLock(path):`` — refuses when another live process holds it; takes over a stale lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.recovered_from: dict[str, object] | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": datetime.now(UTC).isoformat()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and self._live(holder):
                    raise StateError(
                        f"another clm run holds {self.path}: pid {holder.get('pid')} on {holder.get('host')} "
                        f"since {holder.get('since')}",
                        hint="wait for it to finish; if that process is gone, delete the lock file",
                    ) from None
                # The holder died without cleaning up (kill -9, power loss): take the lock over.
                self.recovered_from = holder or {}
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as handle:
                json.dump(me, handle)
            return self
        raise StateError(f"could not take the lock {self.path}", hint="another run is starting; try again")

    def _holder(self) -> dict[str, object] | None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    @staticmethod
    def _live(holder: dict[str, object]) -> bool:
        pid = holder.get("pid")
        if holder.get("host") != socket.gethostname():
            return True  # cannot tell for another machine: be safe
        return isinstance(pid, int) and _alive(pid)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.path.unlink(missing_ok=True)
