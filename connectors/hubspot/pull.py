"""Reading contacts and deals out of HubSpot: full pulls by list paging, incremental pulls by search, both
resumable from the page they reached.

Why it is shaped this way (each point is a way a simpler pull loses records in a real portal):

- **Search is eventually consistent**: an edit becomes searchable seconds after its modified time (Airbyte's
  source-hubspot re-reads a lookback window for this reason; Singer's tap-hubspot does the same with its
  "lookback" bookmark). Each incremental window therefore starts ``search_lookback_seconds`` before the stored
  cursor and ends at this run's start: a record indexed late is read by the next run's window, and re-reading
  a record is harmless (the mirror upserts on id).
- **Offset paging over a moving sort skips records**: search ``after`` is an offset into results sorted by
  modified time, so a record edited mid-pull moves to the end and shifts the page boundary. Inside a window
  capped at the run's start, pages are read by keyset instead: ``hs_object_id > last id``, sorted by id. Ids do
  not move, a record edited during the pull leaves the window (the next run reads it), and no query ever pages
  with ``after``, so neither the 10,000-result search cap nor 10,000 records stamped at one millisecond (imports,
  workflow bulk edits) stop it.
- **A full pull of a large portal outlives one invocation** (a Lambda has 15 minutes): every page carries its
  list cursor (``after``), so a run stopped anywhere resumes from the page it was on.
- **Associations change without touching the deal** (a re-associated deal keeps its modified time): each
  incremental run also re-reads a slice of all deals with their associations, oldest first in id order, so
  every deal's attribution is refreshed within ``ceil(deals / (100 × association_sweep_pages))`` runs.
- **The pull keeps the limiter busy**: list and search pages are chained by ``after`` tokens and keyset ids,
  so one cursor is one request at a time; contacts and deals (each with its own cursor key) are read in two
  threads (:func:`interleave`), pages handed over as they arrive, one waiting per stream. Searched deals are
  grouped up to the v4 batch read's 1,000 inputs ("may not exceed 1000 IDs per request body",
  developers.hubspot.com/changelog/bug-fix-batch-read-limit-for-hubspot-associations-api), one association
  read per group, made while the next group is searched.
- v4 association reads page per input (``paging.next.after`` on a result), and list results carry inline
  associations with their own paging: both are followed to the end.

Cursor entries are JSON, one per object type:
``{"full": {"after": <list token or null>, "started": <ms>}}`` while a full list is under way,
``{"since": <ms>}`` once complete up to a time, ``{"since": …, "window": [lo, hi], "last_id": …}`` inside a
window; ``deal_associations`` holds the sweep's list token.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from connectors.base import Page, parse_time
from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.records import MODIFIED, add_contact, add_deal, inline_contacts
from connectors.paging import interleave
from core.config import HubSpotConfig

#: The v4 associations batch read takes up to 1,000 ids per call ("may not exceed 1000 IDs per request body",
#: developers.hubspot.com/changelog/bug-fix-batch-read-limit-for-hubspot-associations-api, February 2025).
ASSOCIATION_BATCH = 1000
#: Per-object association pages hold up to 500 (the v4 ``limit`` maximum).
ASSOCIATION_PAGE = 500
SWEEP_KEY = "deal_associations"
OBJECT_TYPES = ("contacts", "deals")


def parse_entry(text: str | None) -> dict[str, Any] | None:
    """One object type's stored cursor; the older ``"<ms>|<ids>"`` form reads as ``{"since": ms}``."""
    if not text:
        return None
    if text.startswith("{"):
        value = json.loads(text)
        return value if isinstance(value, dict) else None
    return {"since": int(text.partition("|")[0])}


def _dump(entry: Mapping[str, Any]) -> str:
    return json.dumps(entry, separators=(",", ":"))


class Puller:
    """Full and incremental pulls of one portal."""

    def __init__(self, client: HubSpotClient, config: HubSpotConfig, contact_props: Sequence[str],
                 deal_props: Sequence[str], wall: Callable[[], float] = time.time) -> None:
        self.client = client
        self.config = config
        self.props = {"contacts": list(contact_props), "deals": list(deal_props)}
        self.wall = wall

    def pull(self, cursor: Mapping[str, str] | None) -> Iterator[Page]:
        """Pages of records, each with the cursor to store once it is in the mirror.

        An object type without a cursor entry (all of them when ``cursor`` is None) is listed in full; one
        whose entry is a full list under way continues it; the rest are searched incrementally. Contacts and
        deals are read concurrently (each page carries only its own type's cursor key, so pages may arrive
        interleaved); within a type pages come in cursor order.
        """
        run_start = int(self.wall() * 1000)
        self.client.read_daily_reset()
        stored = dict(cursor or {})
        streams = [self._stream(object_type, stored, run_start) for object_type in OBJECT_TYPES]
        yield from interleave(streams, self.config.max_concurrency > 1)

    def _stream(self, object_type: str, stored: Mapping[str, str], run_start: int) -> Iterator[Page]:
        """One object type's pages: its list or search, its archived records, and for deals the sweep."""
        entry = parse_entry(stored.get(object_type))
        if entry is None or "full" in entry:
            yield from self._list_all(object_type, (entry or {}).get("full"), run_start)
            return
        yield from self._search(object_type, entry, run_start)
        archived = self._archived_ids(object_type, int(entry["since"]) - self._lookback_ms())
        if archived and object_type == "contacts":
            yield Page(deleted_contact_ids=archived)
        elif archived:
            yield Page(deleted_deal_ids=archived)
        if object_type == "deals" and self.config.association_sweep_pages:
            yield from self._sweep(parse_entry(stored.get(SWEEP_KEY)) or {})

    def _lookback_ms(self) -> int:
        return int(self.config.search_lookback_seconds * 1000)

    # --- full: list paging -------------------------------------------------------------------------------

    def _list_page(self, object_type: str, after: str | None) -> tuple[list[dict[str, Any]], str | None]:
        kwargs: dict[str, Any] = {"limit": self.config.page_size, "properties": self.props[object_type],
                                  "archived": False}
        if object_type == "deals":
            # Inline associations save the separate association call per page on list reads.
            kwargs["associations"] = ["contacts"]
        if after:
            kwargs["after"] = after
        body = self.client.call(f"list {object_type}", f"crm.{object_type}.basic_api", "get_page", **kwargs)
        return body.get("results", []), body.get("paging", {}).get("next", {}).get("after")

    def _list_all(self, object_type: str, resume: Mapping[str, Any] | None, run_start: int) -> Iterator[Page]:
        started = int((resume or {}).get("started") or run_start)
        after: str | None = (resume or {}).get("after")
        while True:
            results, after = self._list_page(object_type, after)
            page = self._page(object_type, results)
            # Until the list ends, the cursor is the list position; then incremental from the list's start
            # (edits made while it was read are at or after that time).
            page.cursor = {object_type: _dump({"full": {"after": after, "started": started}} if after
                                              else {"since": started})}
            yield page
            if not after:
                return

    def _sweep(self, entry: Mapping[str, Any]) -> Iterator[Page]:
        after: str | None = entry.get("after")
        for _ in range(self.config.association_sweep_pages):
            results, after = self._list_page("deals", after)
            page = self._page("deals", results)
            page.cursor = {SWEEP_KEY: _dump({"after": after})}
            yield page
            if not after:
                return

    # --- incremental: keyset search in capped windows ----------------------------------------------------

    def _search_pages(self, object_type: str, entry: Mapping[str, Any], run_start: int) -> Iterator[
            tuple[list[dict[str, Any]], dict[str, str]]]:
        """Each search page's results with the cursor that stands once they are stored."""
        since = int(entry["since"])
        if "window" in entry:
            low, high = (int(v) for v in entry["window"])
            last_id = str(entry.get("last_id") or "0")
        else:
            low, high, last_id = since - self._lookback_ms(), run_start, "0"
        prop = MODIFIED[object_type]
        while True:
            request = {
                "filterGroups": [{"filters": [
                    {"propertyName": prop, "operator": "GTE", "value": str(low)},
                    {"propertyName": prop, "operator": "LTE", "value": str(high)},
                    {"propertyName": "hs_object_id", "operator": "GT", "value": last_id},
                ]}],
                # HubSpot's search guide documents sorts as {propertyName, direction} objects.
                "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                "properties": self.props[object_type],
                "limit": self.config.search_page_size,
            }
            body = self.client.call(f"search {object_type}", f"crm.{object_type}.search_api", "do_search",
                                    public_object_search_request=request, search=True)
            results = body.get("results", [])
            more = bool(results) and bool(body.get("paging", {}).get("next"))
            if results:
                last_id = str(results[-1]["id"])
            yield results, {object_type: _dump({"since": since, "window": [low, high], "last_id": last_id}
                                               if more else {"since": high})}
            if not more:
                return

    def _search(self, object_type: str, entry: Mapping[str, Any], run_start: int) -> Iterator[Page]:
        pages = self._search_pages(object_type, entry, run_start)
        if object_type == "contacts":
            for results, cursor in pages:
                page = self._page(object_type, results)
                page.cursor = cursor
                yield page
            return
        yield from self._searched_deals(pages)

    def _searched_deals(self, pages: Iterator[tuple[list[dict[str, Any]], dict[str, str]]]) -> Iterator[Page]:
        """Searched deals in groups of up to :data:`ASSOCIATION_BATCH`, so that one v4 batch read serves the
        associations of several search pages; the next group's search pages are read while the previous
        group's associations are (at most two groups in memory). A group's page carries the cursor of its last
        search page, so a stop never skips a deal whose associations were not stored."""
        # A group is closed once the next search page might not fit in one batch read.
        limit = max(ASSOCIATION_BATCH - self.config.search_page_size, 0)

        def groups() -> Iterator[tuple[list[dict[str, Any]], dict[str, str]]]:
            group: list[dict[str, Any]] = []
            cursor: dict[str, str] = {}
            for results, cursor in pages:
                group.extend(results)
                if len(group) > limit:
                    yield group, cursor
                    group = []
            yield group, cursor

        def read(group: list[dict[str, Any]]) -> dict[str, list[str]]:
            return self.deal_contacts([str(raw["id"]) for raw in group])

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hubspot-associations") as pool:
            ahead: tuple[list[dict[str, Any]], dict[str, str], Future[dict[str, list[str]]]] | None = None
            for group, cursor in groups():
                current = (group, cursor, pool.submit(read, group))
                if ahead is not None:
                    yield self._deal_page(ahead[0], ahead[2].result(), ahead[1])
                ahead = current
            if ahead is not None:
                yield self._deal_page(ahead[0], ahead[2].result(), ahead[1])

    def _deal_page(self, results: Sequence[Mapping[str, Any]], associations: Mapping[str, Sequence[str]],
                   cursor: dict[str, str]) -> Page:
        page = Page(cursor=cursor)
        company = self._company_currency(results)
        for raw in results:
            add_deal(raw, associations.get(str(raw["id"]), ()), page, company)
        return page

    def _archived_ids(self, object_type: str, since_ms: int) -> list[str]:
        """Ids archived at or after ``since_ms`` (HubSpot lists archived records without a time filter)."""
        ids: list[str] = []
        after: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": self.config.page_size, "archived": True,
                                      "properties": ["hs_object_id"]}
            if after:
                kwargs["after"] = after
            body = self.client.call(f"list archived {object_type}", f"crm.{object_type}.basic_api", "get_page",
                                    **kwargs)
            for raw in body.get("results", []):
                archived_at = parse_time(raw.get("archivedAt"))
                if archived_at is None or archived_at.timestamp() * 1000 >= since_ms:
                    ids.append(str(raw["id"]))
            after = body.get("paging", {}).get("next", {}).get("after")
            if not after:
                return ids

    # --- records and associations ------------------------------------------------------------------------

    def _page(self, object_type: str, results: Sequence[Mapping[str, Any]]) -> Page:
        """Listed deals, or contacts (listed or searched), as a page without its cursor."""
        page = Page()
        if object_type == "contacts":
            for raw in results:
                add_contact(raw, page)
            if page.merged_contacts:
                self._add_deals_of(sorted(set(page.merged_contacts.values())), page)
            return page
        # Listed deals carry their associations inline; only those with more than one inline page are read.
        associations: dict[str, list[str]] = {}
        for raw in results:
            ids, more = inline_contacts(raw)
            associations[str(raw["id"])] = self._all_contacts_of(str(raw["id"])) if more else ids
        return self._deal_page(results, associations, {})

    def _company_currency(self, deals: Sequence[Mapping[str, Any]]) -> str | None:
        """The portal's company currency, the one every deal amount is given in (read once per client)."""
        return self.client.read_company_currency() if deals else None

    def _add_deals_of(self, contact_ids: Sequence[str], page: Page) -> None:
        """Re-read the deals of contacts that absorbed others by a merge: HubSpot re-points the merged records'
        deals to the new record without changing the deals' modified time, and the order of a deal's contacts
        (which decides its primary attribution) is HubSpot's to tell."""
        deal_ids = sorted({d for ids in self._associated("contacts", "deals", contact_ids).values() for d in ids})
        for start in range(0, len(deal_ids), 100):  # batch read takes up to 100 inputs
            body = self.client.call("read deals", "crm.deals.batch_api", "read", {
                "inputs": [{"id": i} for i in deal_ids[start:start + 100]],
                "properties": self.props["deals"], "propertiesWithHistory": []}, archived=False)
            results = body.get("results", [])
            contacts = self.deal_contacts([str(raw["id"]) for raw in results])
            company = self._company_currency(results)
            for raw in results:
                add_deal(raw, contacts.get(str(raw["id"]), ()), page, company)

    def deal_contacts(self, deal_ids: Sequence[str]) -> dict[str, list[str]]:
        """Deal -> associated contact ids via the v4 batch API (following per-input paging), in HubSpot's
        order; HubSpot has no "primary" label on deal->contact associations."""
        return self._associated("deals", "contacts", deal_ids)

    def _associated(self, from_type: str, to_type: str, ids: Sequence[str]) -> dict[str, list[str]]:
        """``from_type`` id -> associated ``to_type`` ids via the v4 batch API, following per-input paging."""
        out: dict[str, list[str]] = {}
        for start in range(0, len(ids), ASSOCIATION_BATCH):
            chunk = ids[start:start + ASSOCIATION_BATCH]
            body = self.client.call(f"read {from_type} associations", "crm.associations.v4.batch_api", "get_page",
                                    from_type, to_type, {"inputs": [{"id": i} for i in chunk]})
            for result in body.get("results", []):
                source = str(result["_from"]["id"] if "_from" in result else result["from"]["id"])
                targets = out.setdefault(source, [])
                _extend(targets, [str(t["toObjectId"]) for t in result.get("to", [])])
                after = ((result.get("paging") or {}).get("next") or {}).get("after")
                if after:
                    _extend(targets, self._associated_from(from_type, source, to_type, str(after)))
        return out

    def _all_contacts_of(self, deal_id: str) -> list[str]:
        return _extend([], self._associated_from("deals", deal_id, "contacts", None))

    def _associated_from(self, from_type: str, object_id: str, to_type: str, after: str | None) -> Iterator[str]:
        while True:
            kwargs: dict[str, Any] = {"limit": ASSOCIATION_PAGE}
            if after:
                kwargs["after"] = after
            body = self.client.call(f"read {from_type} associations", "crm.associations.v4.basic_api", "get_page",
                                    from_type, object_id, to_type, **kwargs)
            for item in body.get("results", []):
                yield str(item["toObjectId"])
            after = ((body.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return


def _extend(targets: list[str], ids: Iterator[str] | Sequence[str]) -> list[str]:
    """Append ids not yet in ``targets`` (one entry per association type may repeat an id), keeping order."""
    known = set(targets)
    for target in ids:
        if target not in known:
            known.add(target)
            targets.append(target)
    return targets
