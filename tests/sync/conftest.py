"""The state stores the sync runs on, as fixtures: the SQLite file, and PostgreSQL in a throwaway cluster.

Tests of the :class:`sync.state.StateStore` contract take ``make_store`` (or ``state_url``) and run once per store.
The PostgreSQL cluster is started once per session by the fixture itself (``initdb`` into a temporary folder,
``pg_ctl start`` listening on a Unix socket there only, so no port is taken), the same way here and in CI, where
``.ci/run`` installs Debian's ``postgresql`` for its binaries. Without them, or without psycopg, the PostgreSQL
cases skip and say why. PostgreSQL refuses to run as root: as root the cluster runs as the ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from sync.state import SQLiteState, StateStore

#: A role whose sessions must give a password (scram-sha-256), to prove the password reaches the server from the
#: environment; every other role is trusted on the cluster's private socket.
PASSWORD_ROLE = "clm_secret"
PASSWORD = "s3cret-for-tests-only"


def _bindir() -> Path | None:
    """A folder with initdb, pg_ctl and postgres: next to pg_ctl on the PATH, else Debian's newest."""
    candidates = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(os.path.realpath(on_path)).parent)
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in candidates:
        if all((folder / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


class PostgresCluster:
    """A PostgreSQL server of our own for the session, reachable on a Unix socket in its folder."""

    def __init__(self, bindir: Path, root: Path, user: str | None) -> None:
        self.bindir, self.root, self.user = bindir, root, user
        self.data = root / "data"
        self._names = count(1)

    def _run(self, *args: str) -> None:
        done = subprocess.run(args, user=self.user, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> None:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "clm", "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        hba = self.data / "pg_hba.conf"
        hba.write_text(f"local all {PASSWORD_ROLE} scram-sha-256\nlocal all all trust\n")
        if self.user:
            shutil.chown(hba, self.user)
        # Durability is not under test here: fsync off makes the many small commits of the tests cheap.
        options = f"-k {self.root} -c listen_addresses='' -c fsync=off -c synchronous_commit=off " \
                  "-c full_page_writes=off -c max_connections=60"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "log"),
                  "-w", "-t", "60", "start")
        with self.admin() as db:
            db.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'")

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def url(self, database: str, user: str = "clm") -> str:
        """The ``sync.state_url`` of ``database`` on this cluster."""
        return f"postgresql://{user}@/{database}?host={self.root}"

    def admin(self) -> Any:
        import psycopg

        return psycopg.connect(self.url("postgres"), autocommit=True)

    def new_database(self, owner: str = "clm") -> str:
        """A fresh, empty database (one per test keeps tests apart); returns its name."""
        name = f"t{os.getpid()}_{next(self._names)}"
        with self.admin() as db:
            db.execute(f"CREATE DATABASE {name} OWNER {owner} TEMPLATE template0")
        return name


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """The session's PostgreSQL cluster (skips when PostgreSQL or psycopg is not installed)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'crm-lifecycle[postgres]'): the PostgreSQL store's tests "
                    "need it")
    bindir = _bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) found: install Debian's postgresql, as .ci/run "
                    "does, to run the PostgreSQL store's tests")
    user = None
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres").pw_name
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the PostgreSQL server as (it "
                        "refuses root)")
    # Short and outside pytest's private temp folders: the socket path is limited to ~100 bytes and the server's
    # user must reach it.
    root = Path(tempfile.mkdtemp(prefix="clm-pg-"))
    if user:
        shutil.chown(root, user)
    cluster = PostgresCluster(bindir, root, user)
    try:
        cluster.start()
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        log = root / "log"
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"the test PostgreSQL cluster did not start: {exc}\n{log.read_text() if log.exists() else ''}")
    try:
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request: pytest.FixtureRequest) -> str | None:
    """None for the SQLite state file; for PostgreSQL, the URL of a fresh database of the session's cluster."""
    if request.param == "sqlite":
        return None
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.url(cluster.new_database())


@pytest.fixture
def make_store(tmp_path: Path, state_url: str | None) -> Iterator[Callable[..., StateStore]]:
    """Opens the store under test for a connection id: the file ``tmp_path/s.db``, or the test's database."""
    opened: list[StateStore] = []

    def make(connection_id: str = "x") -> StateStore:
        if state_url is None:
            store: StateStore = SQLiteState(tmp_path / "s.db", connection_id)
        else:
            from sync.state_postgres import PostgresState

            store = PostgresState(state_url, connection_id)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
