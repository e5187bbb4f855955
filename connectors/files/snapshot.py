"""What the last export held, to diff the next one against: one digest per record, in a file named by the digest
of the whole export, which the pull's cursor names.

The cursor moves with the mirror in one transaction (sync.state), so the baseline of the next diff is always
the export the mirror holds: a run stopped before its last page diffs the same export again, which re-sends
changes the mirror may already have (an upsert) and loses none.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.models import Contact, Deal

Digests = dict[str, str]


@dataclass
class ExportDiff:
    """How one export differs from the one before: ids added, changed and gone, per object type."""

    added: dict[str, list[str]] = field(default_factory=lambda: {"contacts": [], "deals": []})
    changed: dict[str, list[str]] = field(default_factory=lambda: {"contacts": [], "deals": []})
    removed: dict[str, list[str]] = field(default_factory=lambda: {"contacts": [], "deals": []})

    def counts(self) -> dict[str, dict[str, int]]:
        """How many of each, for the report."""
        return {kind: {k: len(v) for k, v in part.items()} for kind, part in
                (("added", self.added), ("changed", self.changed), ("removed", self.removed))}


def record_digest(record: Contact | Deal) -> str:
    """A fingerprint of everything the engine reads from a record (not its pulled-at time)."""
    if isinstance(record, Contact):
        values: tuple[object, ...] = (record.email, record.created_at.timestamp())
    else:
        values = (record.amount, record.currency, record.status.value, record.created_at.timestamp(),
                  None if record.closed_at is None else record.closed_at.timestamp(), record.contact_ids)
    text = repr((record.id, values, sorted(record.properties.items())))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def export_digest(digests: Mapping[str, Digests]) -> str:
    """A fingerprint of a whole export (its records' fingerprints in id order)."""
    h = hashlib.blake2b(digest_size=16)
    for kind in sorted(digests):
        for record_id in sorted(digests[kind]):
            h.update(f"{kind}\t{record_id}\t{digests[kind][record_id]}\n".encode())
    return h.hexdigest()


def diff(old: Mapping[str, Digests], new: Mapping[str, Digests]) -> ExportDiff:
    """What changed from ``old`` to ``new``."""
    out = ExportDiff()
    for kind in ("contacts", "deals"):
        before, after = old.get(kind, {}), new.get(kind, {})
        for record_id, digest in after.items():
            if record_id not in before:
                out.added[kind].append(record_id)
            elif before[record_id] != digest:
                out.changed[kind].append(record_id)
        out.removed[kind] = [record_id for record_id in before if record_id not in after]
    return out


class SnapshotStore:
    """Snapshots in one folder, one file per export digest."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, digest: str) -> Path:
        """Where the snapshot of an export with this digest lives."""
        return self.folder / f"export-{digest}.tsv"

    def load(self, digest: str) -> dict[str, Digests] | None:
        """The snapshot, or None when it is not there (deleted: the pull then sends everything)."""
        try:
            text = self.path(digest).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        out: dict[str, Digests] = {"contacts": {}, "deals": {}}
        for line in text.splitlines():
            kind, record_id, value = line.split("\t")
            out[kind][record_id] = value
        return out

    def save(self, digest: str, digests: Mapping[str, Digests]) -> None:
        """Write a snapshot durably (a kill leaves the old file or the new one, never half of one)."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = self.path(digest)
        temporary = target.with_suffix(".tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            for kind in ("contacts", "deals"):
                for record_id, value in digests.get(kind, {}).items():
                    # Ids never hold tabs or line breaks (records.py refuses them).
                    handle.write(f"{kind}\t{record_id}\t{value}\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)

    def keep_only(self, digest: str) -> None:
        """Remove the snapshots of older exports (once the mirror holds the one named ``digest``)."""
        if not self.folder.is_dir():
            return
        for path in self.folder.glob("export-*.tsv"):
            if path != self.path(digest):
                path.unlink(missing_ok=True)

