"""CRM v3 properties and property groups, and v4 association reads (batch, and per record), paged."""

from __future__ import annotations

import bisect
from typing import Any

from connectors.sandbox.hubspot.errors import ApiError, standard_error, validation
from connectors.sandbox.hubspot.objects import Context, batch_envelope, body_of, flag, json_response
from connectors.sandbox.hubspot.schema import PropertyGroup, apply_update, property_from_create
from connectors.sandbox.hubspot.store import ASSOCIATION_TYPE_IDS, association_after, association_token
from connectors.sandbox.server import Response

#: v4 batch read takes at most 1,000 ids ("Batch Read Limit for HubSpot Associations API",
#: developers.hubspot.com/changelog/bug-fix-batch-read-limit-for-hubspot-associations-api).
ASSOCIATION_READ_LIMIT = 1000
_TYPE_IDS = {"contacts": "0-1", "deals": "0-3"}


def list_properties(ctx: Context, object_type: str) -> Response:
    """``GET /crm/v3/properties/{type}``."""
    archived = flag(ctx.request, "archived")
    props = ctx.store.tables[object_type].props.values()
    return json_response(200, {"results": [p.to_json() for p in props if p.archived == archived]})


def get_property(ctx: Context, object_type: str, name: str) -> Response:
    """``GET /crm/v3/properties/{type}/{name}``."""
    prop = ctx.store.tables[object_type].props.get(name)
    if prop is None or prop.archived != flag(ctx.request, "archived"):
        raise ApiError(404, "OBJECT_NOT_FOUND", f"Unable to find property {name} for object type "
                                                f"{_TYPE_IDS[object_type]}", context={"propertyName": [name]})
    return json_response(200, prop.to_json())


def create_property(ctx: Context, object_type: str) -> Response:
    """``POST /crm/v3/properties/{type}`` (409 when the name is taken)."""
    table = ctx.store.tables[object_type]
    prop = property_from_create(body_of(ctx.request), table.groups, ctx.store.now_ms())
    existing = table.props.get(prop.name)
    if existing is not None and not existing.archived:
        # 409 OBJECT_ALREADY_EXISTS, HubSpot's category for a taken property name.
        raise ApiError(409, "OBJECT_ALREADY_EXISTS", f"Property named '{prop.name}' already exists.",
                       context={"name": [prop.name]})
    table.props[prop.name] = prop
    ctx.store.version += 1
    return json_response(201, prop.to_json())


def update_property(ctx: Context, object_type: str, name: str) -> Response:
    """``PATCH /crm/v3/properties/{type}/{name}``."""
    table = ctx.store.tables[object_type]
    prop = table.props.get(name)
    if prop is None or prop.archived:
        raise ApiError(404, "OBJECT_NOT_FOUND", f"Unable to find property {name} for object type "
                                                f"{_TYPE_IDS[object_type]}", context={"propertyName": [name]})
    apply_update(prop, body_of(ctx.request), table.groups, ctx.store.now_ms())
    ctx.store.version += 1
    return json_response(200, prop.to_json())


def archive_property(ctx: Context, object_type: str, name: str) -> Response:
    """``DELETE /crm/v3/properties/{type}/{name}`` (HubSpot's own properties cannot be archived)."""
    prop = ctx.store.tables[object_type].props.get(name)
    if prop is None:
        raise ApiError(404, "OBJECT_NOT_FOUND", f"Unable to find property {name}", context={"propertyName": [name]})
    if prop.hubspot_defined:
        raise validation(f"{name} is a HubSpot defined property and cannot be archived")
    prop.archived = True
    return Response(204)


def list_groups(ctx: Context, object_type: str) -> Response:
    """``GET /crm/v3/properties/{type}/groups``."""
    groups = ctx.store.tables[object_type].groups.values()
    return json_response(200, {"results": [g.to_json() for g in groups if not g.archived]})


def get_group(ctx: Context, object_type: str, name: str) -> Response:
    """``GET /crm/v3/properties/{type}/groups/{name}``."""
    group = ctx.store.tables[object_type].groups.get(name)
    if group is None or group.archived:
        raise ApiError(404, "OBJECT_NOT_FOUND", f"Unable to find property group {name}", context={"name": [name]})
    return json_response(200, group.to_json())


def create_group(ctx: Context, object_type: str) -> Response:
    """``POST /crm/v3/properties/{type}/groups`` (409 when the name is taken)."""
    body = body_of(ctx.request)
    name, label = body.get("name"), body.get("label")
    if not isinstance(name, str) or not isinstance(label, str) or not name:
        raise validation("Some required fields were not set: [name, label]")
    groups = ctx.store.tables[object_type].groups
    if name in groups and not groups[name].archived:
        raise ApiError(409, "OBJECT_ALREADY_EXISTS", f"Property group named '{name}' already exists.",
                       context={"name": [name]})
    order = body.get("displayOrder", -1)
    group = PropertyGroup(name, label, order if isinstance(order, int) else -1)
    groups[name] = group
    return json_response(201, group.to_json())


#: v4 ``GET /crm/v4/objects/{type}/{id}/associations/{toType}``: "Limit 500 per call" (its default and maximum in
#: the associations-v4 OpenAPI spec).
ASSOCIATION_LIST_LIMIT = 500


def _links(ctx: Context, from_type: str, to_type: str, record_id: int) -> list[int]:
    if (from_type, to_type) not in ASSOCIATION_TYPE_IDS:
        return []
    links = ctx.store.deal_contacts if from_type == "deals" else ctx.store.contact_deals
    return links.get(record_id, [])


def _page_of_links(targets: list[int], after: str | None, limit: int, to_type: str) -> tuple[list[int], str | None]:
    """One page of associated ids (kept in id order) after a paging token, and the token for the next page."""
    try:
        last = association_after(after)
    except (ValueError, IndexError):
        raise validation(f"Invalid after value: {after}", context={"after": [str(after)]}) from None
    start = 0 if last is None else bisect.bisect_right(targets, last)
    page = targets[start:start + limit]
    more = start + limit < len(targets)
    return page, association_token(to_type, page[-1]) if more and page else None


def _to(to_type: str, type_id: int, targets: list[int]) -> list[dict[str, Any]]:
    return [{"toObjectId": str(target), "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": type_id}]}
            for target in targets]


def read_associations(ctx: Context, from_type: str, to_type: str) -> Response:
    """``POST /crm/v4/associations/{from}/{to}/batch/read``, paged per input.

    "The 'after' field in a returned paging object can be added alongside the 'id' to retrieve the next page of
    associations from that objectId ... The 'paging' field will only be present if there are more pages"
    (developers.hubspot.com/docs/api-reference/legacy/crm/associations/associate-records/batch/get-associations).
    HubSpot does not publish how many associations one input's page holds; v3 documents 100 (the changelog in
    :data:`~connectors.sandbox.hubspot.store.INLINE_ASSOCIATIONS`) and readers that ignored the paging lost
    associations (github.com/estuary/connectors/pull/1974, github.com/dlt-hub/verified-sources/pull/594), so the
    emulator pages at the store's ``association_page_size`` (default 100, the harder of the figures known).
    Ids without associations (or unknown ids) come back as 207 errors naming ``fromObjectId``, the shape HubSpot
    uses for them.
    """
    body = body_of(ctx.request)
    inputs = body.get("inputs")
    if not isinstance(inputs, list):
        raise validation("inputs must be an array")
    if len(inputs) > ASSOCIATION_READ_LIMIT:
        raise validation(f"Batch input cannot contain more than {ASSOCIATION_READ_LIMIT} inputs. Received "
                         f"{len(inputs)} inputs.")
    started = batch_envelope([], [], "")[1]["completedAt"]
    type_id = ASSOCIATION_TYPE_IDS.get((from_type, to_type))
    results: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(inputs):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str | int):
            raise validation(f"inputs[{index}].id must be a string")
        object_id = str(item["id"])
        after = item.get("after")
        record = ctx.store.resolve(from_type, object_id)
        targets = _links(ctx, from_type, to_type, record.id) if record is not None else []
        if not targets:
            errors.append(standard_error(
                "OBJECT_NOT_FOUND", f"No {to_type} is associated with {from_type[:-1]} {object_id}.",
                {"fromObjectId": [object_id], "fromObjectType": [_TYPE_IDS[from_type]],
                 "toObjectType": [_TYPE_IDS[to_type]]}))
            continue
        assert record is not None and type_id is not None
        page, next_after = _page_of_links(targets, str(after) if after is not None else None,
                                          ctx.store.association_page_size, to_type)
        result: dict[str, Any] = {"from": {"id": str(record.id)}, "to": _to(to_type, type_id, page)}
        if next_after is not None:
            result["paging"] = {"next": {"after": next_after, "link": (
                f"https://api.hubapi.com/crm/v4/objects/{from_type}/{record.id}/associations/{to_type}"
                f"?after={next_after}")}}
        results.append(result)
    status, out = batch_envelope(results, errors, started)
    return json_response(status, out)


def list_record_associations(ctx: Context, from_type: str, object_id: str, to_type: str) -> Response:
    """``GET /crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}?after=&limit=`` (the spec's
    ``CollectionResponseMultiAssociatedObjectWithLabelForwardPaging``; at most :data:`ASSOCIATION_LIST_LIMIT`
    per call). A record without associations, or an id HubSpot does not know, has an empty page; a
    merged-away id answers the merged record's associations."""
    raw_limit = ctx.request.param("limit") or str(ASSOCIATION_LIST_LIMIT)
    try:
        limit = int(raw_limit)
    except ValueError:
        raise validation(f"limit must be an integer; got {raw_limit}", context={"limit": [raw_limit]}) from None
    if not 1 <= limit <= ASSOCIATION_LIST_LIMIT:
        raise validation(f"limit must be between 1 and {ASSOCIATION_LIST_LIMIT}; got {limit}",
                         context={"limit": [str(limit)]})
    record = ctx.store.resolve(from_type, object_id)
    type_id = ASSOCIATION_TYPE_IDS.get((from_type, to_type))
    targets = _links(ctx, from_type, to_type, record.id) if record is not None else []
    page, next_after = _page_of_links(targets, ctx.request.param("after"), limit, to_type)
    out: dict[str, Any] = {"results": _to(to_type, type_id, page) if type_id is not None else []}
    if next_after is not None:
        out["paging"] = {"next": {"after": next_after, "link": (
            f"https://api.hubapi.com/crm/v4/objects/{from_type}/{object_id}/associations/{to_type}"
            f"?after={next_after}&limit={limit}")}}
    return json_response(200, out)
