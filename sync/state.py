"""The local state of one CRM connection: mirror, cursors, what we wrote, the write plan, runs, rejections.

SQLite by default (one file, created owner-only); :class:`StateStore` is the interface another backend
(PostgreSQL for serverless fleets) would implement. Cursors, checkpoints and "last written" values are rows,
so a crashed run is just a run that stopped early: the next one reads the same rows and carries on.

The mirror keeps only what the engine needs: ids, times, the configured properties, deal amounts and
associations, and the CRM's current values of our own fields. No email addresses or names.
"""

from __future__ import annotations

import errno
import functools
import inspect
import json
import math
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from core.columns import ContactRows, DealRows
from core.errors import StateError
from core.models import Contact, Deal, DealStatus
from core.redact import redact, redact_values
from sync.lock import RunLock

SCHEMA_VERSION = 2
#: Version 1 kept one ``written`` row per record and field; settling a batch upserted 13 rows a record. Version 2
#: keeps one JSON object per record (``written_values``), merged in SQL with ``json_patch``: one row a record.
_MIGRATE_1_TO_2 = """
INSERT INTO written_values (record_id, vals, run_id)
    SELECT record_id, json_group_object(field, json(value)), MAX(run_id) FROM written GROUP BY record_id;
DROP TABLE written;
"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cursors (object TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS contacts (
    id TEXT PRIMARY KEY, created_at REAL NOT NULL, updated_at REAL, props TEXT NOT NULL, owned TEXT NOT NULL,
    seen INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS deals (
    id TEXT PRIMARY KEY, amount REAL, currency TEXT, status TEXT NOT NULL, created_at REAL NOT NULL,
    closed_at REAL, updated_at REAL, contact_ids TEXT NOT NULL, props TEXT NOT NULL,
    seen INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS written_values (
    record_id TEXT PRIMARY KEY, vals TEXT NOT NULL, run_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS plan (
    run_id INTEGER NOT NULL, record_id TEXT NOT NULL, seq INTEGER NOT NULL, values_json TEXT NOT NULL,
    state TEXT NOT NULL, PRIMARY KEY (run_id, record_id));
CREATE INDEX IF NOT EXISTS plan_state ON plan (run_id, state, seq);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL, finished_at TEXT, status TEXT NOT NULL,
    mode TEXT NOT NULL, as_of TEXT NOT NULL, summary TEXT, metrics TEXT);
CREATE TABLE IF NOT EXISTS rejections (
    record_id TEXT PRIMARY KEY, field TEXT, reason TEXT NOT NULL, transient INTEGER NOT NULL,
    values_hash TEXT NOT NULL, attempts INTEGER NOT NULL, first_run INTEGER NOT NULL, last_run INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS stages (contact_id TEXT PRIMARY KEY, stage TEXT NOT NULL, since REAL NOT NULL);
CREATE TABLE IF NOT EXISTS stage_moves (
    run_id INTEGER NOT NULL, contact_id TEXT NOT NULL, before TEXT, after TEXT, PRIMARY KEY (run_id, contact_id));
CREATE INDEX IF NOT EXISTS stage_moves_contact ON stage_moves (contact_id);
"""


@dataclass(frozen=True)
class RunRecord:
    """One run in the history."""

    id: int
    started_at: str
    finished_at: str | None
    status: str
    mode: str
    as_of: str
    summary: dict[str, Any]
    metrics: dict[str, Any] | None


@dataclass(frozen=True)
class Rejection:
    """A record the CRM refused, kept so it is reported and not retried forever."""

    record_id: str
    field: str | None
    reason: str
    transient: bool
    values_hash: str
    attempts: int


class StateStore(Protocol):
    """What the sync needs from a state backend: :class:`SQLiteState` (a file) or
    :class:`sync.state_postgres.PostgresState` (a database shared by a fleet of jobs). See :class:`SQLiteState`
    for what each does."""

    @property
    def location(self) -> str:
        """Where the state is, for messages (a path, or a database URL without credentials)."""
        ...

    def run_lock(self) -> AbstractContextManager[object]:
        """The lock a run holds so that one connection's runs never overlap."""
        ...

    def close(self) -> None: ...
    def cursor(self) -> dict[str, str]: ...
    def start_full_pull(self) -> None: ...
    def full_pull_in_progress(self) -> bool: ...
    def meta_value(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str | None) -> None: ...
    def finish_full_pull(self) -> tuple[int, int]: ...
    def retain(self, contact_ids: Sequence[str] | None, deal_ids: Sequence[str] | None) -> tuple[int, int]: ...
    def apply_page(self, contacts: Sequence[Contact], deals: Sequence[Deal], deleted_contacts: Sequence[str],
                   deleted_deals: Sequence[str], cursor: Mapping[str, str], owned_names: Mapping[str, str],
                   keep_properties: Iterable[str] = (),
                   merged_contacts: Mapping[str, str] | None = None) -> tuple[int, int]: ...
    def set_owned(self, values: Mapping[str, Mapping[str, Any]]) -> None: ...
    def contacts(self) -> list[Contact]: ...
    def deals(self) -> list[Deal]: ...
    def contact_rows(self, properties: Iterable[str]) -> ContactRows: ...
    def deal_rows(self, properties: Iterable[str]) -> DealRows: ...
    def owned_values(self) -> dict[str, dict[str, Any]]: ...
    def counts(self) -> dict[str, int]: ...
    def stages(self) -> dict[str, tuple[str, float]]: ...
    def save_stages(self, rows: Iterable[tuple[str, str, float]]) -> None: ...
    def save_stage_moves(self, run_id: int, rows: Iterable[tuple[str, str | None, str | None]]) -> None: ...
    def stage_moves(self, run_a: int, run_b: int) -> list[tuple[str, str | None, str | None]]: ...
    def written(self) -> dict[str, dict[str, Any]]: ...
    def record_written(self, run_id: int, values: Mapping[str, Mapping[str, Any]]) -> None: ...
    def save_plan(self, run_id: int, plan: Sequence[tuple[str, Mapping[str, Any]]]) -> None: ...
    def in_flight(self) -> dict[str, dict[str, Any]]: ...
    def settle_batch(self, run_id: int, written: Mapping[str, Mapping[str, Any]],
                     rejected: Sequence[tuple[Rejection, int]], gone: Sequence[str], *,
                     now_current: bool = False, planned: bool = False) -> None: ...
    def close_plans(self) -> None: ...
    def rejections(self) -> dict[str, Rejection]: ...
    def start_run(self, mode: str, as_of: datetime) -> int: ...
    def finish_run(self, run_id: int, status: str, summary: Mapping[str, Any],
                   metrics: Mapping[str, Any] | None) -> None: ...
    def runs(self, limit: int = 50) -> list[RunRecord]: ...
    def run(self, run_id: int) -> RunRecord: ...
    def mark_interrupted_runs(self) -> int: ...


def _epoch(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment else None


def _time(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value is not None else None


_RESUMES = "the run stopped at its last checkpoint and the next one resumes from there"
_WRITABLE = ("give this user write access to the file and to its folder (SQLite writes its -wal and -shm files "
             "next to it), or set sync.state_path to a folder it can write; " + _RESUMES)


def storage_error(path: Path, exc: sqlite3.DatabaseError | OSError) -> StateError:
    """The state error for what SQLite or the OS refused on the state file at ``path``: what, where, what to do.

    SQLite's result codes (https://www.sqlite.org/rescode.html) name the class: SQLITE_FULL "database or disk is
    full", SQLITE_READONLY "attempt to write a readonly database", SQLITE_CORRUPT "database disk image is
    malformed", SQLITE_NOTADB "file is not a database", SQLITE_IOERR, SQLITE_CANTOPEN, SQLITE_PERM; the OS's errno
    the same classes for the file operations around it.
    """
    if path.is_dir():
        return StateError(f"the state path {path} is a directory, not a file",
                          hint=f"set sync.state_path to a file name, e.g. {path / 'state.db'}")
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    number = exc.errno if isinstance(exc, OSError) else None
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if primary == sqlite3.SQLITE_FULL or number in (errno.ENOSPC, errno.EDQUOT):
        return StateError(f"the disk holding the state file {path} is full ({detail})",
                          hint=f"free space on it, or set sync.state_path to another disk; {_RESUMES}")
    if primary in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM) or number == errno.EROFS:
        return StateError(f"the state file {path} is read-only ({detail})", hint=_WRITABLE)
    if primary == sqlite3.SQLITE_CANTOPEN or number in (errno.EACCES, errno.EPERM):
        return StateError(f"cannot open the state file {path}: permission denied or missing folder ({detail})",
                          hint=_WRITABLE)
    if number in (errno.ENOTDIR, errno.EEXIST):  # EEXIST: creating its folder found a file of that name
        return StateError(f"cannot create the state file {path}: a part of its folder path is a file ({detail})",
                          hint="set sync.state_path to a path under a folder")
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return StateError(f"the state file {path} is damaged or not a state file ({detail})",
                          hint="move it aside (keep it if you report a bug); the next run rebuilds the mirror with "
                               "a full pull")
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StateError(f"the state file {path} is locked by another program ({detail})",
                          hint="close whatever holds it open (a database browser, a backup) and run again")
    return StateError(f"reading or writing the state file {path} failed ({detail})",
                      hint=f"check the disk or network mount it is on; {_RESUMES}")


_S = TypeVar("_S")
#: Ids bound in one ``IN (...)`` list: below SQLite's default limit of 32,766 parameters.
_IDS_PER_STATEMENT = 10_000


def _stops_on_storage_errors(cls: type[_S]) -> type[_S]:
    """Turn every SQLite and OS error of the store's methods into a :func:`storage_error`, in one place, and make
    a store that failed once refuse every later call (but ``close``): after a full disk, a read-only mount or a
    damaged page nothing more is written, and no caller carries on with a half-written checkpoint."""

    def guarded(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            failure = getattr(self, "_failure", None)
            if failure is not None and method.__name__ != "close":
                raise StateError(failure.message, hint=failure.hint)
            try:
                return method(self, *args, **kwargs)
            except (sqlite3.DatabaseError, OSError) as exc:
                if isinstance(exc, sqlite3.ProgrammingError | sqlite3.IntegrityError):
                    raise  # our bug (a value SQLite cannot bind, a broken constraint), not the storage's
                self._failure = storage_error(self.path, exc)
                raise self._failure from None
        return wrapper

    for name, member in list(vars(cls).items()):
        # ``transaction`` is entered inside the public methods, which are guarded already.
        if inspect.isfunction(member) and (name == "__init__" or not name.startswith("_")) and name != "transaction":
            setattr(cls, name, guarded(member))
    return cls


@_stops_on_storage_errors
class SQLiteState:
    """The SQLite state store. One writer at a time (see :mod:`sync.lock`); commits per page and batch.

    Storage failures (full disk, read-only file or mount, permission, damage, a directory at the path) raise a
    :class:`StateError` naming the path and a fix, and stop the store (see :func:`_stops_on_storage_errors`).
    """

    def __init__(self, path: Path, connection_id: str) -> None:
        self.path = path
        self.connection_id = connection_id
        self._failure: StateError | None = None
        if path.is_dir():  # before chmod, which would make the folder unusable
            raise storage_error(path, IsADirectoryError(errno.EISDIR, "is a directory", str(path)))
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            # Created private before SQLite opens it: the mirror holds customer data.
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        os.chmod(path, 0o600)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        # Settling a batch touches one mirror row per record, scattered over the file (the plan is in id order,
        # the table in pull order): with SQLite's default 2 MB page cache each of those is a read from the OS.
        # 64 MB keeps the pages of a large mirror's hot tables in memory; it is an upper bound, not an allocation.
        self.db.execute("PRAGMA cache_size=-65536")
        self.db.executescript(_SCHEMA)
        self._check_identity(connection_id)

    def _check_identity(self, connection_id: str) -> None:
        rows = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        if not rows:
            with self.transaction():
                self.db.executemany("INSERT INTO meta VALUES (?, ?)",
                                    [("schema", str(SCHEMA_VERSION)), ("connection", connection_id)])
            return
        if rows.get("schema") == "1":
            with self.transaction() as db:
                for statement in _MIGRATE_1_TO_2.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
            rows["schema"] = str(SCHEMA_VERSION)
        if rows.get("schema") != str(SCHEMA_VERSION):
            raise StateError(f"{self.path} was written by another version (schema {rows.get('schema')})",
                             hint="move it aside; the next run rebuilds it with a full pull")
        if rows.get("connection") != connection_id:
            raise StateError(
                f"{self.path} belongs to another CRM connection ({rows.get('connection')}, not {connection_id})",
                hint="if it is the same account under a new URL (a restarted sandbox, a corrected base_url), run "
                     "`clm state rebind`; for another account, set sync.state_path to a separate file",
            )

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    @property
    def location(self) -> str:
        """The state file's path, for messages."""
        return str(self.path)

    def run_lock(self) -> RunLock:
        """The run lock of this state file: an OS lock on a ``.lock`` file beside it (see :mod:`sync.lock`)."""
        return RunLock(self.path.with_name(self.path.name + ".lock"))

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit: a pulled page, a written batch."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            # SQLite has already rolled back after some errors (a full disk, an I/O error): a second ROLLBACK
            # would fail and hide the error that matters.
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- pull / mirror ---------------------------------------------------------------------------------

    def cursor(self) -> dict[str, str]:
        """The stored incremental cursor per object type (empty: never fully pulled)."""
        return dict(self.db.execute("SELECT object, value FROM cursors").fetchall())

    def start_full_pull(self) -> None:
        """Mark every mirrored record unseen; :meth:`finish_full_pull` drops those a full pull did not return.

        The pull is marked under way until then, so a run stopped mid-pull resumes it (from the cursors its
        pages stored) instead of starting over, and the records it already saw stay seen.
        """
        with self.transaction() as db:
            db.execute("UPDATE contacts SET seen = 0")
            db.execute("UPDATE deals SET seen = 0")
            db.execute("DELETE FROM cursors")
            db.execute("INSERT INTO meta VALUES ('full_pull', ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                       (datetime.now(UTC).isoformat(),))

    def full_pull_in_progress(self) -> bool:
        """Whether a full pull was started and has not completed."""
        return self.db.execute("SELECT 1 FROM meta WHERE key = 'full_pull'").fetchone() is not None

    def meta_value(self, key: str) -> str | None:
        """A small named value the sync keeps between runs (None when unset)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (f"sync.{key}",)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str | None) -> None:
        """Set (or with None, forget) a named value."""
        with self.transaction() as db:
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", (f"sync.{key}",))
            else:
                db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                           (f"sync.{key}", value))

    def finish_full_pull(self) -> tuple[int, int]:
        """Drop records a complete full pull did not see; returns (contacts, deals) dropped."""
        with self.transaction() as db:
            contacts = db.execute("DELETE FROM contacts WHERE seen = 0").rowcount
            deals = db.execute("DELETE FROM deals WHERE seen = 0").rowcount
            db.execute("DELETE FROM meta WHERE key = 'full_pull'")
        return contacts, deals

    def retain(self, contact_ids: Sequence[str] | None, deal_ids: Sequence[str] | None) -> tuple[int, int]:
        """Keep only the given contacts and deals (a reconciling sweep's every live id; None leaves that kind
        alone): the others were deleted in the CRM where no deletion record is left. Returns how many dropped."""
        dropped = []
        with self.transaction() as db:
            db.execute("CREATE TEMP TABLE IF NOT EXISTS live_ids (id TEXT PRIMARY KEY)")
            for table, ids in (("contacts", contact_ids), ("deals", deal_ids)):
                if ids is None:
                    dropped.append(0)
                    continue
                db.execute("DELETE FROM live_ids")
                db.executemany("INSERT OR IGNORE INTO live_ids VALUES (?)", [(i,) for i in ids])
                gone = [row[0] for row in db.execute(
                    f"SELECT id FROM {table} WHERE id NOT IN (SELECT id FROM live_ids)").fetchall()]
                if table == "contacts":
                    self._drop_contacts(db, gone)
                else:
                    db.executemany("DELETE FROM deals WHERE id = ?", [(i,) for i in gone])
                dropped.append(len(gone))
            db.execute("DELETE FROM live_ids")
        return dropped[0], dropped[1]

    def apply_page(
        self,
        contacts: Sequence[Contact],
        deals: Sequence[Deal],
        deleted_contacts: Sequence[str],
        deleted_deals: Sequence[str],
        cursor: Mapping[str, str],
        owned_names: Mapping[str, str],
        keep_properties: Iterable[str] = (),
        merged_contacts: Mapping[str, str] | None = None,
    ) -> tuple[int, int]:
        """Merge one pulled page into the mirror and advance the cursor, atomically; returns how many contacts
        and deals were new or changed.

        ``owned_names`` maps CRM property names of our fields to logical names: their current CRM values are
        kept apart (``owned``) to detect edits made in the CRM. ``keep_properties`` limits what is stored.
        ``merged_contacts`` maps ids merged away to the record they became (see :meth:`_merge_contacts`).
        """
        keep = set(keep_properties)
        with self.transaction() as db:
            contacts, deals = self._changed(db, contacts, deals, keep, owned_names)
            contact_rows = []
            for c in contacts:
                props = {k: _plain(v) for k, v in c.properties.items() if k in keep}
                owned = {owned_names[k]: _plain(v) for k, v in c.properties.items() if k in owned_names}
                contact_rows.append((c.id, c.created_at.timestamp(), _epoch(c.updated_at), json.dumps(props),
                                     json.dumps(owned)))
            deal_rows = [
                (d.id, d.amount, d.currency, d.status.value, d.created_at.timestamp(), _epoch(d.closed_at),
                 _epoch(d.updated_at), json.dumps(list(d.contact_ids)),
                 json.dumps({k: _plain(v) for k, v in d.properties.items() if k in keep}))
                for d in deals
            ]
            db.executemany(
                "INSERT INTO contacts (id, created_at, updated_at, props, owned, seen) VALUES (?, ?, ?, ?, ?, 1) "
                "ON CONFLICT(id) DO UPDATE SET created_at=excluded.created_at, updated_at=excluded.updated_at, "
                "props=excluded.props, owned=excluded.owned, seen=1",
                contact_rows,
            )
            db.executemany(
                "INSERT INTO deals (id, amount, currency, status, created_at, closed_at, updated_at, contact_ids, "
                "props, seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT(id) DO UPDATE SET "
                "amount=excluded.amount, currency=excluded.currency, status=excluded.status, "
                "created_at=excluded.created_at, closed_at=excluded.closed_at, updated_at=excluded.updated_at, "
                "contact_ids=excluded.contact_ids, props=excluded.props, seen=1",
                deal_rows,
            )
            if merged_contacts:
                self._merge_contacts(db, merged_contacts)
            if deleted_contacts:
                self._drop_contacts(db, deleted_contacts)
            if deleted_deals:
                db.executemany("DELETE FROM deals WHERE id = ?", [(i,) for i in deleted_deals])
            db.executemany("INSERT INTO cursors VALUES (?, ?) ON CONFLICT(object) DO UPDATE SET value=excluded.value",
                           list(cursor.items()))
        return len(contacts), len(deals)

    @staticmethod
    def _changed(db: sqlite3.Connection, contacts: Sequence[Contact], deals: Sequence[Deal],
                 keep: set[str], owned_names: Mapping[str, str]) -> tuple[list[Contact], list[Deal]]:
        """The records of a page the mirror does not already hold at the same modified time (and, for contacts,
        the same stored properties; for deals, the same contacts); the others are only marked seen. Lookback
        windows and the association sweep re-read records on purpose: this keeps a re-read from counting, or
        costing, as new data. Properties are compared because a CRM may re-send a contact whose own modified
        time did not move while its data did (Salesforce parent fields such as ``Account.Industry``).

        Our own writes move a contact's modified time too, so the next incremental pull returns every record we
        wrote. A contact whose stored properties are unchanged and whose values of our fields are the ones we
        hold (what we wrote, as the CRM formats it: numbers as text, datetimes as ISO text or epoch ms) is not
        new data either: it is only marked seen, neither stored again nor counted as pulled."""
        def split(table: str, records: Sequence[Any], key: Any, ours: Callable[[Any, Any], bool]) -> list[Any]:
            if not records:
                return []
            marks = ",".join("?" * len(records))
            extra = ", contact_ids, NULL" if table == "deals" else ", props, owned"
            known = {row[0]: row[1:] for row in db.execute(
                f"SELECT id, updated_at{extra} FROM {table} WHERE id IN ({marks})", [r.id for r in records])}
            fresh, same = [], []
            for r in records:
                stored = known.get(r.id)
                if stored is None:
                    fresh.append(r)
                    continue
                updated, text = key(r)
                # The stored text is what this encoding gave when the record was stored, so equal text is the
                # common, cheap case; otherwise the parsed values decide (the CRM may order keys differently).
                unchanged = text == stored[1] or (table == "contacts" and json.loads(text) == json.loads(stored[1]))
                if unchanged and (updated == stored[0] or ours(r, stored[2])):
                    same.append((r.id,))
                else:
                    fresh.append(r)
            db.executemany(f"UPDATE {table} SET seen = 1 WHERE id = ?", same)
            return fresh

        def stored_props(c: Contact) -> str:
            return json.dumps({k: _plain(v) for k, v in c.properties.items() if k in keep})

        def only_ours(c: Contact, owned_text: str) -> bool:
            owned = json.loads(owned_text)
            return all(_same_value(owned.get(name), c.properties.get(crm_name))
                       for crm_name, name in owned_names.items() if crm_name in c.properties or name in owned)

        return (split("contacts", contacts, lambda c: (_epoch(c.updated_at), stored_props(c)), only_ours),
                split("deals", deals, lambda d: (_epoch(d.updated_at), json.dumps(list(d.contact_ids))),
                      lambda d, _: False))

    def _merge_contacts(self, db: sqlite3.Connection, merged: Mapping[str, str]) -> None:
        """Move what we know of merged-away contacts to the record they became.

        A HubSpot merge creates a new record whose ``clm_*`` values are copied from the merged ones, and re-points
        their deals without changing the deals' modified time. So, for the survivor: a field we had written on any
        merged record counts as ours with the survivor's current value (not as a person's edit, which would block
        updates under ``on_conflict = "report"``); the earliest stage entry carries over; and every mirrored deal
        attributed to an old id is attributed to the survivor. Then the old ids are forgotten.
        """
        by_survivor: dict[str, list[str]] = {}
        for old, new in merged.items():
            if old != new:
                by_survivor.setdefault(new, []).append(old)
        for new, olds in by_survivor.items():
            marks = ",".join("?" * len(olds))
            row = db.execute("SELECT owned FROM contacts WHERE id = ?", (new,)).fetchone()
            owned = json.loads(row[0]) if row else {}
            ours = {f for (f,) in db.execute(
                f"SELECT DISTINCT key FROM written_values, json_each(vals) WHERE record_id IN ({marks})", olds)}
            run = db.execute(f"SELECT MAX(run_id) FROM written_values WHERE record_id IN ({marks})", olds).fetchone()[0]
            if ours:
                # What the survivor already has of its own wins over what is carried over.
                db.execute("INSERT INTO written_values VALUES (?, ?, ?) ON CONFLICT(record_id) DO UPDATE SET "
                           "vals = json_patch(excluded.vals, written_values.vals)",
                           (new, json.dumps({f: owned.get(f) for f in ours}), run or 0))
            db.execute(f"INSERT INTO stages SELECT ?, stage, since FROM stages WHERE contact_id IN ({marks}) "
                       "ORDER BY since LIMIT 1 ON CONFLICT(contact_id) DO NOTHING", (new, *olds))
            db.execute(f"DELETE FROM rejections WHERE record_id IN ({marks})", olds)
            for old in olds:
                pattern = f'%{json.dumps(old)}%'
                for deal_id, contact_ids in db.execute("SELECT id, contact_ids FROM deals WHERE contact_ids LIKE ?",
                                                       (pattern,)).fetchall():
                    ids = [new if i == old else i for i in json.loads(contact_ids)]
                    db.execute("UPDATE deals SET contact_ids = ? WHERE id = ?",
                               (json.dumps(list(dict.fromkeys(ids))), deal_id))
            self._drop_contacts(db, olds)

    def _drop_contacts(self, db: sqlite3.Connection, ids: Sequence[str]) -> None:
        rows = [(i,) for i in ids]
        db.executemany("DELETE FROM contacts WHERE id = ?", rows)
        db.executemany("DELETE FROM written_values WHERE record_id = ?", rows)
        db.executemany("DELETE FROM stages WHERE contact_id = ?", rows)
        db.executemany("DELETE FROM stage_moves WHERE contact_id = ?", rows)

    def drop_contacts(self, ids: Sequence[str]) -> None:
        """Forget contacts the CRM says are gone (deleted or merged away)."""
        with self.transaction() as db:
            self._drop_contacts(db, ids)

    def set_owned(self, values: Mapping[str, Mapping[str, Any]]) -> None:
        """Record the CRM's current values of our fields after we wrote them."""
        with self.transaction() as db:
            self._set_owned(db, values)

    @staticmethod
    def _set_owned(db: sqlite3.Connection, values: Mapping[str, Mapping[str, Any]] | str) -> None:
        # One statement for the batch (``values`` or its :func:`_batch_json` text), merged in SQL (RFC 7396 merge
        # patch: a null drops the key, which every reader treats as the same "no value"). A record deleted
        # meanwhile matches no row and is left alone.
        batch = values if isinstance(values, str) else _batch_json(values)
        db.execute("UPDATE contacts SET owned = json_patch(owned, w.value) FROM json_each(?) AS w "
                   "WHERE contacts.id = w.key", (batch,))

    def contacts(self) -> list[Contact]:
        """The mirrored contacts (our fields' CRM values excluded; see :meth:`owned_values`)."""
        return [
            Contact.model_construct(id=i, email=None, created_at=datetime.fromtimestamp(created, tz=UTC),
                                    updated_at=_time(updated), properties=json.loads(props), archived=False)
            for i, created, updated, props in self.db.execute(
                "SELECT id, created_at, updated_at, props FROM contacts ORDER BY id")
        ]

    def deals(self) -> list[Deal]:
        """The mirrored deals."""
        return [
            Deal.model_construct(id=i, amount=amount, currency=currency, pipeline=None, stage=None,
                                 status=DealStatus(status), created_at=datetime.fromtimestamp(created, tz=UTC),
                                 closed_at=_time(closed),
                                 updated_at=_time(updated), contact_ids=tuple(json.loads(contacts)),
                                 properties=json.loads(props), archived=False)
            for i, amount, currency, status, created, closed, updated, contacts, props in self.db.execute(
                "SELECT id, amount, currency, status, created_at, closed_at, updated_at, contact_ids, props "
                "FROM deals ORDER BY id")
        ]

    def contact_rows(self, properties: Iterable[str]) -> ContactRows:
        """The mirrored contacts as per-field lists for the engine (:func:`core.engine.enrich` takes them), with
        the named properties only: one JSON parse per contact, no record objects."""
        names = list(properties)
        ids: list[str] = []
        created: list[float] = []
        columns: dict[str, list[Any]] = {name: [] for name in names}
        appenders = [(name, columns[name].append) for name in names]
        for i, created_at, props in self.db.execute("SELECT id, created_at, props FROM contacts ORDER BY id"):
            ids.append(i)
            created.append(created_at)
            values = json.loads(props)
            for name, append in appenders:
                append(values.get(name))
        return ContactRows(ids=ids, created_at=created, properties=columns)

    def deal_rows(self, properties: Iterable[str]) -> DealRows:
        """The mirrored deals as per-field lists (see :meth:`contact_rows`)."""
        names = list(properties)
        out = DealRows(ids=[], amount=[], currency=[], status=[], created_at=[], closed_at=[], contact_ids=[],
                       properties={name: [] for name in names})
        appenders = [(name, out.properties[name].append) for name in names]
        for i, amount, currency, status, created, closed, contacts, props in self.db.execute(
                "SELECT id, amount, currency, status, created_at, closed_at, contact_ids, props FROM deals "
                "ORDER BY id"):
            out.ids.append(i)
            out.amount.append(amount)
            out.currency.append(currency)
            out.status.append(status)
            out.created_at.append(created)
            out.closed_at.append(closed)
            out.contact_ids.append(json.loads(contacts))
            values = json.loads(props)
            for name, append in appenders:
                append(values.get(name))
        return out

    def owned_values(self) -> dict[str, dict[str, Any]]:
        """The CRM's current values of our fields, per contact (as last pulled or written)."""
        return {i: json.loads(owned) for i, owned in self.db.execute("SELECT id, owned FROM contacts")}

    def counts(self) -> dict[str, int]:
        """How many contacts and deals the mirror holds."""
        return {
            "contacts": self.db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0],
            "deals": self.db.execute("SELECT COUNT(*) FROM deals").fetchone()[0],
        }

    # --- stages (previous run's stage and since) --------------------------------------------------------

    def stages(self) -> dict[str, tuple[str, float]]:
        """Each contact's stage and the time it entered it, as of the last completed computation."""
        return {i: (stage, since) for i, stage, since in self.db.execute("SELECT contact_id, stage, since FROM stages")}

    def save_stages(self, rows: Iterable[tuple[str, str, float]]) -> None:
        """Replace the stored stages with this run's."""
        with self.transaction() as db:
            db.execute("DELETE FROM stages")
            db.executemany("INSERT INTO stages VALUES (?, ?, ?)", rows)

    def save_stage_moves(self, run_id: int, rows: Iterable[tuple[str, str | None, str | None]]) -> None:
        """Record the contacts whose stage this run changed: ``(contact_id, stage before, stage after)``, None
        before for a contact new since the last computation, None after for one no longer there. Only the
        moves are kept (not every contact's stage per run), so the stage flow between any two runs is their
        composition (:func:`core.metrics.net_moves`)."""
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO stage_moves VALUES (?, ?, ?, ?)",
                           ((run_id, contact, before, after) for contact, before, after in rows))

    def stage_moves(self, run_a: int, run_b: int) -> list[tuple[str, str | None, str | None]]:
        """The moves recorded by the runs after ``run_a`` up to ``run_b``, in run order (then contact id)."""
        return [(c, before, after) for c, before, after in self.db.execute(
            "SELECT contact_id, before, after FROM stage_moves WHERE run_id > ? AND run_id <= ? "
            "ORDER BY run_id, contact_id", (run_a, run_b))]

    # --- written values and the plan --------------------------------------------------------------------

    def written(self) -> dict[str, dict[str, Any]]:
        """The last value we successfully wrote, per record and field."""
        return {record_id: json.loads(vals) for record_id, vals in self.db.execute(
            "SELECT record_id, vals FROM written_values")}

    def record_written(self, run_id: int, values: Mapping[str, Mapping[str, Any]]) -> None:
        """Remember values as written (e.g. found already equal in the CRM after an interrupted run)."""
        with self.transaction() as db:
            self._record_written(db, run_id, values)

    @staticmethod
    def _record_written(db: sqlite3.Connection, run_id: int, values: Mapping[str, Mapping[str, Any]]) -> str:
        """Upsert what was written; returns the batch as the JSON text stored (``{record id: values}``)."""
        batch = _batch_json(values)
        # One statement for the batch, one row a record; fields not in this write keep the value written before
        # (a merge, in SQL). ``WHERE true`` tells SQLite's parser the ON CONFLICT is the upsert's.
        db.execute(
            "INSERT INTO written_values (record_id, vals, run_id) SELECT key, value, ? FROM json_each(?) WHERE true "
            "ON CONFLICT(record_id) DO UPDATE SET vals=json_patch(written_values.vals, excluded.vals), "
            "run_id=excluded.run_id", (run_id, batch))
        return batch

    def save_plan(self, run_id: int, plan: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Persist this run's planned writes before sending any (write-ahead)."""
        with self.transaction() as db:
            db.executemany("INSERT INTO plan VALUES (?, ?, ?, ?, 'pending')",
                           [(run_id, rid, seq, _values_json(values)) for seq, (rid, values) in enumerate(plan)])

    def in_flight(self) -> dict[str, dict[str, Any]]:
        """Values of unfinished runs' plans: possibly written by a run that was killed mid-batch."""
        out: dict[str, dict[str, Any]] = {}
        for record_id, values in self.db.execute(
            "SELECT record_id, values_json FROM plan WHERE state = 'pending' ORDER BY run_id, seq"
        ):
            out.setdefault(record_id, {}).update(json.loads(values))
        return out

    def settle_batch(self, run_id: int, written: Mapping[str, Mapping[str, Any]],
                     rejected: Sequence[tuple[Rejection, int]], gone: Sequence[str], *,
                     now_current: bool = False, planned: bool = False) -> None:
        """Checkpoint one batch: written values, rejections and vanished records, atomically. With
        ``now_current`` the written values are also the CRM's current values of our fields (as :meth:`set_owned`
        records them), in the same transaction. ``planned`` says the written values are exactly this run's saved
        plan rows for those records (:meth:`save_plan`), as the runner's are: they are then taken from there.

        Set-based: one statement per table for the batch, reading the batch's ids (one JSON array) with
        ``json_each``; the values come from the plan rows in SQL (``planned``) or one ``json.dumps`` of the batch,
        so the cost a record is a row, not a round of queries or a JSON encoding of its own."""
        with self.transaction() as db:
            if not written:
                pass
            elif planned:
                ids = json.dumps(list(written))
                # The plan row holds the values as sent, already encoded when the plan was saved (write-ahead).
                db.execute(
                    "INSERT INTO written_values (record_id, vals, run_id) SELECT record_id, values_json, run_id "
                    "FROM plan WHERE run_id = ? AND record_id IN (SELECT value FROM json_each(?)) "
                    "ON CONFLICT(record_id) DO UPDATE SET vals=json_patch(written_values.vals, excluded.vals), "
                    "run_id=excluded.run_id", (run_id, ids))
                if now_current:
                    db.execute("UPDATE contacts SET owned = json_patch(owned, p.values_json) FROM plan AS p "
                               "WHERE p.run_id = ? AND p.record_id IN (SELECT value FROM json_each(?)) "
                               "AND contacts.id = p.record_id", (run_id, ids))
                db.execute("UPDATE plan SET state = 'done' WHERE run_id = ? AND record_id IN "
                           "(SELECT value FROM json_each(?))", (run_id, ids))
                db.execute("DELETE FROM rejections WHERE record_id IN (SELECT value FROM json_each(?))", (ids,))
            else:
                batch = self._record_written(db, run_id, written)
                if now_current:
                    self._set_owned(db, batch)
                db.execute("UPDATE plan SET state = 'done' WHERE run_id = ? AND record_id IN "
                           "(SELECT key FROM json_each(?))", (run_id, batch))
                db.execute("DELETE FROM rejections WHERE record_id IN (SELECT key FROM json_each(?))", (batch,))
            for rejection, _ in rejected:
                db.execute(
                    "INSERT INTO rejections VALUES (?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT(record_id) DO UPDATE SET "
                    "field=excluded.field, reason=excluded.reason, transient=excluded.transient, "
                    "attempts=CASE WHEN rejections.values_hash = excluded.values_hash "
                    "THEN rejections.attempts + 1 ELSE 1 END, values_hash=excluded.values_hash, "
                    "last_run=excluded.last_run",
                    # CRM text: it may quote a person's e-mail address or a credential (see core.redact).
                    (rejection.record_id, rejection.field, redact(rejection.reason), int(rejection.transient),
                     rejection.values_hash, run_id, run_id),
                )
                db.execute("UPDATE plan SET state = 'rejected' WHERE run_id = ? AND record_id = ?",
                           (run_id, rejection.record_id))
            if gone:
                db.executemany("UPDATE plan SET state = 'gone' WHERE run_id = ? AND record_id = ?",
                               [(run_id, rid) for rid in gone])
                self._drop_contacts(db, gone)

    def close_plans(self) -> None:
        """Mark every earlier plan settled: a new run recomputes from the CRM's current values instead."""
        with self.transaction() as db:
            db.execute("UPDATE plan SET state = 'superseded' WHERE state = 'pending'")
            db.execute("DELETE FROM plan WHERE run_id NOT IN (SELECT id FROM runs ORDER BY id DESC LIMIT 20)")

    def rejections(self) -> dict[str, Rejection]:
        """Stored rejections by record."""
        return {
            row[0]: Rejection(row[0], row[1], row[2], bool(row[3]), row[4], row[5])
            for row in self.db.execute(
                "SELECT record_id, field, reason, transient, values_hash, attempts FROM rejections")
        }

    # --- runs ---------------------------------------------------------------------------------------------

    def start_run(self, mode: str, as_of: datetime) -> int:
        """Open a run in the history; returns its id."""
        with self.transaction() as db:
            cur = db.execute("INSERT INTO runs (started_at, status, mode, as_of) VALUES (?, 'running', ?, ?)",
                             (datetime.now(UTC).isoformat(), mode, as_of.isoformat()))
            assert cur.lastrowid is not None
            return int(cur.lastrowid)

    def finish_run(self, run_id: int, status: str, summary: Mapping[str, Any],
                   metrics: Mapping[str, Any] | None) -> None:
        """Close a run with its status, counts and metrics snapshot."""
        with self.transaction() as db:
            db.execute("UPDATE runs SET finished_at = ?, status = ?, summary = ?, metrics = ? WHERE id = ?",
                       # Problems, messages, rejections and samples quote CRM text: redacted like the logs.
                       (datetime.now(UTC).isoformat(), status, json.dumps(redact_values(summary), default=str),
                        json.dumps(metrics, default=str) if metrics is not None else None, run_id))

    def runs(self, limit: int = 50) -> list[RunRecord]:
        """Run history, newest first."""
        return [
            RunRecord(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6] or "{}"), json.loads(r[7]) if r[7] else None)
            for r in self.db.execute(
                "SELECT id, started_at, finished_at, status, mode, as_of, summary, metrics FROM runs "
                "ORDER BY id DESC LIMIT ?", (limit,))
        ]

    def run(self, run_id: int) -> RunRecord:
        """One run by id."""
        row = self.db.execute("SELECT id, started_at, finished_at, status, mode, as_of, summary, metrics FROM runs "
                              "WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise StateError(f"there is no run {run_id}", hint="`clm runs` lists the runs")
        return RunRecord(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6] or "{}"),
                         json.loads(row[7]) if row[7] else None)

    def mark_interrupted_runs(self) -> int:
        """Runs left 'running' by a killed process become 'interrupted', with the counts their checkpoints show
        (each settled batch marked its plan rows), so the history does not say 0 of a run that wrote 500."""
        with self.transaction() as db:
            ids = [int(row[0]) for row in db.execute("SELECT id FROM runs WHERE status = 'running'")]
            for run_id in ids:
                counts = dict(db.execute("SELECT state, COUNT(*) FROM plan WHERE run_id = ? GROUP BY state",
                                         (run_id,)).fetchall())
                summary = {"run_id": run_id, "status": "interrupted", "planned_records": sum(counts.values()),
                           "written_records": counts.get("done", 0), "rejected_count": counts.get("rejected", 0),
                           "gone": counts.get("gone", 0),
                           "message": "the process stopped mid-run (killed or crashed); counts are from its "
                                      "checkpoints, and the next run resumed from them"}
                db.execute("UPDATE runs SET status = 'interrupted', finished_at = ?, summary = ? WHERE id = ?",
                           (datetime.now(UTC).isoformat(), json.dumps(summary), run_id))
            return len(ids)


def _comparable(value: Any) -> float | str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    text = str(value)
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _same_value(ours: Any, pulled: Any) -> bool:
    """Whether a value of our field pulled from the CRM is the one we hold, whatever the CRM's formatting: numbers
    as text, datetimes as ISO text or epoch milliseconds (to the millisecond). Anything else counts as changed,
    which only costs storing the record again."""
    # The common cases first, without the general parse: the same value (not NaN), and a number of ours that
    # the CRM returns as text (HubSpot and EngageBay do).
    if ours.__class__ is pulled.__class__ and ours == pulled and ours == ours:
        return True
    if ours.__class__ is float and pulled.__class__ is str:
        try:
            number = float(pulled)
        except ValueError:
            number = math.nan
        if _close(ours, number):
            return True
    a, b = _comparable(ours), _comparable(pulled)
    if isinstance(a, float) and isinstance(b, float):
        if _close(a, b):
            return True
        # Epoch milliseconds (HubSpot's datetime form) against our seconds; only at epoch-ms magnitudes.
        return (b > 1e11 > abs(a) and abs(b / 1000 - a) < 1e-3) or (a > 1e11 > abs(b) and abs(a / 1000 - b) < 1e-3)
    return a == b


def _close(a: float, b: float) -> bool:
    """Equal to 1e-9 relative; an infinite value only to itself (the relative test would call 5 and inf equal)."""
    return a == b or (math.isfinite(a) and math.isfinite(b) and abs(a - b) <= 1e-9 * max(abs(a), abs(b)))


def _plain(value: Any) -> Any:
    """JSON-safe scalar (datetimes as ISO text)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _batch_json(values: Mapping[str, Mapping[str, Any]]) -> str:
    """``{record id: {field: value}}`` as JSON text, values as :func:`_plain` makes them, in one C-level encode.

    NaN has no JSON form (``_plain`` makes it null): only a batch holding one pays the per-value pass."""
    try:
        return json.dumps(values, default=_json_default, allow_nan=False)
    except ValueError:
        return json.dumps({rid: {f: _plain(v) for f, v in fields.items()} for rid, fields in values.items()})


def _values_json(values: Mapping[str, Any]) -> str:
    """One record's values as :func:`_batch_json` encodes them."""
    try:
        return json.dumps(values, default=_json_default, allow_nan=False)
    except ValueError:
        return json.dumps({f: _plain(v) for f, v in values.items()})


def bound_connection(path: Path) -> str | None:
    """The CRM connection a state file belongs to (None: no such file, or not yet bound)."""
    if not path.is_file():
        return None
    try:
        with closing(sqlite3.connect(path)) as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'connection'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise storage_error(path, exc) from None
    return str(row[0]) if row else None


def rebind(path: Path, connection_id: str) -> None:
    """Bind a state file to ``connection_id``: the same CRM account reached under another URL keeps its mirror,
    cursors and written values. The caller makes sure it is the same account."""
    try:
        with closing(sqlite3.connect(path, isolation_level=None)) as db:
            db.execute("UPDATE meta SET value = ? WHERE key = 'connection'", (connection_id,))
    except sqlite3.DatabaseError as exc:
        raise storage_error(path, exc) from None
