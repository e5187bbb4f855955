"""REST API resources: query/queryAll with query locators, describe, sObject rows, sObject Collections, limits.

Query paging follows the Query and Query More Results resources: up to 2,000 records per response, fewer when
``Sforce-Query-Options: batchSize=n`` asks (200..2,000), ``nextRecordsUrl`` of the form
``/services/data/vXX.X/query/01g…-2000`` while ``done`` is false
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_queryoptions.htm,
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query.htm). A user has at most
10 open query cursors; opening another releases the oldest, whose locator then fails with
``INVALID_QUERY_LOCATOR`` (SOQL and SOSL Reference, "QueryLocator"/"query cursors" limits), and an idle cursor
expires after 15 minutes.

sObject Collections updates take at most 200 records, in at most 10 chunks of consecutive same-type records,
and answer one SaveResult per record in input order; with ``allOrNone`` true, one failure rolls back every
record and the others report ``ALL_OR_NONE_OPERATION_ROLLED_BACK`` "Record rolled back because not all records
were valid and the request was using AllOrNone header"
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_update.htm).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from connectors.sandbox.salesforce import ids
from connectors.sandbox.salesforce.errors import ApiError, RecordError, not_found
from connectors.sandbox.salesforce.schema import FieldDef, ObjectDef, describe_object, object_summary
from connectors.sandbox.salesforce.soql import Compiled, _SubColumn, compile_query
from connectors.sandbox.salesforce.store import Record, Store, View
from connectors.sandbox.salesforce.values import JsonValueError, format_datetime, from_json, parse_datetime, to_json
from connectors.sandbox.server import Request, Response

MAX_BATCH = 2000
MIN_BATCH = 200
COLLECTION_LIMIT = 200
MAX_CHUNKS = 10
ROLLED_BACK = RecordError("ALL_OR_NONE_OPERATION_ROLLED_BACK",
                          "Record rolled back because not all records were valid and the request was using "
                          "AllOrNone header")


def json_response(status: int, payload: Any) -> Response:
    """A JSON response with Salesforce's content type."""
    return Response.json(status, payload, {"Content-Type": "application/json;charset=UTF-8"})


@dataclass
class RecordFaults:
    """Per-record fault hooks for writes (injected lock failures, validation failures, vanishing records)."""

    before: Callable[[str | None], RecordError | None] = lambda _record_id: None
    """Called before a record is validated: may delete it (→ ENTITY_IS_DELETED) or fail it (UNABLE_TO_LOCK_ROW)."""
    after: Callable[[str | None], RecordError | None] = lambda _record_id: None
    """Called after a record passed validation: may fail it (FIELD_CUSTOM_VALIDATION_EXCEPTION)."""
    batch_fails: Callable[[], str | None] = lambda: None
    """Called before each internal batch of a Bulk ingest job: an error message fails the job there."""


@dataclass
class Context:
    """What a resource handler needs about the request being served."""

    request: Request
    version: str
    store: Store
    faults: RecordFaults = field(default_factory=RecordFaults)


# ---------------------------------------------------------------- query cursors


@dataclass
class _Cursor:
    compiled: Compiled
    rows: list[Record]
    include_deleted: bool
    endpoint: str
    last_used: datetime


class QueryCursors:
    """Open query locators of the integration user (oldest released beyond ``max_open``)."""

    def __init__(self, store: Store, max_open: int = 10, idle: timedelta = timedelta(minutes=15)) -> None:
        self.store = store
        self.max_open = max_open
        self.idle = idle
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, cursor: _Cursor) -> str:
        locator = self.store.ids.new(ids.KEY_PREFIXES["QueryLocator"])
        with self._lock:
            self._cursors[locator] = cursor
            while len(self._cursors) > self.max_open:
                self._cursors.popitem(last=False)
        return locator

    def get(self, locator: str) -> _Cursor:
        now = self.store.now()
        with self._lock:
            cursor = self._cursors.get(locator)
            if cursor is None or now - cursor.last_used > self.idle:
                self._cursors.pop(locator, None)
                raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            cursor.last_used = now
            return cursor

    def close(self, locator: str) -> None:
        with self._lock:
            self._cursors.pop(locator, None)

    def __len__(self) -> int:
        return len(self._cursors)


def batch_size(request: Request) -> int:
    """The page size asked with ``Sforce-Query-Options: batchSize=n``, kept within 200..2000."""
    header = request.headers.get("sforce-query-options", "")
    match = re.search(r"batchSize\s*=\s*(\d+)", header, re.IGNORECASE)
    if not match:
        return MAX_BATCH
    return max(MIN_BATCH, min(MAX_BATCH, int(match.group(1))))


def _page(ctx: Context, cursors: QueryCursors, cursor: _Cursor, offset: int, locator: str | None,
          tooling: bool) -> Response:
    size = batch_size(ctx.request)
    has_children = any(isinstance(c, _SubColumn) for c in cursor.compiled.columns)
    records: list[Record] = []
    position = offset
    counted = 0
    while position < len(cursor.rows) and counted < size:
        rendered = cursor.compiled.render(cursor.rows[position], cursor.include_deleted)
        if has_children:
            # "Child objects count toward the number of records for the batch size" (Query Options header).
            children = sum(v["totalSize"] for v in rendered.values() if isinstance(v, dict) and "totalSize" in v)
            if records and counted + 1 + children > size:
                break
            counted += children
        records.append(rendered)
        counted += 1
        position += 1
    body: dict[str, Any] = {"totalSize": len(cursor.rows), "done": position >= len(cursor.rows)}
    if position < len(cursor.rows):
        if locator is None:
            locator = cursors.open(cursor)
        prefix = "tooling/" if tooling else ""
        body["nextRecordsUrl"] = f"/services/data/v{ctx.version}/{prefix}{cursor.endpoint}/{locator}-{position}"
    elif locator is not None:
        cursors.close(locator)
    body["records"] = records
    return json_response(200, body)


def query(ctx: Context, cursors: QueryCursors, *, include_deleted: bool, tooling: bool = False) -> Response:
    """``GET query?q=`` / ``queryAll?q=`` (and the Tooling ``query``)."""
    text = ctx.request.param("q")
    if not text:
        raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
    compiled = compile_query(text, View(ctx.store, tooling), ctx.version)
    rows = compiled.run(include_deleted)
    if compiled.count:
        return json_response(200, {"totalSize": len(rows), "done": True, "records": []})
    if tooling and (compiled.selects("Metadata") or compiled.selects("FullName")) and len(rows) > 1:
        # CustomField: "Query this field only if the query result contains no more than one record."
        raise ApiError(400, "MALFORMED_QUERY",
                       "When retrieving results with Metadata or FullName fields, the query qualifications must "
                       f"specify no more than one row for retrieval. Result size: {len(rows)}")
    cursor = _Cursor(compiled, rows, include_deleted, "queryAll" if include_deleted else "query", ctx.store.now())
    return _page(ctx, cursors, cursor, 0, None, tooling)


def query_more(ctx: Context, cursors: QueryCursors, locator_and_offset: str, tooling: bool = False) -> Response:
    """``GET query/{locator}-{offset}`` (Query More Results)."""
    locator, _, offset_text = locator_and_offset.rpartition("-")
    if not locator or not offset_text.isdigit():
        locator, offset_text = locator_and_offset, "0"
    cursor = cursors.get(locator)
    offset = int(offset_text)
    if offset > len(cursor.rows):
        raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    return _page(ctx, cursors, cursor, offset, locator, tooling)


# ---------------------------------------------------------------- describe


def describe_global(ctx: Context, tooling: bool = False) -> Response:
    """``GET sobjects/``."""
    objects = ctx.store.tooling.values() if tooling else ctx.store.objects.values()
    return json_response(200, {"encoding": "UTF-8", "maxBatchSize": COLLECTION_LIMIT,
                               "sobjects": [object_summary(o, ctx.version) for o in objects]})


def resolve_object(ctx: Context, name: str, tooling: bool = False) -> ObjectDef:
    """An sObject named in a URL, or 404 ``NOT_FOUND`` as Salesforce answers for unknown types."""
    obj = ctx.store.tooling_object(name) if tooling else ctx.store.object(name)
    if obj is None:
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
    return obj


def describe(ctx: Context, name: str, tooling: bool = False) -> Response:
    """``GET sobjects/{Object}/describe``: only the fields the running user can see, each ``updateable`` and
    ``createable`` as field-level security lets that user ("updateable: Indicates whether the field can be edited
    by the current user", DescribeSObjectResult Field,
    https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_describesobjects_describesobjectresult.htm)."""
    obj = resolve_object(ctx, name, tooling)
    with ctx.store.lock:
        fields = ctx.store.visible_fields(obj)
        body = describe_object(obj, fields, ctx.version)
        for entry, definition in zip(body["fields"], fields, strict=True):
            entry["updateable"] = ctx.store.editable(obj, definition)
            entry["createable"] = ctx.store.editable(obj, definition, create=True)
    return json_response(200, body)


def object_info(ctx: Context, name: str) -> Response:
    """``GET sobjects/{Object}`` (basic information)."""
    obj = resolve_object(ctx, name)
    return json_response(200, {"objectDescribe": object_summary(obj, ctx.version), "recentItems": []})


# ---------------------------------------------------------------- parsing write bodies


def _column(raw: str, key: str) -> int:
    """An approximate 1-based column of ``key`` in a JSON body (for JSON_PARSER_ERROR messages)."""
    position = raw.find(f'"{key}"')
    return position + len(key) + 4 if position >= 0 else 1


def parse_values(ctx: Context, obj: ObjectDef, body: Mapping[str, Any], *,
                 allow_id: bool) -> tuple[Any, dict[str, Any]]:
    """Split a JSON record into its Id and deserialized field values; request-level errors raise ApiError.

    Unknown or invisible fields are "No such column ... on sobject of type X" (``INVALID_FIELD``); a value of
    an impossible JSON type is ``JSON_PARSER_ERROR``. Both reject the whole request.
    """
    raw_id: Any = None
    values: dict[str, Any] = {}
    raw_text = ctx.request.body.decode("utf-8", "replace")
    for key, value in body.items():
        if key == "attributes":
            continue
        if key.lower() == "id" and allow_id:
            raw_id = value
            continue
        definition = obj.field(key)
        if definition is None or not ctx.store.readable(obj, definition):
            raise ApiError(400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}")
        try:
            values[definition.name] = from_json(definition, value)
        except JsonValueError as exc:
            raise ApiError(400, "JSON_PARSER_ERROR", f"{exc} at [line:1, column:{_column(raw_text, key)}]") from None
    return raw_id, values


def _records_of(body: Any) -> tuple[list[Any], bool]:
    if not isinstance(body, Mapping) or not isinstance(body.get("records"), list):
        raise ApiError(400, "JSON_PARSER_ERROR",
                       "Cannot deserialize instance of SObjectCollection from START_ARRAY value [ or request may be "
                       "missing a required field at [line:1, column:1]")
    all_or_none = body.get("allOrNone", False)
    if not isinstance(all_or_none, bool):
        raise ApiError(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of boolean from VALUE_STRING value "
                                                 f"{all_or_none} or request may be missing a required field")
    records = body["records"]
    if len(records) > COLLECTION_LIMIT:
        # As clients quote it: "EXCEEDED_ID_LIMIT: record limit reached. cannot submit more than 200 records
        # into this call" (jsforce users hitting the collections limit).
        raise ApiError(400, "EXCEEDED_ID_LIMIT",
                       "record limit reached. cannot submit more than 200 records into this call")
    return records, all_or_none


def _typed_records(ctx: Context, records: list[Any]) -> list[tuple[ObjectDef, Any, dict[str, Any]]]:
    parsed = []
    chunks = 0
    previous: str | None = None
    for item in records:
        if not isinstance(item, Mapping):
            raise ApiError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of SObject from VALUE_STRING "
                                                     "value or request may be missing a required field")
        attributes = item.get("attributes")
        type_name = attributes.get("type") if isinstance(attributes, Mapping) else None
        if not type_name:
            # The platform's words for a record without a type ("INVALID_TYPE: Must send a concrete entity
            # type.", as SOAP and REST clients report it).
            raise ApiError(400, "INVALID_TYPE", "Must send a concrete entity type.")
        obj = ctx.store.object(str(type_name))
        if obj is None:
            raise ApiError(400, "INVALID_TYPE", f"sObject type '{type_name}' is not supported.")
        if obj.name != previous:
            chunks += 1
            previous = obj.name
        raw_id, values = parse_values(ctx, obj, item, allow_id=True)
        parsed.append((obj, raw_id, values))
    if chunks > MAX_CHUNKS:
        # Message as the platform words it (e.g. afawcett/declarative-lookup-rollup-summaries#51); the error
        # code for the REST resource is the emulator's choice.
        raise ApiError(400, "EXCEEDED_MAX_TYPES_LIMIT", "Cannot have more than 10 chunks in a single operation. "
                                                        "Please rearrange the data to reduce chunking.")
    return parsed


def allow_save(ctx: Context) -> bool:
    """Whether the request asks to save past duplicate-rule alerts: ``Sforce-Duplicate-Rule-Header:
    allowSave=true; ...`` (REST API "Duplicate Rule Header"; every field defaults to false)."""
    header = ctx.request.headers.get("sforce-duplicate-rule-header", "")
    for part in header.replace(",", ";").split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() == "allowsave":
            return value.strip().lower() == "true"
    return False


def _save_result(record_id: str | None, error: RecordError | None) -> dict[str, Any]:
    if error is None:
        return {"id": record_id, "success": True, "errors": []}
    return {"success": False, "errors": [error.as_save_error()]}


# ---------------------------------------------------------------- sObject Collections


def collection_update(ctx: Context) -> Response:
    """``PATCH composite/sobjects``: update up to 200 records, SaveResults in input order."""
    records, all_or_none = _records_of(ctx.request.json())
    store = ctx.store
    with store.lock:
        parsed = _typed_records(ctx, records)
        outcomes: list[RecordError | tuple[ObjectDef, Record, dict[str, Any]]] = []
        for obj, raw_id, values in parsed:
            normalized = ids.normalize(raw_id) if raw_id is not None else None
            try:
                injected = ctx.faults.before(normalized)
                if injected is not None:
                    raise injected
                record, changes = store.prepare_update(obj, raw_id, values, allow_save=allow_save(ctx))
                injected = ctx.faults.after(normalized)
                if injected is not None:
                    raise injected
                outcomes.append((obj, record, changes))
            except RecordError as error:
                outcomes.append(error)
        failed = any(isinstance(o, RecordError) for o in outcomes)
        results = []
        if all_or_none and failed:
            for outcome in outcomes:
                results.append(_save_result(None, outcome if isinstance(outcome, RecordError) else ROLLED_BACK))
            return json_response(200, results)
        when = store.now()
        for outcome in outcomes:
            if isinstance(outcome, RecordError):
                results.append(_save_result(None, outcome))
                continue
            obj, record, changes = outcome
            store.apply_update(obj, record, changes, when, "api")
            results.append(_save_result(record["Id"], None))
    return json_response(200, results)


def collection_create(ctx: Context) -> Response:
    """``POST composite/sobjects``: create up to 200 records."""
    records, all_or_none = _records_of(ctx.request.json())
    store = ctx.store
    with store.lock:
        parsed = _typed_records(ctx, records)
        created: list[str | RecordError] = []
        for obj, raw_id, values in parsed:
            if raw_id is not None:
                created.append(RecordError("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"]))
                continue
            try:
                created.append(store.create(obj, values)["Id"])
            except RecordError as error:
                created.append(error)
        if all_or_none and any(isinstance(c, RecordError) for c in created):
            for outcome in created:
                if isinstance(outcome, str):
                    store.discard(outcome)
            return json_response(200, [_save_result(None, c if isinstance(c, RecordError) else ROLLED_BACK)
                                       for c in created])
    return json_response(200, [_save_result(c, None) if isinstance(c, str) else _save_result(None, c)
                               for c in created])


def collection_delete(ctx: Context) -> Response:
    """``DELETE composite/sobjects?ids=...&allOrNone=``."""
    raw_ids = [i for i in (ctx.request.param("ids") or "").split(",") if i]
    if len(raw_ids) > COLLECTION_LIMIT:
        raise ApiError(400, "EXCEEDED_ID_LIMIT",
                       "record limit reached. cannot submit more than 200 records into this call")
    all_or_none = (ctx.request.param("allOrNone") or "false").lower() == "true"
    store = ctx.store
    results = []
    with store.lock:
        checks: list[tuple[str, RecordError | None]] = []
        for raw in raw_ids:
            record = store.get(raw)
            if ids.normalize(raw) is None:
                checks.append((raw, RecordError("MALFORMED_ID", f"malformed id {raw}", [])))
            elif record is None:
                checks.append((raw, RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])))
            elif record.get("IsDeleted"):
                checks.append((raw, RecordError("ENTITY_IS_DELETED", "entity is deleted", [])))
            else:
                checks.append((record["Id"], None))
        failed = any(error for _, error in checks)
        when = store.now()
        for record_id, error in checks:
            if all_or_none and failed:
                error = error or ROLLED_BACK
            elif error is None:
                store.delete(record_id, when)
            results.append({"id": record_id, "success": error is None,
                            "errors": [error.as_save_error()] if error else []})
    return json_response(200, results)


def collection_retrieve(ctx: Context, name: str) -> Response:
    """``GET composite/sobjects/{Object}?ids=&fields=``."""
    obj = resolve_object(ctx, name)
    wanted = [f for f in (ctx.request.param("fields") or "").split(",") if f]
    if not wanted:
        raise ApiError(400, "MALFORMED_QUERY", "Must specify fields to retrieve")
    fields = _fields(ctx, obj, wanted)
    out: list[Any] = []
    for raw in (ctx.request.param("ids") or "").split(","):
        record = ctx.store.get(raw) if raw else None
        if record is None or record["Id"][:3] != obj.key_prefix or record.get("IsDeleted"):
            out.append(None)
        else:
            out.append(_render_record(ctx, obj, record, fields))
    return json_response(200, out)


# ---------------------------------------------------------------- single rows


def _fields(ctx: Context, obj: ObjectDef, names: list[str]) -> list[FieldDef]:
    fields = []
    for name in names:
        definition = obj.field(name.strip())
        if definition is None or not ctx.store.readable(obj, definition):
            raise ApiError(400, "INVALID_FIELD", f"No such column '{name.strip()}' on sobject of type {obj.name}")
        fields.append(definition)
    return fields


def _render_record(ctx: Context, obj: ObjectDef, record: Record, fields: list[FieldDef]) -> dict[str, Any]:
    prefix = "tooling/" if obj.tooling else ""
    out: dict[str, Any] = {"attributes": {"type": obj.name,
                                          "url": f"/services/data/v{ctx.version}/{prefix}sobjects/{obj.name}/"
                                                 f"{record['Id']}"}}
    for definition in fields:
        out[definition.name] = to_json(definition, record.get(definition.name))
    return out


def _row(ctx: Context, obj: ObjectDef, raw_id: str) -> Record:
    record = ctx.store.get(raw_id)
    if record is None or record["Id"][:3] != obj.key_prefix:
        raise not_found()
    if record.get("IsDeleted"):
        raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted")
    return record


def get_row(ctx: Context, name: str, raw_id: str) -> Response:
    """``GET sobjects/{Object}/{id}[?fields=]``."""
    obj = resolve_object(ctx, name)
    record = _row(ctx, obj, raw_id)
    wanted = ctx.request.param("fields")
    fields = _fields(ctx, obj, wanted.split(",")) if wanted else ctx.store.visible_fields(obj)
    return json_response(200, _render_record(ctx, obj, record, fields))


def _record_error(error: RecordError, status: int = 400) -> Response:
    return json_response(status, [{"message": error.message, "errorCode": error.code, "fields": error.fields}])


def update_row(ctx: Context, name: str, raw_id: str) -> Response:
    """``PATCH sobjects/{Object}/{id}``: 204, or 400/404 with the error list."""
    obj = resolve_object(ctx, name)
    body = ctx.request.json()
    if not isinstance(body, Mapping):
        raise ApiError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of SObject from START_ARRAY value [ or "
                                                 "request may be missing a required field")
    store = ctx.store
    with store.lock:
        record = store.get(raw_id)
        if record is None or record["Id"][:3] != obj.key_prefix:
            raise not_found()
        _, values = parse_values(ctx, obj, body, allow_id=False)
        try:
            injected = ctx.faults.before(record["Id"])
            if injected is not None:
                raise injected
            record, changes = store.prepare_update(obj, record["Id"], values, allow_save=allow_save(ctx))
            injected = ctx.faults.after(record["Id"])
            if injected is not None:
                raise injected
        except RecordError as error:
            return _record_error(error, 404 if error.code == "ENTITY_IS_DELETED" else 400)
        store.apply_update(obj, record, changes, store.now(), "api")
    return Response(204)


def create_row(ctx: Context, name: str) -> Response:
    """``POST sobjects/{Object}``: 201 ``{"id", "success", "errors"}``."""
    obj = resolve_object(ctx, name)
    body = ctx.request.json()
    if not isinstance(body, Mapping):
        raise ApiError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of SObject from START_ARRAY value [ or "
                                                 "request may be missing a required field")
    _, values = parse_values(ctx, obj, body, allow_id=False)
    try:
        record = ctx.store.create(obj, values)
    except RecordError as error:
        return _record_error(error)
    return json_response(201, {"id": record["Id"], "success": True, "errors": []})


def delete_row(ctx: Context, name: str, raw_id: str) -> Response:
    """``DELETE sobjects/{Object}/{id}``: 204."""
    obj = resolve_object(ctx, name)
    with ctx.store.lock:
        record = _row(ctx, obj, raw_id)
        ctx.store.delete(record["Id"])
    return Response(204)


def _window(ctx: Context) -> tuple[datetime, datetime]:
    start = parse_datetime(ctx.request.param("start") or "")
    end = parse_datetime(ctx.request.param("end") or "")
    if start is None or end is None or end < start:
        raise ApiError(400, "INVALID_REPLICATION_DATE", "start and end must be valid dateTimes, start before end")
    return start, end


def updated(ctx: Context, name: str) -> Response:
    """``GET sobjects/{Object}/updated/?start=&end=`` (Get Updated)."""
    obj = resolve_object(ctx, name)
    start, end = _window(ctx)
    rows = [r["Id"] for r in ctx.store.scan(obj, False) if start <= r["SystemModstamp"] < end]
    return json_response(200, {"ids": rows, "latestDateCovered": format_datetime(end)})


#: getDeleted answers at most this many Ids ("If more than 600,000 IDs are found, EXCEEDED_ID_LIMIT is returned",
#: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_getdeleted.htm).
GET_DELETED_MAX_IDS = 600_000


def deleted(ctx: Context, name: str) -> Response:
    """``GET sobjects/{Object}/deleted/?start=&end=`` (Get Deleted), from the delete log.

    The log keeps 15 days, less after the Recycle Bin is emptied (:mod:`.consistency`): a ``start`` before
    ``earliestDateAvailable`` answers ``INVALID_REPLICATION_DATE``, as does a ``start`` less than a minute before
    ``end`` ("The specified startDate must chronologically precede the specified endDate value by more than one
    minute", getDeleted() rules, https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_getdeleted.htm).
    The error messages are not documented; the wording here is the emulator's. ``latestDateCovered`` is ``end``
    capped at the present.
    """
    obj = resolve_object(ctx, name)
    start, end = _window(ctx)
    if end - start <= timedelta(minutes=1):
        raise ApiError(400, "INVALID_REPLICATION_DATE", "startDate must precede endDate by more than one minute")
    store = ctx.store
    with store.lock:
        store.settle()
        now = store.now()
        earliest = store.delete_log.earliest_available(obj.key_prefix, now)
        if start < earliest:
            raise ApiError(400, "INVALID_REPLICATION_DATE",
                           f"startDate is before earliestDateAvailable ({format_datetime(earliest)}): deleted "
                           "records before it were physically deleted; replicate the whole object again")
        rows = [{"id": record_id, "deletedDate": format_datetime(when)}
                for record_id, when in store.deleted_at.items()
                if record_id[:3] == obj.key_prefix and start <= when < end]
    if len(rows) > GET_DELETED_MAX_IDS:
        raise ApiError(400, "EXCEEDED_ID_LIMIT", "too many ids: choose start and end dates closer together")
    return json_response(200, {"deletedRecords": rows, "earliestDateAvailable": format_datetime(earliest),
                               "latestDateCovered": format_datetime(min(end, now))})


# ---------------------------------------------------------------- limits & resources


def limits(ctx: Context, used: int, limit: int | None, bulk_query_jobs: int, bulk_batches: int) -> Response:
    """``GET limits`` (a subset of the org limits)."""
    maximum = limit if limit is not None else 5_000_000
    return json_response(200, {
        "ConcurrentAsyncGetReportInstances": {"Max": 200, "Remaining": 200},
        "DailyApiRequests": {"Max": maximum, "Remaining": max(0, maximum - used)},
        "DailyAsyncApexExecutions": {"Max": 250000, "Remaining": 250000},
        "DailyBulkApiBatches": {"Max": 15000, "Remaining": max(0, 15000 - bulk_batches)},
        "DailyBulkV2QueryFileStorageMB": {"Max": 1048576, "Remaining": 1048576},
        "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": max(0, 10000 - bulk_query_jobs)},
        "DataStorageMB": {"Max": 1024, "Remaining": 1000},
        "FileStorageMB": {"Max": 1024, "Remaining": 1024},
        "SingleEmail": {"Max": 5000, "Remaining": 5000},
    })


def resources(ctx: Context) -> Response:
    """``GET /services/data/vXX.X/``: the resource directory."""
    base = f"/services/data/v{ctx.version}"
    names = ["sobjects", "query", "queryAll", "limits", "composite", "tooling", "jobs", "chatter", "search"]
    return json_response(200, {name: f"{base}/{name}" for name in names})


def chatter_me(ctx: Context) -> Response:
    """``GET chatter/users/me`` (who am I)."""
    user = ctx.store.get(ctx.store.acting_user()) or {}
    return json_response(200, {"id": user.get("Id"), "username": user.get("Username"), "email": user.get("Email"),
                               "firstName": user.get("FirstName"), "lastName": user.get("LastName"),
                               "name": user.get("Name"), "userType": "Internal"})
