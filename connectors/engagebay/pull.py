"""Reading contacts and deals out of EngageBay: full lists by ``created_time``, incremental reads from the top of
``-updated_time`` and ``-created_time`` down to the stored watermark, and a periodic full id sweep for deletions.

What the API gives (github.com/engagebay/restapi README §1.1, §3.1, §4.1) and why the pull is shaped by it:

- **Lists only, no "modified since" filter.** ``POST subscribers`` and ``POST deals`` take ``page_size`` (at most
  100; the emulator, like a server that caps silently, answers 100 to a larger ask), ``sort_key``
  (``created_time``/``updated_time``, ``-`` for descending) and ``cursor``, which arrives *in the last record* of
  a page; a page without one is the last. The end is told by the missing cursor only, never by a short page.
- **Full pull**: ascending ``created_time``. A record's creation time never changes, so an edit made while the
  list is read does not move the record past the cursor (it would on ``updated_time``). Every page stores the
  cursor it reached, so a pull cut by ``--max-runtime`` or a crash resumes from that page.
- **Incremental**: descending ``updated_time`` from the top until the records are older than the watermark minus
  ``lookback_seconds``. Times are whole seconds, so many records share one (imports, bulk edits, a person's burst of
  edits) and a record saved in the same second as the previous run's top would be missed by a strict ``>``: the
  lookback re-reads them, and a record read twice in one pull (same id and ``updated_time``) is handed over once.
  A contact never edited has ``updated_time: 0`` (the §1.1 example), so it sits at the *bottom* of that order: new
  records are found by a second descending scan on ``created_time``.
- **Deletions** (§1.5, §3.4) are hard and nothing lists them: at least every ``sweep_hours`` a sweep lists every
  contact and every deal of every track, and the mirror drops the ids it did not see. A sweep cut short is
  started again by the next run (its pages are ordinary upserts meanwhile).
- **Deals by track**: without ``track_id`` only the default track's deals are listed (§3.1), so each track of
  ``GET tracks`` is read with its own cursor entry; a deal moved to another track (§3.7) changes its
  ``updated_time`` and is found in the new track's scan.

Cursor entries are JSON: ``contacts`` and ``deals:<track id>`` each hold ``{"full": {"cursor": …, "started": s}}``
while a full list is under way, then ``{"since": s}``, and ``{"since": s, "next": s2, "scan": key, "cursor": …}``
inside an incremental scan; ``swept`` holds when the last sweep started (epoch seconds).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from connectors.base import Page
from connectors.engagebay.client import EngageBayClient, dumps
from connectors.engagebay.records import DateText, Tracks, add_contact, add_deal, seconds
from connectors.paging import interleave
from core.config import EngageBayConfig

SWEPT_KEY = "swept"
CONTACTS = "contacts"
#: The incremental scans, in order: edited records, then created ones (``updated_time`` 0 until first edited).
SCANS = ("-updated_time", "-created_time")


def parse_entry(text: str | None) -> dict[str, Any] | None:
    """One stream's stored cursor entry (None when absent or unreadable: the stream is listed in full)."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class Puller:
    """Full, incremental and sweeping pulls of one account."""

    def __init__(self, client: EngageBayClient, config: EngageBayConfig, dates: DateText,
                 wall: Callable[[], float] = time.time) -> None:
        self.client = client
        self.config = config
        self.dates = dates
        self.wall = wall
        self.tracks = Tracks([], config.won_milestones, config.lost_milestones)

    def pull(self, cursor: Mapping[str, str] | None) -> Iterator[Page]:
        """Pages of records, each with the cursor to store once it is in the mirror (see the module docstring)."""
        run_start = int(self.wall())
        stored = dict(cursor or {})
        body = self.client.call("list deal tracks", "GET", "tracks")
        self.tracks = Tracks(body if isinstance(body, list) else [], self.config.won_milestones,
                             self.config.lost_milestones)
        streams = [CONTACTS, *(f"deals:{track}" for track in self.tracks.ids)]
        entries = {stream: parse_entry(stored.get(stream)) for stream in streams}
        swept = _int(stored.get(SWEPT_KEY))
        # Each stream has its own cursor chain: they are read side by side, pages handed over as they arrive.
        concurrent = self.config.max_concurrency > 1
        yield from interleave([self._stream(s, entries[s], run_start) for s in streams], concurrent)
        if swept is None and all(e is None or "since" not in e or "full" in e for e in entries.values()):
            # Every stream was listed in full (the first pull, perhaps over several runs): that was a sweep.
            started = min([int((e or {}).get("full", {}).get("started") or run_start) for e in entries.values()]
                          or [run_start])
            yield Page(cursor={SWEPT_KEY: str(started)})
        elif swept is None or run_start - swept >= self.config.sweep_hours * 3600:
            yield from self._sweep(run_start)

    # --- one stream ------------------------------------------------------------------------------------

    def _stream(self, stream: str, entry: Mapping[str, Any] | None, run_start: int) -> Iterator[Page]:
        if entry is None or "full" in entry or "since" not in entry:
            yield from self._full(stream, (entry or {}).get("full") or {}, run_start)
            return
        since = int(entry["since"])
        floor = since - self.config.lookback_seconds
        upto = int(entry.get("next") or run_start)
        scans = list(SCANS)
        if entry.get("scan") in scans:
            # Resume the scan under way from its cursor; the scans before it are done.
            scans = scans[scans.index(str(entry["scan"])):]
        seen: dict[str, int] = {}
        for position, key in enumerate(scans):
            resume = entry.get("cursor") if position == 0 and entry.get("scan") == key else None
            last = position == len(scans) - 1
            for records, next_cursor in self._scan(stream, key, floor, resume):
                fresh = [r for r in records if seen.get(str(r.get("id"))) != seconds(r, "updated_time")]
                for record in fresh:
                    seen[str(record.get("id"))] = seconds(record, "updated_time")
                page = self._page(stream, fresh)
                if next_cursor is None and last:
                    page.cursor = {stream: dumps({"since": upto})}
                elif next_cursor is None:
                    page.cursor = {stream: dumps({"since": since, "next": upto, "scan": scans[position + 1],
                                                  "cursor": None})}
                else:
                    page.cursor = {stream: dumps({"since": since, "next": upto, "scan": key,
                                                  "cursor": next_cursor})}
                yield page

    def _scan(self, stream: str, key: str, floor: int, cursor: str | None) -> Iterator[
            tuple[list[dict[str, Any]], str | None]]:
        """One descending scan's pages down to ``floor``, each with the cursor to continue from (None: done)."""
        field = key.lstrip("-")
        while True:
            records, cursor = self._list(stream, key, cursor)
            kept = [r for r in records if seconds(r, field) >= floor]
            done = cursor is None or len(kept) < len(records) or not records
            yield kept, None if done else cursor
            if done:
                return

    def _full(self, stream: str, resume: Mapping[str, Any], run_start: int) -> Iterator[Page]:
        started = int(resume.get("started") or run_start)
        cursor: str | None = resume.get("cursor")
        while True:
            records, cursor = self._list(stream, "created_time", cursor)
            page = self._page(stream, records)
            # Incremental from the list's start: edits made while it was read are stamped at or after it.
            page.cursor = {stream: dumps({"full": {"cursor": cursor, "started": started}} if cursor
                                         else {"since": started})}
            yield page
            if not cursor:
                return

    def _sweep(self, run_start: int) -> Iterator[Page]:
        """Every live contact and deal (each page an upsert), then the ids for the mirror to drop the rest."""
        live: dict[str, set[str]] = {CONTACTS: set(), "deals": set()}

        def listing(stream: str) -> Iterator[Page]:
            cursor: str | None = None
            while True:
                records, cursor = self._list(stream, "created_time", cursor)
                live[stream.partition(":")[0]].update(str(r.get("id")) for r in records)
                yield self._page(stream, records)
                if not cursor:
                    return

        streams = [CONTACTS, *(f"deals:{track}" for track in self.tracks.ids)]
        yield from interleave([listing(s) for s in streams], self.config.max_concurrency > 1)
        yield Page(live_contact_ids=sorted(live[CONTACTS]), live_deal_ids=sorted(live["deals"]),
                   cursor={SWEPT_KEY: str(run_start)})

    # --- one page --------------------------------------------------------------------------------------

    def _list(self, stream: str, sort_key: str, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """One list page and the cursor its last record carries (None: the list ended)."""
        form: dict[str, Any] = {"page_size": self.config.page_size, "sort_key": sort_key}
        if cursor:
            form["cursor"] = cursor
        kind, _, track = stream.partition(":")
        if kind == "deals":
            form["track_id"] = track
        body = self.client.call(f"list {kind}", "POST", "subscribers" if kind == CONTACTS else "deals", form=form)
        records = [dict(r) for r in body if isinstance(r, dict)] if isinstance(body, list) else []
        next_cursor = records[-1].pop("cursor", None) if records else None
        return records, str(next_cursor) if next_cursor else None

    def _page(self, stream: str, records: list[dict[str, Any]]) -> Page:
        page = Page()
        for raw in records:
            if stream == CONTACTS:
                add_contact(raw, page, self.dates)
            else:
                add_deal(raw, page, self.dates, self.tracks)
        return page


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None
