"""CRM v3 object endpoints: list, read, create, update, archive, batch read/create/update/upsert/archive, merge.

Batch semantics as HubSpot reports them: at most 100 inputs per batch (HubSpot's CRM object guides, e.g.
developers.hubspot.com/docs/api/crm/contacts); the inputs are validated first, and one invalid value rejects
the whole batch with a 400 ``VALIDATION_ERROR`` (nothing written) naming the property and its value, but not
the input (see :func:`invalid_values`); ids that do not exist (or no longer do) come back as a 207
multi-status, the others written, with one ``OBJECT_NOT_FOUND`` item listing the missing ids in ``context.ids``
and ``numErrors`` (as in github.com/HubSpot/hubspot-api-php/issues/619 for batch read).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.sandbox.hubspot.errors import ApiError, invalid_json, not_found_object, standard_error, validation
from connectors.sandbox.hubspot.schema import DEFAULT_RETURNED, MODIFIED
from connectors.sandbox.hubspot.search import SearchIndex
from connectors.sandbox.hubspot.store import Record, Store, Table
from connectors.sandbox.hubspot.values import Stored, ValueProblem, normalise
from connectors.sandbox.server import Request, Response

BATCH_LIMIT = 100
LIST_LIMIT = 100
#: HubSpot's object type ids, used in messages ("non-unique 0-1 property").
TYPE_IDS = {"contacts": "0-1", "deals": "0-3"}
SINGULAR = {"contacts": "CONTACT", "deals": "DEAL"}

RecordFault = Callable[[str, Record | None], dict[str, Any] | None]
"""Called per input of a write before it is applied: may vanish/merge the record (then returns None) or return
a per-input error item (a partial failure)."""


@dataclass
class Context:
    """What an object handler needs."""

    request: Request
    store: Store
    search: SearchIndex
    portal_id: int
    record_fault: RecordFault


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response as HubSpot sends it."""
    return Response(status, json.dumps(payload, separators=(",", ":")).encode(),
                    {"Content-Type": "application/json;charset=utf-8", **(headers or {})})


def body_of(request: Request) -> dict[str, Any]:
    """The request's JSON object body, or HubSpot's 400 for bad JSON."""
    try:
        body = request.json()
    except ValueError as exc:
        raise invalid_json(str(exc)) from None
    if not isinstance(body, dict):
        raise invalid_json("expected a JSON object")
    return body


def multi(request: Request, name: str) -> list[str] | None:
    """A list query parameter, given repeated (``properties=a&properties=b``) or comma-separated."""
    values = request.query.get(name)
    if not values:
        return None
    return [part for value in values for part in value.split(",") if part]


def flag(request: Request, name: str) -> bool:
    """A boolean query parameter."""
    return (request.param(name) or "false").lower() == "true"


def _now_iso() -> str:
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def batch_envelope(results: list[dict[str, Any]], errors: list[dict[str, Any]], started: str) -> tuple[int, dict[
        str, Any]]:
    """200 with ``results``, or 207 adding ``errors`` and ``numErrors`` when some inputs failed."""
    out: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": _now_iso()}
    if errors:
        out["errors"] = errors
        out["numErrors"] = len(errors)
        return 207, out
    return 200, out


# --------------------------------------------------------------------------------------------- validation

def _problem(portal_id: int, name: str, value: object, code: str, message: str) -> tuple[dict[str, Any],
                                                                                          dict[str, Any]]:
    # Both halves as a live batch/update 400 carries them (github.com/Atlas-Authority/marketing-automation/
    # issues/206 quotes one): the legacy item (isValid, message, error, name, localizedErrorMessage, propertyValue,
    # portalId) in the message, and {message, code, context: {propertyName}} in errors. Neither names the input
    # (no index, no id, no "in"), so a client cannot tell which record of the batch was bad.
    legacy = {"isValid": False, "message": message, "error": code, "name": name, "localizedErrorMessage": message,
              "propertyValue": value if isinstance(value, str) else json.dumps(value), "portalId": portal_id}
    detail: dict[str, Any] = {"message": message, "code": code, "context": {"propertyName": [name]}}
    return legacy, detail


def validate_properties(table: Table, raw: object, portal_id: int, *, where: str = "") -> tuple[
        dict[str, Stored | None], list[dict[str, Any]], list[dict[str, Any]]]:
    """Check one input's ``properties`` like HubSpot: (values to store, legacy problems, error details)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise invalid_json(f"{where}properties must be an object")
    values: dict[str, Stored | None] = {}
    legacy: list[dict[str, Any]] = []
    details: list[dict[str, Any]] = []
    for name, value in raw.items():
        prop = table.props.get(name)
        problem: tuple[str, str] | None = None
        if prop is None or prop.archived:
            problem = ("PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
        elif prop.read_only_value or prop.calculated:
            problem = ("READ_ONLY_VALUE", f"{name} is a read only property; its value cannot be set.")
        else:
            try:
                values[name] = normalise(prop, value)
            except ValueProblem as exc:
                problem = (exc.code, exc.message)
        if problem is not None:
            pair = _problem(portal_id, str(name), value, *problem)
            legacy.append(pair[0])
            details.append(pair[1])
    return values, legacy, details


def invalid_values(legacy: list[dict[str, Any]], details: list[dict[str, Any]]) -> ApiError:
    """The whole-request 400 HubSpot sends when property values are invalid: one legacy item and one error
    detail per bad value, in input order, without saying which input held it (see :func:`_problem`)."""
    return validation("Property values were not valid: " + json.dumps(legacy, separators=(",", ":")),
                      errors=details)


def _inputs(body: Mapping[str, Any]) -> list[Any]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list):
        raise invalid_json("inputs must be an array")
    if len(inputs) > BATCH_LIMIT:
        # Batch endpoints take at most 100 inputs (developers.hubspot.com/docs/api/crm/contacts, "Batch").
        raise validation(f"Batch input cannot contain more than {BATCH_LIMIT} inputs. Received {len(inputs)} "
                         "inputs.", context={"inputs": [str(len(inputs))]})
    return inputs


def _input_id(item: object, index: int) -> str:
    if not isinstance(item, Mapping) or not isinstance(item.get("id"), str | int) or isinstance(item.get("id"),
                                                                                                 bool):
        raise invalid_json(f"inputs[{index}].id must be a string")
    return str(item["id"])


def _names(table: Table, request_names: Sequence[str] | None) -> list[str]:
    return list(request_names) if request_names else list(DEFAULT_RETURNED[table.object_type])


def _written_names(table: Table, values: Mapping[str, Any]) -> list[str]:
    return [*values, "hs_object_id", "createdate", MODIFIED[table.object_type]]


def _missing(object_type: str, ids: list[str]) -> dict[str, Any]:
    return standard_error("OBJECT_NOT_FOUND", f"Could not get some {SINGULAR[object_type]} objects, they may be "
                                              "deleted or not exist. Check that ids are valid.", {"ids": ids})


def _duplicates(ids: list[str]) -> None:
    seen: set[str] = set()
    dupes: set[str] = set()
    for object_id in ids:
        (dupes if object_id in seen else seen).add(object_id)
    if dupes:
        raise validation(f"Duplicate IDs found in batch input: {sorted(dupes)}. IDs must be unique",
                         context={"ids": sorted(dupes)})


# --------------------------------------------------------------------------------------------- handlers

def list_objects(ctx: Context, object_type: str) -> Response:
    """``GET /crm/v3/objects/{type}``: id-ordered pages of at most 100, ``paging.next.after`` = next id."""
    request, store = ctx.request, ctx.store
    table = store.tables[object_type]
    try:
        limit = int(request.param("limit") or "10")
        after = int(request.param("after") or "0")
    except ValueError:
        raise validation("limit and after must be integers") from None
    if limit > LIST_LIMIT or limit < 1:
        raise validation(f"limit must be between 1 and {LIST_LIMIT}; got {limit}", context={"limit": [str(limit)]})
    names = _names(table, multi(request, "properties"))
    associations = multi(request, "associations") or []
    results: list[dict[str, Any]] = []
    next_after: int | None = None
    for record in table.iter_from(after, archived=flag(request, "archived")):
        if len(results) == limit:
            next_after = record.id
            break
        results.append(store.to_json(table, record, names, associations))
    out: dict[str, Any] = {"results": results}
    if next_after is not None:
        out["paging"] = {"next": {"after": str(next_after),
                                  "link": f"https://api.hubapi.com/crm/v3/objects/{object_type}?after={next_after}"}}
    return json_response(200, out)


def get_object(ctx: Context, object_type: str, object_id: str) -> Response:
    """``GET /crm/v3/objects/{type}/{id}`` (a merged-away id answers the surviving record)."""
    request, store = ctx.request, ctx.store
    table = store.tables[object_type]
    record = store.resolve(object_type, object_id, archived=flag(request, "archived"),
                           id_property=request.param("idProperty"))
    if record is None:
        raise not_found_object(object_id)
    return json_response(200, store.to_json(table, record, _names(table, multi(request, "properties")),
                                            multi(request, "associations") or []))


def _associate_inputs(ctx: Context, object_type: str, record: Record, raw: object) -> None:
    for link in raw if isinstance(raw, list) else []:
        target = link.get("to", {}).get("id") if isinstance(link, Mapping) else None
        other = "contacts" if object_type == "deals" else "deals"
        if target is None or not str(target).isdigit() or int(target) not in ctx.store.tables[other].records:
            continue
        deal, contact = (record.id, int(target)) if object_type == "deals" else (int(target), record.id)
        ctx.store.associate(deal, contact)


def _check_unique_email(ctx: Context, object_type: str, values: Mapping[str, Any],
                        pending: dict[str, int] | None = None) -> None:
    if object_type != "contacts" or not isinstance(values.get("email"), str):
        return
    email = str(values["email"]).casefold()
    existing = ctx.store.tables["contacts"].unique_index("email").get(email)
    if existing is None and pending is not None:
        existing = pending.get(email)
    if existing is not None:
        # As HubSpot answers it (github.com/HubSpot/hubspot-api-python/issues/51).
        raise ApiError(409, "CONFLICT", f"Contact already exists. Existing ID: {existing}")


def create_object(ctx: Context, object_type: str) -> Response:
    """``POST /crm/v3/objects/{type}``."""
    body = body_of(ctx.request)
    table = ctx.store.tables[object_type]
    values, legacy, details = validate_properties(table, body.get("properties"), ctx.portal_id)
    if legacy:
        raise invalid_values(legacy, details)
    _check_unique_email(ctx, object_type, values)
    record = ctx.store.create(object_type, values)
    _associate_inputs(ctx, object_type, record, body.get("associations"))
    return json_response(201, ctx.store.to_json(table, record, _written_names(table, values)))


def update_object(ctx: Context, object_type: str, object_id: str) -> Response:
    """``PATCH /crm/v3/objects/{type}/{id}``."""
    body = body_of(ctx.request)
    table = ctx.store.tables[object_type]
    values, legacy, details = validate_properties(table, body.get("properties"), ctx.portal_id)
    if legacy:
        raise invalid_values(legacy, details)
    id_property = ctx.request.param("idProperty")
    failure = ctx.record_fault(object_type, ctx.store.resolve(object_type, object_id, id_property=id_property))
    if failure is not None:
        raise ApiError(500, str(failure["category"]), str(failure["message"]), context=failure["context"])
    record = ctx.store.resolve(object_type, object_id, id_property=id_property)
    if record is None:
        raise not_found_object(object_id)
    ctx.store.update(object_type, record, values)
    return json_response(200, ctx.store.to_json(table, record, _written_names(table, values)))


def archive_object(ctx: Context, object_type: str, object_id: str) -> Response:
    """``DELETE /crm/v3/objects/{type}/{id}``: 204 whether or not it existed."""
    record = ctx.store.resolve(object_type, object_id)
    if record is not None:
        ctx.store.archive(object_type, record)
    return Response(204)


def batch_read(ctx: Context, object_type: str) -> Response:
    """``POST /crm/v3/objects/{type}/batch/read``."""
    started = _now_iso()
    body = body_of(ctx.request)
    inputs = _inputs(body)
    table = ctx.store.tables[object_type]
    names = _names(table, body.get("properties") if isinstance(body.get("properties"), list) else None)
    id_property = body.get("idProperty") if isinstance(body.get("idProperty"), str) else None
    archived = flag(ctx.request, "archived")
    results, missing = [], []
    for index, item in enumerate(inputs):
        object_id = _input_id(item, index)
        record = ctx.store.resolve(object_type, object_id, archived=archived, id_property=id_property)
        if record is None:
            missing.append(object_id)
        else:
            results.append(ctx.store.to_json(table, record, names))
    status, out = batch_envelope(results, [_missing(object_type, missing)] if missing else [], started)
    return json_response(status, out)


def batch_update(ctx: Context, object_type: str) -> Response:
    """``POST /crm/v3/objects/{type}/batch/update``: all-or-nothing validation, then per-input results."""
    started = _now_iso()
    body = body_of(ctx.request)
    inputs = _inputs(body)
    table = ctx.store.tables[object_type]
    staged: list[tuple[str, dict[str, Stored | None]]] = []
    legacy: list[dict[str, Any]] = []
    details: list[dict[str, Any]] = []
    for index, item in enumerate(inputs):
        object_id = _input_id(item, index)
        values, bad, why = validate_properties(table, item.get("properties"), ctx.portal_id,
                                               where=f"inputs[{index}].")
        legacy.extend(bad)
        details.extend(why)
        staged.append((object_id, values))
    if legacy:
        raise invalid_values(legacy, details)
    _duplicates([object_id for object_id, _ in staged])
    id_property = body.get("idProperty") if isinstance(body.get("idProperty"), str) else None
    results: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    missing: list[str] = []
    for object_id, values in staged:
        record = ctx.store.resolve(object_type, object_id, id_property=id_property)
        failure = ctx.record_fault(object_type, record)
        if failure is not None:
            errors.append(failure)
            continue
        # A fault may have deleted or merged it meanwhile (a person acting between our read and our write).
        record = ctx.store.resolve(object_type, object_id, id_property=id_property)
        if record is None:
            missing.append(object_id)
            continue
        ctx.store.update(object_type, record, values)
        results.append(ctx.store.to_json(table, record, _written_names(table, values)))
    if missing:
        errors.insert(0, _missing(object_type, missing))
    status, out = batch_envelope(results, errors, started)
    return json_response(status, out)


def batch_create(ctx: Context, object_type: str) -> Response:
    """``POST /crm/v3/objects/{type}/batch/create`` (201)."""
    started = _now_iso()
    body = body_of(ctx.request)
    inputs = _inputs(body)
    table = ctx.store.tables[object_type]
    staged: list[tuple[dict[str, Stored | None], object]] = []
    legacy: list[dict[str, Any]] = []
    details: list[dict[str, Any]] = []
    pending: dict[str, int] = {}
    for index, item in enumerate(inputs):
        if not isinstance(item, Mapping):
            raise invalid_json(f"inputs[{index}] must be an object")
        values, bad, why = validate_properties(table, item.get("properties"), ctx.portal_id,
                                               where=f"inputs[{index}].")
        legacy.extend(bad)
        details.extend(why)
        staged.append((values, item.get("associations")))
    if legacy:
        raise invalid_values(legacy, details)
    for index, (values, _) in enumerate(staged):
        _check_unique_email(ctx, object_type, values, pending)
        if object_type == "contacts" and isinstance(values.get("email"), str):
            pending[str(values["email"]).casefold()] = -index
    results, errors = [], []
    for values, links in staged:
        failure = ctx.record_fault(object_type, None)
        if failure is not None:
            errors.append(failure)
            continue
        record = ctx.store.create(object_type, values)
        _associate_inputs(ctx, object_type, record, links)
        results.append(ctx.store.to_json(table, record, _written_names(table, values)))
    status, out = batch_envelope(results, errors, started)
    return json_response(201 if status == 200 else status, out)


def batch_upsert(ctx: Context, object_type: str) -> Response:
    """``POST /crm/v3/objects/{type}/batch/upsert``: by a unique ``idProperty`` (a contact's email)."""
    started = _now_iso()
    body = body_of(ctx.request)
    inputs = _inputs(body)
    table = ctx.store.tables[object_type]
    staged = []
    legacy: list[dict[str, Any]] = []
    details: list[dict[str, Any]] = []
    for index, item in enumerate(inputs):
        object_id = _input_id(item, index)
        id_property = item.get("idProperty")
        prop = table.props.get(str(id_property)) if isinstance(id_property, str) else None
        unique = prop is not None and (prop.has_unique_value or (object_type == "contacts" and prop.name == "email"))
        if not unique:
            # HubSpot's own message (quoted in github.com/segmentio/action-destinations/pull/3957).
            raise validation(f"Unable to perform update/upsert by non-unique {TYPE_IDS[object_type]} property "
                             f"{id_property} in portal ID {ctx.portal_id}")
        values, bad, why = validate_properties(table, item.get("properties"), ctx.portal_id,
                                               where=f"inputs[{index}].")
        legacy.extend(bad)
        details.extend(why)
        staged.append((object_id, str(id_property), values))
    if legacy:
        raise invalid_values(legacy, details)
    results, errors = [], []
    for object_id, id_property, values in staged:
        record = ctx.store.resolve(object_type, object_id, id_property=id_property)
        failure = ctx.record_fault(object_type, record)
        if failure is not None:
            errors.append(failure)
            continue
        record = ctx.store.resolve(object_type, object_id, id_property=id_property)
        if record is None:
            record = ctx.store.create(object_type, {id_property: object_id, **values})
            created = True
        else:
            ctx.store.update(object_type, record, values)
            created = False
        out = ctx.store.to_json(table, record, [id_property, *_written_names(table, values)])
        out["new"] = created
        results.append(out)
    status, payload = batch_envelope(results, errors, started)
    return json_response(status, payload)


def batch_archive(ctx: Context, object_type: str) -> Response:
    """``POST /crm/v3/objects/{type}/batch/archive``: 204, unknown ids ignored."""
    inputs = _inputs(body_of(ctx.request))
    for index, item in enumerate(inputs):
        record = ctx.store.resolve(object_type, _input_id(item, index))
        if record is not None:
            ctx.store.archive(object_type, record)
    return Response(204)


def merge_objects(ctx: Context, object_type: str) -> Response:
    """``POST /crm/v3/objects/{type}/merge``: ``objectIdToMerge`` and ``primaryObjectId`` into a new record."""
    body = body_of(ctx.request)
    primary_id, loser_id = str(body.get("primaryObjectId", "")), str(body.get("objectIdToMerge", ""))
    primary = ctx.store.resolve(object_type, primary_id)
    loser = ctx.store.resolve(object_type, loser_id)
    if primary is None or loser is None:
        raise not_found_object(primary_id if primary is None else loser_id)
    if primary is loser:
        raise validation("Cannot merge an object with itself")
    table = ctx.store.tables[object_type]
    # The answer is the new merged record, with a new id (see Store.merge).
    merged = ctx.store.merge(object_type, primary, loser)
    return json_response(200, ctx.store.to_json(table, merged, DEFAULT_RETURNED[object_type]))


def search(ctx: Context, object_type: str) -> Response:
    """``POST /crm/v3/objects/{type}/search``."""
    body = body_of(ctx.request)
    return json_response(200, ctx.search.page(ctx.store.tables[object_type], body))
