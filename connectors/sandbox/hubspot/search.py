"""``POST /crm/v3/objects/{type}/search``: filters, sorts, free-text query, paging and HubSpot's limits.

Limits as documented: up to five ``filterGroups`` with up to ten filters each and 25 filters in all, raised
on 2024-08-26 from three groups, three filters per group and nine in all (developers.hubspot.com/changelog/
breaking-change-expanded-filtering-capabilities-and-error-messaging-in-hubspots-search-api), a ``query`` of up to
3,000 characters, at most 200 results
per page, and "The search endpoints are limited to 10,000 total results for any given query. Attempting to
page beyond 10,000 will result in a 400 error" (also github.com/airbytehq/airbyte/pull/10700, which hit it).
Filter groups are OR-ed, filters within a group AND-ed. ``IN``/``NOT_IN`` and string ``EQ`` compare
case-insensitively. The exact text of the 10,000-cap 400 is not published; the emulator's names the limit.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from connectors.sandbox.hubspot.errors import validation
from connectors.sandbox.hubspot.schema import DEFAULT_RETURNED, MODIFIED
from connectors.sandbox.hubspot.store import Record, Store, Table
from connectors.sandbox.hubspot.values import Stored, parse_time, sort_key

RESULT_CAP = 10_000
MAX_PAGE = 200
MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 10
MAX_FILTERS = 25
MAX_QUERY = 3000
OPERATORS = ("EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY",
             "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN")
#: Properties a free-text ``query`` searches (HubSpot's default searchable properties, abridged).
QUERY_PROPERTIES = {"contacts": ("firstname", "lastname", "email", "phone", "company"), "deals": ("dealname",)}
_TOKEN = re.compile(r"[\w'-]+")

Predicate = Callable[[Record], bool]


def _comparable(store: Store, table: Table, name: str, raw: object) -> float | str:
    prop = table.props.get(name)
    text = str(raw)
    if prop is not None and prop.type in ("datetime", "date"):
        ms = parse_time(text)
        if ms is None:
            raise validation(f"Invalid value {text!r} for property {name} of type {prop.type}")
        return float(ms)
    if prop is not None and prop.type == "number":
        try:
            return float(text)
        except ValueError:
            raise validation(f"Invalid value {text!r} for property {name} of type number") from None
    return text.casefold()


def _filter(store: Store, table: Table, spec: Mapping[str, Any]) -> Predicate:
    name = spec.get("propertyName")
    operator = spec.get("operator")
    if not isinstance(name, str) or operator not in OPERATORS:
        raise validation(f"Invalid filter: propertyName and an operator among {', '.join(OPERATORS)} are required")
    prop = table.props.get(name)
    if prop is None:
        raise validation(f"Property {name} does not exist on {table.object_type}", context={"propertyName": [name]})

    def key(record: Record) -> float | str | None:
        value: Stored | None = store.value(table, record, name)
        return None if value is None else sort_key(prop, value)

    if operator == "HAS_PROPERTY":
        return lambda r: store.value(table, r, name) is not None
    if operator == "NOT_HAS_PROPERTY":
        return lambda r: store.value(table, r, name) is None
    if operator in ("IN", "NOT_IN"):
        raw_values = spec.get("values")
        if not isinstance(raw_values, list) or not raw_values:
            raise validation(f"Filter on {name} with {operator} needs a non-empty values list")
        wanted = {_comparable(store, table, name, v) for v in raw_values}
        if operator == "IN":
            return lambda r: key(r) in wanted
        return lambda r: key(r) not in wanted
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        pattern = re.compile("^" + ".*".join(re.escape(p) for p in str(spec.get("value", "")).casefold().split("*"))
                             + "$")

        def contains(record: Record) -> bool:
            value = store.value(table, record, name)
            if value is None:
                return False
            text = str(value).casefold()
            return bool(pattern.match(text)) or any(pattern.match(t) for t in _TOKEN.findall(text))

        if operator == "CONTAINS_TOKEN":
            return contains
        return lambda r: not contains(r)
    if "value" not in spec:
        raise validation(f"Filter on {name} with {operator} needs a value")
    target = _comparable(store, table, name, spec["value"])
    if operator == "EQ":
        return lambda r: key(r) == target
    if operator == "NEQ":
        return lambda r: key(r) != target
    if operator == "BETWEEN":
        if "highValue" not in spec:
            raise validation(f"Filter on {name} with BETWEEN needs a highValue")
        high = _comparable(store, table, name, spec["highValue"])

        def between(record: Record) -> bool:
            k = key(record)
            return k is not None and type(k) is type(target) and target <= k <= high  # type: ignore[operator]

        return between
    compare: Callable[[Any, Any], bool] = {
        "LT": lambda a, b: a < b, "LTE": lambda a, b: a <= b, "GT": lambda a, b: a > b,
        "GTE": lambda a, b: a >= b}[operator]

    def ordered(record: Record) -> bool:
        k = key(record)
        return k is not None and type(k) is type(target) and compare(k, target)

    return ordered


def _sorts(raw: object) -> list[tuple[str, bool]]:
    """(property, descending) pairs from ``sorts``: objects ``{propertyName, direction}`` as the docs show, or
    strings (``"createdate"``, ``"-createdate"``) as the published spec types them."""
    out: list[tuple[str, bool]] = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, str):
            out.append((item.lstrip("-"), item.startswith("-")))
        elif isinstance(item, Mapping) and isinstance(item.get("propertyName"), str):
            out.append((str(item["propertyName"]), str(item.get("direction", "ASCENDING")).upper() == "DESCENDING"))
        else:
            raise validation("Invalid sort: expected {propertyName, direction}")
    return out


_LOW, _HIGH = -(2 ** 62), 2 ** 62
#: A page of results: (total, the sequence holding them in order, where the first result sits in it).
_Result = tuple[int, "Sequence[int] | np.ndarray[Any, np.dtype[np.int64]]", int]


def _window(table: Table, groups: list[Any], sorts: list[tuple[str, bool]], query: object) -> tuple[
        int, int, int | None, str] | None:
    """The fast shapes a connector pages with, or None: one filter group of ``lastmodifieddate`` bounds
    (GT/GTE/LT/LTE) and optionally ``hs_object_id GT/GTE``, sorted by ``hs_object_id`` (or nothing, which is
    id order too) ascending, or by the modified time ascending without an id bound. Returns (lowest modified,
    highest modified, id to page after, sort)."""
    if query or len(groups) != 1 or not isinstance(groups[0], Mapping):
        return None
    modified = MODIFIED[table.object_type]
    low, high, after_id = _LOW, _HIGH, None
    for spec in groups[0].get("filters") or []:
        if not isinstance(spec, Mapping):
            return None
        name, operator, raw = spec.get("propertyName"), spec.get("operator"), spec.get("value")
        if raw is None or operator not in ("GT", "GTE", "LT", "LTE"):
            return None
        if name == modified:
            ms = parse_time(str(raw))
            if ms is None:
                return None  # the general path answers the 400
            if operator == "GT":
                low = max(low, ms + 1)
            elif operator == "GTE":
                low = max(low, ms)
            elif operator == "LT":
                high = min(high, ms - 1)
            else:
                high = min(high, ms)
        elif name == "hs_object_id" and operator in ("GT", "GTE"):
            try:
                bound = float(str(raw))
            except ValueError:
                return None
            if not bound.is_integer():
                return None
            floor = int(bound) if operator == "GT" else int(bound) - 1
            after_id = floor if after_id is None else max(after_id, floor)
        else:
            return None
    if not sorts or sorts == [("hs_object_id", False)]:
        return low, high, after_id, "id"
    if sorts == [(modified, False)] and after_id is None:
        return low, high, None, "modified"
    return None


class SearchIndex:
    """Runs searches against what the search index holds (:class:`connectors.sandbox.hubspot.store.SearchView`,
    which lags behind the records by the store's ``search_lag_ms``).

    Windows on the modified time (with an ``hs_object_id`` keyset, sorted by id or modified time) are answered
    from the sorted index in O(log n + page); other queries evaluate every searchable record once and cache
    the ordered result for the pages that follow.
    """

    def __init__(self, store: Store, size: int = 16) -> None:
        self.store = store
        self._cache: OrderedDict[str, tuple[int, list[int]]] = OrderedDict()
        self._windows: OrderedDict[tuple[str, int, int], tuple[int, np.ndarray[Any, np.dtype[np.int64]]]] = (
            OrderedDict())
        self._size = size

    def _validate(self, table: Table, body: Mapping[str, Any]) -> tuple[list[Any], str | None,
                                                                         list[tuple[str, bool]]]:
        groups = body.get("filterGroups") or []
        if not isinstance(groups, list):
            raise validation("Invalid input JSON: filterGroups must be an array")
        if len(groups) > MAX_GROUPS:
            raise validation(f"Too many filter groups: {len(groups)}. The maximum is {MAX_GROUPS}.")
        total = 0
        for group in groups:
            filters = group.get("filters") if isinstance(group, Mapping) else None
            if not isinstance(filters, list):
                raise validation("Invalid input JSON: each filter group needs a filters array")
            if len(filters) > MAX_FILTERS_PER_GROUP:
                raise validation(f"Too many filters in a group: {len(filters)}. The maximum is "
                                 f"{MAX_FILTERS_PER_GROUP}.")
            total += len(filters)
        if total > MAX_FILTERS:
            raise validation(f"Too many filters: {total}. The maximum is {MAX_FILTERS}.")
        query = body.get("query")
        if query is not None and (not isinstance(query, str) or len(query) > MAX_QUERY):
            raise validation(f"query must be a string of at most {MAX_QUERY} characters")
        sorts = _sorts(body.get("sorts"))
        for name, _ in sorts:
            if name not in table.props:
                raise validation(f"Property {name} does not exist on {table.object_type}")
        return groups, query, sorts

    def matches(self, table: Table, body: Mapping[str, Any]) -> list[int]:
        """Ids of all records matching the request, in result order, as search sees them (hold the store
        lock)."""
        total, ids, offset = self._result(table, body)
        return [int(i) for i in ids[offset:offset + total]]

    def _result(self, table: Table, body: Mapping[str, Any]) -> _Result:
        groups, query, sorts = self._validate(table, body)
        view = table.search
        view.settle(table, self.store.now_ms())
        fast = _window(table, groups, sorts, query)
        if fast is not None:
            for spec in groups[0]["filters"]:  # same validation as the general path (the property exists)
                _filter(self.store, table, spec)
            low, high, after_id, order = fast
            lo = int(np.searchsorted(view.mods, low, side="left"))
            hi = int(np.searchsorted(view.mods, high, side="right"))
            if order == "modified":
                return hi - lo, view.ids, lo
            window = self._by_id(table, low, high, lo, hi)
            start = 0 if after_id is None else int(np.searchsorted(window, after_id, side="right"))
            return len(window) - start, window, start
        cache_key = json.dumps([table.object_type, groups, body.get("sorts"), query], sort_keys=True, default=str)
        cached = self._cache.get(cache_key)
        if cached is not None and cached[0] == view.generation:
            self._cache.move_to_end(cache_key)
            return len(cached[1]), cached[1], 0
        predicates = [[_filter(self.store, table, f) for f in g["filters"]] for g in groups]
        text = query.casefold().strip() if isinstance(query, str) else ""
        found: list[Record] = []
        for record_id in np.sort(view.ids).tolist():
            record = view.view(table, record_id)
            if record is None:
                continue
            if predicates and not any(all(p(record) for p in group) for group in predicates):
                continue
            if text and not self._matches_query(table, record, text):
                continue
            found.append(record)
        for name, descending in reversed(sorts):
            prop = table.props[name]
            keyed = [(self.store.value(table, r, name), r) for r in found]
            present = [(sort_key(prop, v), r) for v, r in keyed if v is not None]
            present.sort(key=lambda pair: pair[0], reverse=descending)
            found = [r for _, r in present] + [r for v, r in keyed if v is None]
        ids = [r.id for r in found]
        self._cache[cache_key] = (view.generation, ids)
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return len(ids), ids, 0

    def _by_id(self, table: Table, low: int, high: int, lo: int, hi: int) -> np.ndarray[Any, np.dtype[np.int64]]:
        """The ids of a modified-time window in id order, sorted once per window and index generation."""
        key = (table.object_type, low, high)
        generation = table.search.generation
        cached = self._windows.get(key)
        if cached is not None and cached[0] == generation:
            self._windows.move_to_end(key)
            return cached[1]
        window = np.sort(table.search.ids[lo:hi])
        self._windows[key] = (generation, window)
        if len(self._windows) > 4:
            self._windows.popitem(last=False)
        return window

    def _matches_query(self, table: Table, record: Record, text: str) -> bool:
        for name in QUERY_PROPERTIES[table.object_type]:
            value = self.store.value(table, record, name)
            if value is None:
                continue
            folded = str(value).casefold()
            if text in folded or any(t.startswith(text) for t in _TOKEN.findall(folded)):
                return True
        return False

    def page(self, table: Table, body: Mapping[str, Any]) -> dict[str, Any]:
        """The response to one search request (the spec's ``CollectionResponseWithTotalSimplePublicObject``)."""
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise validation("limit must be a non-negative integer")
        if limit > MAX_PAGE:
            raise validation(f"Paging limit of {limit} exceeds the maximum of {MAX_PAGE}",
                             context={"limit": [str(limit)]})
        after_raw = body.get("after") or "0"
        try:
            after = int(str(after_raw))
        except ValueError:
            raise validation(f"Invalid after value: {after_raw}") from None
        if after >= RESULT_CAP:
            raise validation(f"Search results are limited to {RESULT_CAP} total results for any given query; "
                             f"after={after} pages beyond them. Narrow the query (e.g. on a modified date) "
                             "instead of paging further.", context={"after": [str(after)]})
        total, ids, offset = self._result(table, body)
        requested = body.get("properties")
        names = list(requested) if isinstance(requested, list) and requested else list(
            DEFAULT_RETURNED[table.object_type])
        # Search results always carry the id, creation and modification properties.
        for always in ("hs_object_id", "createdate", MODIFIED[table.object_type]):
            if always not in names:
                names.append(always)
        end = min(after + limit, total, RESULT_CAP)
        view = table.search
        results = []
        for record_id in ids[offset + after:offset + end]:
            record = view.view(table, int(record_id))
            assert record is not None  # the index holds only records it can show
            results.append(self.store.to_json(table, record, names))
        out: dict[str, Any] = {"total": total, "results": results}
        if end < total:
            out["paging"] = {"next": {"after": str(end)}}
        return out

