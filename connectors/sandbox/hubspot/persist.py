"""Optional persistence: a portal's data to and from a SQLite file (``clm sandbox serve --db``).

A snapshot, not a write-through log: :meth:`HubSpotEmulator.save` writes everything, :meth:`load` replaces
the in-memory portal. Values keep their stored form (epoch ms for dates), so a round trip is exact.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import asdict
from pathlib import Path
from typing import Any

from connectors.sandbox.hubspot.schema import OBJECT_TYPES, Option, PropertyDef, PropertyGroup
from connectors.sandbox.hubspot.store import Record, Store, Table

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE properties (object_type TEXT, name TEXT, definition TEXT NOT NULL, PRIMARY KEY (object_type, name));
CREATE TABLE groups (object_type TEXT, name TEXT, definition TEXT NOT NULL, PRIMARY KEY (object_type, name));
CREATE TABLE records (object_type TEXT, id INTEGER, created INTEGER, updated INTEGER, archived_at INTEGER,
                      props TEXT NOT NULL, PRIMARY KEY (object_type, id));
CREATE TABLE merges (object_type TEXT, merged_id INTEGER, into_id INTEGER, PRIMARY KEY (object_type, merged_id));
CREATE TABLE associations (deal_id INTEGER, contact_id INTEGER, position INTEGER);
"""


def save(store: Store, path: Path) -> None:
    """Write the store to ``path`` (replacing it); hold the store lock."""
    path = Path(path)
    if path.exists():
        path.unlink()
    with closing(sqlite3.connect(path)) as db, db:
        db.executescript(_SCHEMA)
        for object_type, table in store.tables.items():
            db.execute("INSERT INTO meta VALUES (?, ?)", (f"next_id:{object_type}", str(table.next_id)))
            db.executemany("INSERT INTO properties VALUES (?, ?, ?)",
                           [(object_type, p.name, json.dumps(asdict(p))) for p in table.props.values()])
            db.executemany("INSERT INTO groups VALUES (?, ?, ?)",
                           [(object_type, g.name, json.dumps(asdict(g))) for g in table.groups.values()])
            names = {index: name for name, index in table.slots.items()}
            db.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?)", [
                (object_type, r.id, r.created, r.updated, r.archived_at,
                 json.dumps({names[i]: v for i, v in enumerate(r.values) if v is not None}))
                for r in table.records.values()])
            # In hs_merged_object_ids order (every merged-away id is listed under the record it resolves to).
            db.executemany("INSERT INTO merges VALUES (?, ?, ?)",
                           [(object_type, loser, into) for into, losers in table.merged_ids.items()
                            for loser in losers])
        db.executemany("INSERT INTO associations VALUES (?, ?, ?)", [
            (deal, contact, position) for deal, contacts in store.deal_contacts.items()
            for position, contact in enumerate(contacts)])
    path.chmod(0o600)  # the file holds personal data: private, as the design's state files are


def _property(raw: dict[str, Any]) -> PropertyDef:
    raw["options"] = [Option(**o) for o in raw.get("options", [])]
    return PropertyDef(**raw)


def load(store: Store, path: Path) -> None:
    """Replace the store's content with the file's; hold the store lock."""
    with closing(sqlite3.connect(Path(path))) as db:
        store.tables = {t: Table(t) for t in OBJECT_TYPES}
        store.deal_contacts.clear()
        store.contact_deals.clear()
        for object_type, name, definition in db.execute("SELECT object_type, name, definition FROM properties"):
            store.tables[object_type].props[name] = _property(json.loads(definition))
        for object_type, name, definition in db.execute("SELECT object_type, name, definition FROM groups"):
            store.tables[object_type].groups[name] = PropertyGroup(**json.loads(definition))
        for object_type, record_id, created, updated, archived_at, props in db.execute(
                "SELECT object_type, id, created, updated, archived_at, props FROM records ORDER BY id"):
            table = store.tables[object_type]
            record = Record(record_id, created, updated)
            record.archived_at = archived_at
            for name, value in json.loads(props).items():
                table.put(record, name, value)
            table.add(record)
        for object_type, loser, into in db.execute("SELECT object_type, merged_id, into_id FROM merges ORDER BY rowid"):
            table = store.tables[object_type]
            table.merged_into[loser] = into
            table.merged_ids.setdefault(into, []).append(loser)
        for deal, contact, _ in db.execute("SELECT * FROM associations ORDER BY deal_id, position"):
            store.associate(deal, contact)
        for key, value in db.execute("SELECT key, value FROM meta"):
            if key.startswith("next_id:"):
                table = store.tables[key.split(":", 1)[1]]
                table.next_id = max(table.next_id, int(value))
        for table in store.tables.values():
            table.search.rebuild(table)  # a loaded portal is fully indexed
        store.version += 1
