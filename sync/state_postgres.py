"""The PostgreSQL state store, for fleets: several scheduled jobs (one per CRM portal or region) share one database.

Selected by ``sync.state_url = "postgresql://user@host/db"``; the password comes from the variable named by
``sync.state_password_env`` (``CLM_STATE_PASSWORD`` by default), else libpq's own ``PGPASSWORD`` / ``~/.pgpass``,
never from the file. It implements :class:`sync.state.StateStore` with
the same meaning as :class:`sync.state.SQLiteState`, method for method.

One schema (``clm``) holds every job's rows; every table is keyed by ``connection_id`` first, and every statement
here names it, so two portals sharing the database never see each other's mirror, plans, runs or cursors. A job's
connection id is the one a state file is bound to (:func:`cli.wiring.connection_id`).

Set-based, like the SQLite store: a pulled page or a settled batch is a handful of statements over arrays
(``INSERT ... SELECT FROM unnest(...)``, ``= ANY(...)``), sent in one pipeline, so the cost of a record is a row and
the cost of a batch one round trip to the server, whatever its size. Bulk inserts (a run's plan, its stages) use
``COPY``.

The run lock is a session-level advisory lock (``pg_try_advisory_lock``) on a hash of the connection id, held on a
connection of its own for the whole run: the server grants it to one session at a time and releases it when that
session ends, and a process killed with ``kill -9`` ends its sessions (the kernel closes the sockets, the server
sees end-of-file). Unlike ``flock`` on NFS/EFS (see :mod:`sync.lock`) it does not depend on the file system.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql

from core.columns import ContactRows, DealRows
from core.errors import StateError
from core.models import Contact, Deal, DealStatus
from core.redact import redact, redact_values
from sync.state import Rejection, RunRecord, _epoch, _plain, _same_value, _time

#: Schema versions of the ``clm`` schema, one DDL script each; a database at version N runs scripts N+1.. in order.
_MIGRATIONS = [
    """
    CREATE TABLE clm.meta (connection_id text NOT NULL, key text NOT NULL, value text NOT NULL,
                           PRIMARY KEY (connection_id, key));
    CREATE TABLE clm.cursors (connection_id text NOT NULL, object text NOT NULL, value text NOT NULL,
                              PRIMARY KEY (connection_id, object));
    -- props: JSON text, read back whole (never queried inside); owned: jsonb, merged in SQL.
    CREATE TABLE clm.contacts (
        connection_id text NOT NULL, id text NOT NULL, created_at double precision NOT NULL,
        updated_at double precision, props text NOT NULL, owned jsonb NOT NULL, seen boolean NOT NULL DEFAULT false,
        PRIMARY KEY (connection_id, id));
    CREATE TABLE clm.deals (
        connection_id text NOT NULL, id text NOT NULL, amount double precision, currency text, status text NOT NULL,
        created_at double precision NOT NULL, closed_at double precision, updated_at double precision,
        contact_ids jsonb NOT NULL, props text NOT NULL, seen boolean NOT NULL DEFAULT false,
        PRIMARY KEY (connection_id, id));
    CREATE TABLE clm.written_values (connection_id text NOT NULL, record_id text NOT NULL, vals jsonb NOT NULL,
                                     run_id bigint NOT NULL, PRIMARY KEY (connection_id, record_id));
    CREATE TABLE clm.plan (
        connection_id text NOT NULL, run_id bigint NOT NULL, record_id text NOT NULL, seq integer NOT NULL,
        values_json jsonb NOT NULL, state text NOT NULL, PRIMARY KEY (connection_id, run_id, record_id));
    CREATE INDEX plan_state ON clm.plan (connection_id, state, run_id, seq);
    CREATE TABLE clm.runs (
        id bigserial PRIMARY KEY, connection_id text NOT NULL, started_at text NOT NULL, finished_at text,
        status text NOT NULL, mode text NOT NULL, as_of text NOT NULL, summary text, metrics text);
    CREATE INDEX runs_connection ON clm.runs (connection_id, id);
    CREATE TABLE clm.rejections (
        connection_id text NOT NULL, record_id text NOT NULL, field text, reason text NOT NULL,
        transient boolean NOT NULL, values_hash text NOT NULL, attempts integer NOT NULL, first_run bigint NOT NULL,
        last_run bigint NOT NULL, PRIMARY KEY (connection_id, record_id));
    CREATE TABLE clm.stages (connection_id text NOT NULL, contact_id text NOT NULL, stage text NOT NULL,
                             since double precision NOT NULL, PRIMARY KEY (connection_id, contact_id));
    CREATE TABLE clm.stage_moves (connection_id text NOT NULL, run_id bigint NOT NULL, contact_id text NOT NULL,
                                  before text, after text, PRIMARY KEY (connection_id, run_id, contact_id));
    CREATE INDEX stage_moves_contact ON clm.stage_moves (connection_id, contact_id);
    -- SQLite's json_patch (RFC 7396) on the flat objects we keep: the patch's keys win, and a null drops the key.
    CREATE FUNCTION clm.merge_patch(target jsonb, patch jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
        SELECT (COALESCE(target, '{}'::jsonb)
                - ARRAY(SELECT key FROM jsonb_each(patch) WHERE jsonb_typeof(value) = 'null'))
               || jsonb_strip_nulls(patch) $$;
    """,
]
SCHEMA_VERSION = len(_MIGRATIONS)

_RESUMES = "the run stopped at its last checkpoint and the next one resumes from there"
_PASSWORD_ENV = "CLM_STATE_PASSWORD"


def _key(text: str) -> int:
    """A signed 64-bit advisory lock key for ``text`` (stable across processes and server versions, unlike
    ``hashtext``)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


#: Serialises creating and migrating the schema between jobs starting at once (DDL races on the catalogs).
_SCHEMA_LOCK = _key("crm-lifecycle schema")


def location(url: str) -> str:
    """``url`` without user, password or libpq options (a password may sit in the query): safe to print. Only
    the ``host``/``port`` options, which may name a Unix socket folder instead of the netloc, are kept."""
    parts = urlsplit(url)
    where = [(k, v) for k, v in parse_qsl(parts.query) if k in ("host", "port")]
    query = urlencode(where, safe="/")
    # Written out, not urlunsplit: that drops the "//" of an empty host (postgresql:///db is libpq's local server).
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}" + (f"?{query}" if query else "")


def _text(value: Any) -> str:
    """JSON text PostgreSQL's ``jsonb`` accepts: it has no NaN or infinities and no U+0000 (a CRM value may hold
    one); a non-finite number is stored as no value, a NUL as U+FFFD (which then reads as a changed value, the safe
    side)."""
    def clean(v: Any) -> Any:
        v = _plain(v)
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, str) and "\x00" in v:
            return v.replace("\x00", "\ufffd")
        return v
    if isinstance(value, Mapping):
        return json.dumps({k: clean(v) for k, v in value.items()})
    return json.dumps([clean(v) for v in value])


def storage_error(where: str, exc: psycopg.Error) -> StateError:
    """The state error for what the PostgreSQL server or the connection to it refused: what, where, what to do."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, pgerrors.InsufficientPrivilege):
        return StateError(f"the PostgreSQL state store {where} refused this database user ({detail})",
                          hint="the user needs CREATE on the database (for the clm schema) the first time, then "
                               "USAGE on schema clm and SELECT/INSERT/UPDATE/DELETE on its tables")
    if isinstance(exc, pgerrors.DiskFull):
        return StateError(f"the disk of the PostgreSQL state store {where} is full ({detail})",
                          hint=f"free space on the database server; {_RESUMES}")
    if isinstance(exc, pgerrors.ReadOnlySqlTransaction):
        return StateError(f"the PostgreSQL state store {where} is read-only ({detail})",
                          hint="point sync.state_url at the primary server, not a replica")
    return StateError(f"reading or writing the PostgreSQL state store {where} failed ({detail})",
                      hint=f"check the database server and the network to it; {_RESUMES}")


_S = TypeVar("_S")


def _stops_on_storage_errors(cls: type[_S]) -> type[_S]:
    """As :func:`sync.state._stops_on_storage_errors`, for the server's errors: each becomes a :func:`storage_error`
    and the store refuses every later call (but ``close``), so no caller carries on after a half-done checkpoint.
    Errors that are our bug (a value that cannot be sent, a broken constraint) propagate as they are."""

    def guarded(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            failure = getattr(self, "_failure", None)
            if failure is not None and method.__name__ != "close":
                raise StateError(failure.message, hint=failure.hint)
            try:
                return method(self, *args, **kwargs)
            except psycopg.Error as exc:
                ours = isinstance(exc, psycopg.ProgrammingError | psycopg.IntegrityError | psycopg.DataError)
                if ours and not isinstance(exc, pgerrors.InsufficientPrivilege):
                    raise
                self._failure = storage_error(self.location, exc)
                raise self._failure from None
        return wrapper

    for name, member in list(vars(cls).items()):
        if inspect.isfunction(member) and not name.startswith("_"):
            setattr(cls, name, guarded(member))
    return cls


def connect(url: str, password: str | None, where: str, password_env: str | None = _PASSWORD_ENV
            ) -> psycopg.Connection[Any]:
    """An autocommit connection to the state database (transactions are explicit), or a StateError saying why
    not. ``password`` None leaves libpq to its own ``PGPASSWORD`` and ``~/.pgpass``."""
    options: dict[str, Any] = {"autocommit": True, "application_name": "crm-lifecycle"}
    if password is not None:
        options["password"] = password
    options.setdefault("connect_timeout", 15)
    try:
        return psycopg.connect(url, **options)
    except psycopg.Error as exc:
        detail = str(exc).strip().replace("\n", " ")
        hint = "check sync.state_url and that the server is up and reachable from here"
        if "password" in detail.lower():
            hint = (f"set {password_env or 'PGPASSWORD'} to the database user's password (or use PGPASSWORD or "
                    "~/.pgpass); it is never read from the configuration file")
        raise StateError(f"cannot connect to the PostgreSQL state store {where} ({detail})", hint=hint) from None


@_stops_on_storage_errors
class PostgresState:
    """The PostgreSQL state store of one CRM connection (``connection_id``) in a database shared by many.

    One writer per connection id at a time (:meth:`run_lock`); commits per page and per batch, like
    :class:`sync.state.SQLiteState`.
    """

    def __init__(self, url: str, connection_id: str, *, password: str | None = None,
                 password_env: str | None = _PASSWORD_ENV) -> None:
        self.url = url
        self._password_env = password_env
        self.location = location(url)
        self.connection_id = connection_id
        self._password = password
        self._failure: StateError | None = None
        self.db = connect(url, password, self.location, password_env)
        try:
            self._migrate()
        except psycopg.Error as exc:
            self.db.close()
            raise storage_error(self.location, exc) from None
        except BaseException:
            self.db.close()
            raise

    def _migrate(self) -> None:
        with self.db.transaction():
            self.db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            self.db.execute("CREATE SCHEMA IF NOT EXISTS clm")
            self.db.execute("CREATE TABLE IF NOT EXISTS clm.schema_version (version integer NOT NULL)")
            row = self.db.execute("SELECT max(version) FROM clm.schema_version").fetchone()
            version = int(row[0]) if row and row[0] is not None else 0
            if version > SCHEMA_VERSION:
                raise StateError(f"the PostgreSQL state store {self.location} was written by a newer version of clm "
                                 f"(schema {version}; this one knows up to {SCHEMA_VERSION})",
                                 hint="upgrade clm on this machine to the version the other jobs run")
            for script in _MIGRATIONS[version:]:
                self.db.execute(script)
            if version < SCHEMA_VERSION:
                self.db.execute("DELETE FROM clm.schema_version")
                self.db.execute("INSERT INTO clm.schema_version VALUES (%s)", (SCHEMA_VERSION,))

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def run_lock(self) -> PostgresRunLock:
        """The run lock of this connection id: ``with state.run_lock():`` around a run."""
        return PostgresRunLock(self.url, self._password, self.connection_id, self.location, self._password_env)

    def connections(self) -> list[tuple[str, int, str | None]]:
        """Every connection id with a state in this database: its mirrored contacts and its last run's start."""
        return [(c, int(n), started) for c, n, started in self.db.execute(
            "SELECT k.connection_id, (SELECT count(*) FROM clm.contacts c WHERE c.connection_id = k.connection_id), "
            "(SELECT max(started_at) FROM clm.runs r WHERE r.connection_id = k.connection_id) FROM "
            "(SELECT connection_id FROM clm.meta UNION SELECT connection_id FROM clm.runs UNION "
            "SELECT connection_id FROM clm.contacts) k ORDER BY 1").fetchall()]

    def adopt(self, old: str) -> int:
        """Move connection ``old``'s whole state (mirror, cursors, written values, plans, runs, stages) to this
        connection id, for the same CRM account reached under a new URL (``clm state rebind``); returns the
        mirrored contacts moved. Refused while a run of either holds its lock, and when this id has a state of
        its own (the two would mix)."""
        if old == self.connection_id:
            return 0
        known = {c: n for c, n, _ in self.connections()}
        if old not in known:
            raise StateError(f"{self.location} holds no state of {old}",
                             hint="`clm state rebind` without --from lists the connections it holds")
        if self.connection_id in known:
            raise StateError(f"{self.connection_id} already has a state of its own in {self.location} "
                             f"({known[self.connection_id]:,} contacts): moving {old} there would mix the two",
                             hint="if that state was made by mistake after the URL changed, rebind it away to "
                                  "a throwaway id first, or ask the database's owner to delete its rows")
        tables = [t for (t,) in self.db.execute(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = 'clm' "
            "AND column_name = 'connection_id' ORDER BY table_name").fetchall()]
        with PostgresRunLock(self.url, self._password, old, self.location, self._password_env), \
                PostgresRunLock(self.url, self._password, self.connection_id, self.location, self._password_env):
            try:
                with self.db.transaction():
                    # The locks' own "who holds me" rows stay with their ids.
                    self.db.execute("DELETE FROM clm.meta WHERE connection_id = ANY(%s) AND key = 'run_lock'",
                                    ([old, self.connection_id],))
                    for table in tables:
                        self.db.execute(sql.SQL("UPDATE clm.{} SET connection_id = %s WHERE connection_id = %s")
                                        .format(sql.Identifier(table)), (self.connection_id, old))
            except psycopg.Error as exc:
                raise storage_error(self.location, exc) from None
        return known[old]

    @contextmanager
    def _batch(self) -> Iterator[psycopg.Cursor[Any]]:
        """One atomic unit (a pulled page, a written batch) whose statements go out in one pipeline."""
        with self.db.transaction(), self.db.pipeline(), self.db.cursor() as cur:
            yield cur

    def _rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return self.db.execute(sql, (self.connection_id, *params)).fetchall()

    # --- pull / mirror ---------------------------------------------------------------------------------

    def cursor(self) -> dict[str, str]:
        """The stored incremental cursor per object type (empty: never fully pulled)."""
        return dict(self._rows("SELECT object, value FROM clm.cursors WHERE connection_id = %s"))

    def start_full_pull(self) -> None:
        """Mark every mirrored record unseen (see :meth:`sync.state.SQLiteState.start_full_pull`)."""
        c = self.connection_id
        with self._batch() as cur:
            cur.execute("UPDATE clm.contacts SET seen = false WHERE connection_id = %s AND seen", (c,))
            cur.execute("UPDATE clm.deals SET seen = false WHERE connection_id = %s AND seen", (c,))
            cur.execute("DELETE FROM clm.cursors WHERE connection_id = %s", (c,))
            cur.execute("INSERT INTO clm.meta VALUES (%s, 'full_pull', %s) ON CONFLICT (connection_id, key) "
                        "DO UPDATE SET value = excluded.value", (c, datetime.now(UTC).isoformat()))

    def full_pull_in_progress(self) -> bool:
        """Whether a full pull was started and has not completed."""
        return bool(self._rows("SELECT 1 FROM clm.meta WHERE connection_id = %s AND key = 'full_pull'"))

    def meta_value(self, key: str) -> str | None:
        """A small named value the sync keeps between runs (None when unset)."""
        rows = self._rows("SELECT value FROM clm.meta WHERE connection_id = %s AND key = %s", f"sync.{key}")
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str | None) -> None:
        """Set (or with None, forget) a named value."""
        with self._batch() as cur:
            if value is None:
                cur.execute("DELETE FROM clm.meta WHERE connection_id = %s AND key = %s",
                            (self.connection_id, f"sync.{key}"))
            else:
                cur.execute("INSERT INTO clm.meta VALUES (%s, %s, %s) ON CONFLICT (connection_id, key) "
                            "DO UPDATE SET value = excluded.value", (self.connection_id, f"sync.{key}", value))

    def finish_full_pull(self) -> tuple[int, int]:
        """Drop records a complete full pull did not see; returns (contacts, deals) dropped."""
        c = self.connection_id
        with self.db.transaction(), self.db.cursor() as cur:
            gone = [r[0] for r in cur.execute("DELETE FROM clm.contacts WHERE connection_id = %s AND NOT seen "
                                              "RETURNING id", (c,)).fetchall()]
            self._drop_contact_rows(cur, gone)
            deals = cur.execute("DELETE FROM clm.deals WHERE connection_id = %s AND NOT seen", (c,)).rowcount
            cur.execute("DELETE FROM clm.meta WHERE connection_id = %s AND key = 'full_pull'", (c,))
        return len(gone), deals

    def retain(self, contact_ids: Sequence[str] | None, deal_ids: Sequence[str] | None) -> tuple[int, int]:
        """Keep only the given contacts and deals (None leaves that kind alone); returns how many were dropped."""
        c = self.connection_id
        # An anti-join against the unnested list (a hash of the live ids), not ``<> ALL``, which compares each row
        # with every id.
        with self.db.transaction(), self.db.cursor() as cur:
            contacts = 0
            if contact_ids is not None:
                gone = [r[0] for r in cur.execute(
                    "DELETE FROM clm.contacts t WHERE connection_id = %s AND NOT EXISTS "
                    "(SELECT 1 FROM unnest(%s::text[]) AS l(id) WHERE l.id = t.id) RETURNING id",
                    (c, list(contact_ids))).fetchall()]
                self._drop_contact_rows(cur, gone)
                contacts = len(gone)
            deals = 0
            if deal_ids is not None:
                deals = cur.execute("DELETE FROM clm.deals t WHERE connection_id = %s AND NOT EXISTS "
                                    "(SELECT 1 FROM unnest(%s::text[]) AS l(id) WHERE l.id = t.id)",
                                    (c, list(deal_ids))).rowcount
        return contacts, deals

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
        and deals were new or changed (see :meth:`sync.state.SQLiteState.apply_page`)."""
        keep = set(keep_properties)
        c = self.connection_id
        # One row per id, the last one read winning (a page may repeat a record; an upsert may not touch a row
        # twice in one statement).
        contacts = list({r.id: r for r in contacts}.values())
        deals = list({r.id: r for r in deals}.values())
        with self.db.transaction():
            fresh_contacts, fresh_deals, seen_contacts, seen_deals = self._changed(contacts, deals, keep, owned_names)
            with self.db.pipeline(), self.db.cursor() as cur:
                if seen_contacts:
                    cur.execute("UPDATE clm.contacts SET seen = true WHERE connection_id = %s AND id = ANY(%s)",
                                (c, seen_contacts))
                if seen_deals:
                    cur.execute("UPDATE clm.deals SET seen = true WHERE connection_id = %s AND id = ANY(%s)",
                                (c, seen_deals))
                if fresh_contacts:
                    cur.execute(
                        "INSERT INTO clm.contacts (connection_id, id, created_at, updated_at, props, owned, seen) "
                        "SELECT %s, i, ca, ua, p, o::jsonb, true FROM unnest(%s::text[], %s::float8[], %s::float8[], "
                        "%s::text[], %s::text[]) AS t(i, ca, ua, p, o) "
                        "ON CONFLICT (connection_id, id) DO UPDATE SET created_at = excluded.created_at, "
                        "updated_at = excluded.updated_at, props = excluded.props, owned = excluded.owned, seen = true",
                        (c, [r.id for r in fresh_contacts], [r.created_at.timestamp() for r in fresh_contacts],
                         [_epoch(r.updated_at) for r in fresh_contacts],
                         [json.dumps({k: _plain(v) for k, v in r.properties.items() if k in keep})
                          for r in fresh_contacts],
                         [_text({owned_names[k]: v for k, v in r.properties.items() if k in owned_names})
                          for r in fresh_contacts]))
                if fresh_deals:
                    cur.execute(
                        "INSERT INTO clm.deals (connection_id, id, amount, currency, status, created_at, closed_at, "
                        "updated_at, contact_ids, props, seen) SELECT %s, i, a, cu, s, ca, cl, ua, ci::jsonb, p, true "
                        "FROM unnest(%s::text[], %s::float8[], %s::text[], %s::text[], %s::float8[], %s::float8[], "
                        "%s::float8[], %s::text[], %s::text[]) AS t(i, a, cu, s, ca, cl, ua, ci, p) "
                        "ON CONFLICT (connection_id, id) DO UPDATE SET amount = excluded.amount, "
                        "currency = excluded.currency, status = excluded.status, created_at = excluded.created_at, "
                        "closed_at = excluded.closed_at, updated_at = excluded.updated_at, "
                        "contact_ids = excluded.contact_ids, props = excluded.props, seen = true",
                        (c, [d.id for d in fresh_deals], [d.amount for d in fresh_deals],
                         [d.currency for d in fresh_deals], [d.status.value for d in fresh_deals],
                         [d.created_at.timestamp() for d in fresh_deals], [_epoch(d.closed_at) for d in fresh_deals],
                         [_epoch(d.updated_at) for d in fresh_deals], [_text(d.contact_ids) for d in fresh_deals],
                         [json.dumps({k: _plain(v) for k, v in d.properties.items() if k in keep})
                          for d in fresh_deals]))
            with self.db.cursor() as cur:
                if merged_contacts:
                    self._merge_contacts(cur, merged_contacts)
                if deleted_contacts:
                    self._drop_contacts(cur, deleted_contacts)
                if deleted_deals:
                    cur.execute("DELETE FROM clm.deals WHERE connection_id = %s AND id = ANY(%s)",
                                (c, list(deleted_deals)))
                if cursor:
                    cur.execute("INSERT INTO clm.cursors SELECT %s, o, v FROM unnest(%s::text[], %s::text[]) "
                                "AS t(o, v) ON CONFLICT (connection_id, object) DO UPDATE SET value = excluded.value",
                                (c, list(cursor), list(cursor.values())))
        return len(fresh_contacts), len(fresh_deals)

    def _changed(self, contacts: Sequence[Contact], deals: Sequence[Deal], keep: set[str],
                 owned_names: Mapping[str, str]) -> tuple[list[Contact], list[Deal], list[str], list[str]]:
        """The records of a page the mirror does not hold at the same modified time and data, and the ids of those
        it does (only to be marked seen); the rule is :meth:`sync.state.SQLiteState._changed`'s."""
        fresh_contacts: list[Contact] = []
        seen_contacts: list[str] = []
        if contacts:
            known = {i: (updated, json.loads(props), owned) for i, updated, props, owned in self._rows(
                "SELECT id, updated_at, props, owned FROM clm.contacts WHERE connection_id = %s AND id = ANY(%s)",
                [r.id for r in contacts])}
            for r in contacts:
                stored = known.get(r.id)
                props = json.loads(json.dumps({k: _plain(v) for k, v in r.properties.items() if k in keep}))
                if stored is not None and stored[1] == props and (
                        stored[0] == _epoch(r.updated_at) or all(
                            _same_value(stored[2].get(name), r.properties.get(crm_name))
                            for crm_name, name in owned_names.items()
                            if crm_name in r.properties or name in stored[2])):
                    seen_contacts.append(r.id)
                else:
                    fresh_contacts.append(r)
        fresh_deals: list[Deal] = []
        seen_deals: list[str] = []
        if deals:
            known_deals = {i: (updated, ids) for i, updated, ids in self._rows(
                "SELECT id, updated_at, contact_ids FROM clm.deals WHERE connection_id = %s AND id = ANY(%s)",
                [d.id for d in deals])}
            for d in deals:
                held = known_deals.get(d.id)
                if held is not None and held == (_epoch(d.updated_at), list(d.contact_ids)):
                    seen_deals.append(d.id)
                else:
                    fresh_deals.append(d)
        return fresh_contacts, fresh_deals, seen_contacts, seen_deals

    def _merge_contacts(self, cur: psycopg.Cursor[Any], merged: Mapping[str, str]) -> None:
        """Move what we know of merged-away contacts to the record they became (the rules are
        :meth:`sync.state.SQLiteState._merge_contacts`'s)."""
        c = self.connection_id
        by_survivor: dict[str, list[str]] = {}
        for old, new in merged.items():
            if old != new:
                by_survivor.setdefault(new, []).append(old)
        for new, olds in by_survivor.items():
            row = cur.execute("SELECT owned FROM clm.contacts WHERE connection_id = %s AND id = %s",
                              (c, new)).fetchone()
            owned = row[0] if row else {}
            ours = [f for (f,) in cur.execute(
                "SELECT DISTINCT jsonb_object_keys(vals) FROM clm.written_values WHERE connection_id = %s "
                "AND record_id = ANY(%s)", (c, olds)).fetchall()]
            run = cur.execute("SELECT max(run_id) FROM clm.written_values WHERE connection_id = %s "
                              "AND record_id = ANY(%s)", (c, olds)).fetchone()
            if ours:
                # What the survivor already has of its own wins over what is carried over.
                cur.execute("INSERT INTO clm.written_values VALUES (%s, %s, %s::jsonb, %s) ON CONFLICT "
                            "(connection_id, record_id) DO UPDATE SET "
                            "vals = clm.merge_patch(excluded.vals, written_values.vals)",
                            (c, new, _text({f: owned.get(f) for f in sorted(ours)}),
                             (run[0] if run else None) or 0))
            cur.execute("INSERT INTO clm.stages SELECT connection_id, %s, stage, since FROM clm.stages "
                        "WHERE connection_id = %s AND contact_id = ANY(%s) ORDER BY since LIMIT 1 "
                        "ON CONFLICT (connection_id, contact_id) DO NOTHING", (new, c, olds))
            cur.execute("DELETE FROM clm.rejections WHERE connection_id = %s AND record_id = ANY(%s)", (c, olds))
            moved = []
            for deal_id, contact_ids in cur.execute(
                    "SELECT id, contact_ids FROM clm.deals WHERE connection_id = %s AND contact_ids ?| %s",
                    (c, olds)).fetchall():
                moved.append((deal_id, _text(list(dict.fromkeys(new if i in olds else i for i in contact_ids)))))
            if moved:
                cur.execute("UPDATE clm.deals d SET contact_ids = m.ids::jsonb FROM unnest(%s::text[], %s::text[]) "
                            "AS m(id, ids) WHERE d.connection_id = %s AND d.id = m.id",
                            ([m[0] for m in moved], [m[1] for m in moved], c))
            self._drop_contacts(cur, olds)

    def _drop_contacts(self, cur: psycopg.Cursor[Any], ids: Sequence[str]) -> None:
        cur.execute("DELETE FROM clm.contacts WHERE connection_id = %s AND id = ANY(%s)",
                    (self.connection_id, list(ids)))
        self._drop_contact_rows(cur, ids)

    def _drop_contact_rows(self, cur: psycopg.Cursor[Any], ids: Sequence[str]) -> None:
        """What we keep of contacts beside the mirror row: written values, stages and stage moves."""
        if not ids:
            return
        cur.execute("DELETE FROM clm.written_values WHERE connection_id = %s AND record_id = ANY(%s)",
                    (self.connection_id, list(ids)))
        cur.execute("DELETE FROM clm.stages WHERE connection_id = %s AND contact_id = ANY(%s)",
                    (self.connection_id, list(ids)))
        cur.execute("DELETE FROM clm.stage_moves WHERE connection_id = %s AND contact_id = ANY(%s)",
                    (self.connection_id, list(ids)))

    def drop_contacts(self, ids: Sequence[str]) -> None:
        """Forget contacts the CRM says are gone (deleted or merged away)."""
        with self._batch() as cur:
            self._drop_contacts(cur, ids)

    def set_owned(self, values: Mapping[str, Mapping[str, Any]]) -> None:
        """Record the CRM's current values of our fields after we wrote them."""
        with self._batch() as cur:
            self._set_owned(cur, list(values), [_text(v) for v in values.values()])

    def _set_owned(self, cur: psycopg.Cursor[Any], ids: list[str], texts: list[str]) -> None:
        # Merged in SQL as SQLite's json_patch does; a record deleted meanwhile matches no row and is left alone.
        if ids:
            cur.execute("UPDATE clm.contacts t SET owned = clm.merge_patch(t.owned, v.vals::jsonb) "
                        "FROM unnest(%s::text[], %s::text[]) AS v(id, vals) WHERE t.connection_id = %s AND t.id = v.id",
                        (ids, texts, self.connection_id))

    def contacts(self) -> list[Contact]:
        """The mirrored contacts (our fields' CRM values excluded; see :meth:`owned_values`)."""
        return [
            Contact.model_construct(id=i, email=None, created_at=datetime.fromtimestamp(created, tz=UTC),
                                    updated_at=_time(updated), properties=json.loads(props), archived=False)
            for i, created, updated, props in self._rows(
                "SELECT id, created_at, updated_at, props FROM clm.contacts WHERE connection_id = %s "
                'ORDER BY id COLLATE "C"')
        ]

    def deals(self) -> list[Deal]:
        """The mirrored deals."""
        return [
            Deal.model_construct(id=i, amount=amount, currency=currency, pipeline=None, stage=None,
                                 status=DealStatus(status), created_at=datetime.fromtimestamp(created, tz=UTC),
                                 closed_at=_time(closed), updated_at=_time(updated), contact_ids=tuple(contacts),
                                 properties=json.loads(props), archived=False)
            for i, amount, currency, status, created, closed, updated, contacts, props in self._rows(
                "SELECT id, amount, currency, status, created_at, closed_at, updated_at, contact_ids, props "
                'FROM clm.deals WHERE connection_id = %s ORDER BY id COLLATE "C"')
        ]

    def contact_rows(self, properties: Iterable[str]) -> ContactRows:
        """The mirrored contacts as per-field lists for the engine, with the named properties only."""
        names = list(properties)
        ids: list[str] = []
        created: list[float] = []
        columns: dict[str, list[Any]] = {name: [] for name in names}
        appenders = [(name, columns[name].append) for name in names]
        # Sorted by the server (ORDER BY id, byte order under the C collation as SQLite sorts) and streamed.
        with self.db.cursor() as cur:
            for i, created_at, props in cur.stream(
                    'SELECT id, created_at, props FROM clm.contacts WHERE connection_id = %s ORDER BY id COLLATE "C"',
                    (self.connection_id,)):
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
        with self.db.cursor() as cur:
            for i, amount, currency, status, created, closed, contacts, props in cur.stream(
                    "SELECT id, amount, currency, status, created_at, closed_at, contact_ids, props FROM clm.deals "
                    'WHERE connection_id = %s ORDER BY id COLLATE "C"', (self.connection_id,)):
                out.ids.append(i)
                out.amount.append(amount)
                out.currency.append(currency)
                out.status.append(status)
                out.created_at.append(created)
                out.closed_at.append(closed)
                out.contact_ids.append(contacts)
                values = json.loads(props)
                for name, append in appenders:
                    append(values.get(name))
        return out

    def owned_values(self) -> dict[str, dict[str, Any]]:
        """The CRM's current values of our fields, per contact (as last pulled or written)."""
        return dict(self._rows("SELECT id, owned FROM clm.contacts WHERE connection_id = %s"))

    def counts(self) -> dict[str, int]:
        """How many contacts and deals the mirror holds."""
        [(contacts, deals)] = self._rows(
            "SELECT (SELECT count(*) FROM clm.contacts WHERE connection_id = %s), "
            "(SELECT count(*) FROM clm.deals WHERE connection_id = %s)", self.connection_id)
        return {"contacts": int(contacts), "deals": int(deals)}

    # --- stages -----------------------------------------------------------------------------------------

    def stages(self) -> dict[str, tuple[str, float]]:
        """Each contact's stage and the time it entered it, as of the last completed computation."""
        return {i: (stage, since) for i, stage, since in self._rows(
            "SELECT contact_id, stage, since FROM clm.stages WHERE connection_id = %s")}

    def save_stages(self, rows: Iterable[tuple[str, str, float]]) -> None:
        """Replace the stored stages with this run's."""
        c = self.connection_id
        with self.db.transaction(), self.db.cursor() as cur:
            cur.execute("DELETE FROM clm.stages WHERE connection_id = %s", (c,))
            with cur.copy("COPY clm.stages (connection_id, contact_id, stage, since) FROM STDIN") as copy:
                for contact_id, stage, since in rows:
                    copy.write_row((c, contact_id, stage, since))

    def save_stage_moves(self, run_id: int, rows: Iterable[tuple[str, str | None, str | None]]) -> None:
        """Record the contacts whose stage this run changed (see :meth:`sync.state.SQLiteState.save_stage_moves`)."""
        moves = {contact: (before, after) for contact, before, after in rows}  # the last one per contact wins
        if not moves:
            return
        with self._batch() as cur:
            cur.execute("INSERT INTO clm.stage_moves SELECT %s, %s, i, b, a FROM unnest(%s::text[], %s::text[], "
                        "%s::text[]) AS t(i, b, a) ON CONFLICT (connection_id, run_id, contact_id) DO UPDATE SET "
                        "before = excluded.before, after = excluded.after",
                        (self.connection_id, run_id, list(moves), [m[0] for m in moves.values()],
                         [m[1] for m in moves.values()]))

    def stage_moves(self, run_a: int, run_b: int) -> list[tuple[str, str | None, str | None]]:
        """The moves recorded by the runs after ``run_a`` up to ``run_b``, in run order (then contact id)."""
        return [(c, before, after) for c, before, after in self._rows(
            "SELECT contact_id, before, after FROM clm.stage_moves WHERE connection_id = %s AND run_id > %s "
            'AND run_id <= %s ORDER BY run_id, contact_id COLLATE "C"', run_a, run_b)]

    # --- written values and the plan --------------------------------------------------------------------

    def written(self) -> dict[str, dict[str, Any]]:
        """The last value we successfully wrote, per record and field."""
        return dict(self._rows("SELECT record_id, vals FROM clm.written_values WHERE connection_id = %s"))

    def record_written(self, run_id: int, values: Mapping[str, Mapping[str, Any]]) -> None:
        """Remember values as written (e.g. found already equal in the CRM after an interrupted run)."""
        with self._batch() as cur:
            self._record_written(cur, run_id, values)

    def _record_written(self, cur: psycopg.Cursor[Any], run_id: int,
                        values: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """Upsert what was written (one row a record, merged in SQL); returns the JSON texts, in ``values`` order."""
        texts = [_text(fields) for fields in values.values()]
        if texts:
            cur.execute("INSERT INTO clm.written_values SELECT %s, r, v::jsonb, %s FROM unnest(%s::text[], %s::text[]) "
                        "AS t(r, v) ON CONFLICT (connection_id, record_id) DO UPDATE SET "
                        "vals = clm.merge_patch(written_values.vals, excluded.vals), run_id = excluded.run_id",
                        (self.connection_id, run_id, list(values), texts))
        return texts

    def save_plan(self, run_id: int, plan: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Persist this run's planned writes before sending any (write-ahead)."""
        c = self.connection_id
        with self.db.transaction(), self.db.cursor() as cur, cur.copy(
                "COPY clm.plan (connection_id, run_id, record_id, seq, values_json, state) FROM STDIN") as copy:
            for seq, (record_id, values) in enumerate(plan):
                copy.write_row((c, run_id, record_id, seq, _text(values), "pending"))

    def in_flight(self) -> dict[str, dict[str, Any]]:
        """Values of unfinished runs' plans: possibly written by a run that was killed mid-batch."""
        out: dict[str, dict[str, Any]] = {}
        for record_id, values in self._rows("SELECT record_id, values_json FROM clm.plan WHERE connection_id = %s "
                                            "AND state = 'pending' ORDER BY run_id, seq"):
            out.setdefault(record_id, {}).update(values)
        return out

    def settle_batch(self, run_id: int, written: Mapping[str, Mapping[str, Any]],
                     rejected: Sequence[tuple[Rejection, int]], gone: Sequence[str], *,
                     now_current: bool = False, planned: bool = False) -> None:
        """Checkpoint one batch: written values, rejections and vanished records, atomically (see
        :meth:`sync.state.SQLiteState.settle_batch`; with ``planned`` the values are taken from the saved plan rows,
        in SQL).

        A few set-based statements whatever the batch size (written values, our fields' CRM values, the plan rows'
        states, the rejections), sent in one pipeline: one round trip to the server per batch."""
        c = self.connection_id
        states = dict.fromkeys(written, "done")
        rejections = {rejection.record_id: rejection for rejection, _ in rejected}
        states.update(dict.fromkeys(rejections, "rejected"))
        states.update(dict.fromkeys(gone, "gone"))
        with self._batch() as cur:
            if planned and written:
                # The plan rows hold the values as sent, encoded when the plan was saved (write-ahead).
                cur.execute("INSERT INTO clm.written_values SELECT connection_id, record_id, values_json, run_id "
                            "FROM clm.plan WHERE connection_id = %s AND run_id = %s AND record_id = ANY(%s) "
                            "ON CONFLICT (connection_id, record_id) DO UPDATE SET "
                            "vals = clm.merge_patch(written_values.vals, excluded.vals), run_id = excluded.run_id",
                            (c, run_id, list(written)))
                if now_current:
                    cur.execute("UPDATE clm.contacts t SET owned = clm.merge_patch(t.owned, p.values_json) "
                                "FROM clm.plan p WHERE p.connection_id = %s AND p.run_id = %s AND p.record_id = ANY(%s)"
                                " AND t.connection_id = p.connection_id AND t.id = p.record_id",
                                (c, run_id, list(written)))
            else:
                texts = self._record_written(cur, run_id, written)
                if now_current:
                    self._set_owned(cur, list(written), texts)
            if states:
                cur.execute("UPDATE clm.plan p SET state = s.state FROM unnest(%s::text[], %s::text[]) AS s(id, state) "
                            "WHERE p.connection_id = %s AND p.run_id = %s AND p.record_id = s.id",
                            (list(states), list(states.values()), c, run_id))
            if written:
                cur.execute("DELETE FROM clm.rejections WHERE connection_id = %s AND record_id = ANY(%s)",
                            (c, list(written)))
            if rejections:
                rows = list(rejections.values())
                cur.execute(
                    "INSERT INTO clm.rejections SELECT %s, r, f, why, tr, h, 1, %s, %s FROM unnest(%s::text[], "
                    "%s::text[], %s::text[], %s::bool[], %s::text[]) AS t(r, f, why, tr, h) "
                    "ON CONFLICT (connection_id, record_id) DO UPDATE SET field = excluded.field, "
                    "reason = excluded.reason, transient = excluded.transient, attempts = CASE WHEN "
                    "rejections.values_hash = excluded.values_hash THEN rejections.attempts + 1 ELSE 1 END, "
                    "values_hash = excluded.values_hash, last_run = excluded.last_run",
                    # CRM text: it may quote a person's e-mail address or a credential (see core.redact).
                    (c, run_id, run_id, [r.record_id for r in rows], [r.field for r in rows],
                     [redact(r.reason).replace("\x00", "\ufffd") for r in rows], [bool(r.transient) for r in rows],
                     [r.values_hash for r in rows]))
            if gone:
                self._drop_contacts(cur, gone)

    def close_plans(self) -> None:
        """Mark every earlier plan settled: a new run recomputes from the CRM's current values instead."""
        c = self.connection_id
        with self._batch() as cur:
            cur.execute("UPDATE clm.plan SET state = 'superseded' WHERE connection_id = %s AND state = 'pending'", (c,))
            cur.execute("DELETE FROM clm.plan WHERE connection_id = %s AND run_id NOT IN "
                        "(SELECT id FROM clm.runs WHERE connection_id = %s ORDER BY id DESC LIMIT 20)", (c, c))

    def rejections(self) -> dict[str, Rejection]:
        """Stored rejections by record."""
        return {
            row[0]: Rejection(row[0], row[1], row[2], bool(row[3]), row[4], row[5])
            for row in self._rows("SELECT record_id, field, reason, transient, values_hash, attempts "
                                  "FROM clm.rejections WHERE connection_id = %s")
        }

    # --- runs ---------------------------------------------------------------------------------------------

    def start_run(self, mode: str, as_of: datetime) -> int:
        """Open a run in the history; returns its id (ids are unique across the database's connections)."""
        [(run_id,)] = self._rows("INSERT INTO clm.runs (connection_id, started_at, status, mode, as_of) "
                                 "VALUES (%s, %s, 'running', %s, %s) RETURNING id",
                                 datetime.now(UTC).isoformat(), mode, as_of.isoformat())
        return int(run_id)

    def finish_run(self, run_id: int, status: str, summary: Mapping[str, Any],
                   metrics: Mapping[str, Any] | None) -> None:
        """Close a run with its status, counts and metrics snapshot."""
        # Problems, messages, rejections and samples quote CRM text: redacted like the logs.
        self.db.execute("UPDATE clm.runs SET finished_at = %s, status = %s, summary = %s, metrics = %s "
                        "WHERE connection_id = %s AND id = %s",
                        (datetime.now(UTC).isoformat(), status, json.dumps(redact_values(summary), default=str),
                         json.dumps(metrics, default=str) if metrics is not None else None, self.connection_id, run_id))

    def runs(self, limit: int = 50) -> list[RunRecord]:
        """Run history, newest first."""
        return [_run(r) for r in self._rows(
            "SELECT id, started_at, finished_at, status, mode, as_of, summary, metrics FROM clm.runs "
            "WHERE connection_id = %s ORDER BY id DESC LIMIT %s", limit)]

    def run(self, run_id: int) -> RunRecord:
        """One run by id."""
        rows = self._rows("SELECT id, started_at, finished_at, status, mode, as_of, summary, metrics FROM clm.runs "
                          "WHERE connection_id = %s AND id = %s", run_id)
        if not rows:
            raise StateError(f"there is no run {run_id}", hint="`clm runs` lists the runs")
        return _run(rows[0])

    def mark_interrupted_runs(self) -> int:
        """Runs left 'running' by a killed process become 'interrupted', with the counts their checkpoints show."""
        c = self.connection_id
        with self.db.transaction(), self.db.cursor() as cur:
            ids = [int(r[0]) for r in cur.execute("SELECT id FROM clm.runs WHERE connection_id = %s "
                                                  "AND status = 'running'", (c,)).fetchall()]
            for run_id in ids:
                counts = dict(cur.execute("SELECT state, count(*) FROM clm.plan WHERE connection_id = %s "
                                          "AND run_id = %s GROUP BY state", (c, run_id)).fetchall())
                summary = {"run_id": run_id, "status": "interrupted", "planned_records": sum(counts.values()),
                           "written_records": counts.get("done", 0), "rejected_count": counts.get("rejected", 0),
                           "gone": counts.get("gone", 0),
                           "message": "the process stopped mid-run (killed or crashed); counts are from its "
                                      "checkpoints, and the next run resumed from them"}
                cur.execute("UPDATE clm.runs SET status = 'interrupted', finished_at = %s, summary = %s "
                            "WHERE id = %s", (datetime.now(UTC).isoformat(), json.dumps(summary), run_id))
            return len(ids)


def _run(r: tuple[Any, ...]) -> RunRecord:
    return RunRecord(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6] or "{}"), json.loads(r[7]) if r[7] else None)


class PostgresRunLock:
    """``with state.run_lock():`` — hold a connection id's run lock (a session-level advisory lock on a connection
    of its own), or raise StateError naming its holder, as :class:`sync.lock.RunLock` does for a state file.

    The holder writes who it is (pid, host, start) into ``clm.meta`` for the message a second run prints, and
    removes it on a clean release; left behind, it is reported as ``recovered_from``. That row never decides who
    holds the lock: the server does.
    """

    def __init__(self, url: str, password: str | None, connection_id: str, where: str,
                 password_env: str | None = _PASSWORD_ENV) -> None:
        self.url, self._password, self.connection_id, self.where = url, password, connection_id, where
        self._password_env = password_env
        self.recovered_from: dict[str, object] | None = None
        self._db: psycopg.Connection[Any] | None = None

    def __enter__(self) -> PostgresRunLock:
        db = connect(self.url, self._password, self.where, self._password_env)
        try:
            [(took,)] = db.execute("SELECT pg_try_advisory_lock(%s)", (_key(f"clm run:{self.connection_id}"),))
            if not took:
                raise self._busy(self._holder(db))
            self.recovered_from = self._holder(db)
            me = {"pid": os.getpid(), "host": socket.gethostname(), "since": datetime.now(UTC).isoformat()}
            db.execute("INSERT INTO clm.meta VALUES (%s, 'run_lock', %s) ON CONFLICT (connection_id, key) "
                       "DO UPDATE SET value = excluded.value", (self.connection_id, json.dumps(me)))
        except psycopg.Error as exc:
            db.close()
            raise storage_error(self.where, exc) from None
        except BaseException:
            db.close()
            raise
        self._db = db
        return self

    def _holder(self, db: psycopg.Connection[Any]) -> dict[str, object] | None:
        row = db.execute("SELECT value FROM clm.meta WHERE connection_id = %s AND key = 'run_lock'",
                         (self.connection_id,)).fetchone()
        try:
            info = json.loads(row[0]) if row else None
        except ValueError:
            return None
        return info if isinstance(info, dict) else None

    def _busy(self, holder: dict[str, object] | None) -> StateError:
        if holder:
            who = f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
        else:
            who = "a run that has just started (it has not recorded itself yet)"
        return StateError(f"another clm run holds the state of {self.connection_id} in {self.where}: {who}",
                          hint="wait for it to finish; the lock is released when that process ends, even if it is "
                               "killed (the database server ends its session)")

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        db, self._db = self._db, None
        if db is None:
            return
        # A lost connection has released the lock already (its session ended): closing is all that is left.
        with suppress(psycopg.Error):
            db.execute("DELETE FROM clm.meta WHERE connection_id = %s AND key = 'run_lock'", (self.connection_id,))
            db.execute("SELECT pg_advisory_unlock(%s)", (_key(f"clm run:{self.connection_id}"),))
        db.close()
