"""What a replicating client meets about *when* a change can be read: late commits and the delete log.

**Late commits.** ``SystemModstamp`` is set when a record's save runs inside its transaction, and the change
becomes readable by other sessions only when the whole transaction commits; a save that runs long triggers,
flows or a big batch commits after records stamped later were already read. A replicator whose cursor passed
that stamp never sees the change: Airbyte's source-salesforce lost records stamped a few minutes below the state
it had stored (github.com/airbytehq/airbyte/issues/27146, "the cursor field is updated below that maximum"),
and Singer's tap-salesforce added a ``lookback_window`` for incremental syncs
(github.com/singer-io/tap-salesforce/pull/135).
Salesforce publishes no distribution of the lag; the upper bound is the longest transaction, 10 minutes of
synchronous Apex ("Maximum execution time for each Apex transaction: 10 minutes", Apex governor limits,
https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_apexgov.htm).
The emulator makes a fraction of person saves (UI edits) commit late by seconds to two minutes, and any edit or
insert can be given its own delay. A synchronous API write answers only after its commit, so its caller never
sees the lag; API writes therefore commit at once unless a test asks otherwise.

**The delete log.** Deleted records stay in the Recycle Bin, readable with ``queryAll`` and listed by getDeleted,
for 15 days, or less after an administrator empties the bin ("Results are returned for no more than 15 days
previous to the day the call is executed (or earlier if an administrator has purged the Recycle Bin)",
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_getdeleted.htm). After that
they are physically deleted: gone from ``queryAll`` and from getDeleted, whose ``earliestDateAvailable`` moves to
the last physically deleted record, and a getDeleted ``start`` before it answers ``INVALID_REPLICATION_DATE``
("If the purge has been performed before your getDeleted() call is executed, an INVALID_REPLICATION_DATE error is
returned", getDeleted() rules and guidelines,
https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_getdeleted.htm).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

#: How long the Recycle Bin and the delete log keep a deletion.
RETENTION = timedelta(days=15)


@dataclass(order=True)
class _Pending:
    due: datetime
    seq: int
    record_id: str = field(compare=False)
    apply: Callable[[], None] = field(compare=False)


class LateCommits:
    """Saves whose transaction commits after their ``SystemModstamp``: applied when their time comes.

    ``fraction`` of person saves draw a delay between ``shortest`` and ``longest`` seconds (a seeded draw, so
    runs repeat); everything else commits at once.
    """

    def __init__(self, fraction: float = 0.02, shortest: float = 2.0, longest: float = 120.0, seed: int = 0) -> None:
        self.fraction = fraction
        self.shortest = shortest
        self.longest = longest
        self._draw = random.Random(seed)
        self._heap: list[_Pending] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._heap)

    def person_delay(self) -> float:
        """Seconds until a person's save commits (0: at once)."""
        if self.fraction <= 0 or self._draw.random() >= self.fraction:
            return 0.0
        return self.shortest + (self.longest - self.shortest) * self._draw.random()

    def schedule(self, due: datetime, record_id: str, apply: Callable[[], None]) -> None:
        """Run ``apply`` (the commit) once the clock reaches ``due``."""
        self._seq += 1
        heapq.heappush(self._heap, _Pending(due, self._seq, record_id, apply))

    def settle_all(self) -> None:
        """Commit every open transaction now (an org being saved to a file keeps no half-done saves)."""
        while self._heap:
            heapq.heappop(self._heap).apply()

    def settle(self, now: datetime) -> None:
        """Commit every transaction due by ``now``, oldest first."""
        while self._heap and self._heap[0].due <= now:
            heapq.heappop(self._heap).apply()

    def flush(self, record_id: str) -> None:
        """Commit a record's open transactions now: a later save of the record waits for their row lock."""
        if not any(p.record_id == record_id for p in self._heap):
            return
        mine = sorted(p for p in self._heap if p.record_id == record_id)
        self._heap = [p for p in self._heap if p.record_id != record_id]
        heapq.heapify(self._heap)
        for pending in mine:
            pending.apply()


class DeleteLog:
    """When each deleted record was deleted, per record Id, and what was physically deleted already."""

    def __init__(self) -> None:
        self.deleted_at: dict[str, datetime] = {}
        self.purged: dict[str, datetime] = {}
        """Per key prefix (object), the deletion time of the last record physically deleted."""
        self._next_check: datetime | None = None
        self._size = -1

    def due(self, now: datetime) -> list[str]:
        """Ids whose deletion is older than the retention (cheap while nothing was logged and none is due)."""
        if self._next_check is not None and now < self._next_check and len(self.deleted_at) == self._size:
            return []
        expired = [i for i, when in self.deleted_at.items() if when + RETENTION <= now]
        remaining = [when for when in self.deleted_at.values() if when + RETENTION > now]
        self._next_check = min(remaining) + RETENTION if remaining else None
        self._size = len(self.deleted_at) - len(expired)
        return expired

    def forget(self, record_id: str, *, purged: bool) -> None:
        """Drop a log entry: restored (``purged`` False) or physically deleted (True)."""
        when = self.deleted_at.pop(record_id, None)
        if purged and when is not None:
            prefix = record_id[:3]
            self.purged[prefix] = max(when, self.purged.get(prefix, when))

    def earliest_available(self, prefix: str, now: datetime) -> datetime:
        """getDeleted's ``earliestDateAvailable`` for an object: the last physical deletion, and never more than the
        retention back."""
        floor = now - RETENTION
        purged = self.purged.get(prefix)
        return max(purged, floor) if purged is not None else floor
