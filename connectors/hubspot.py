"""HubSpot connector on the official ``hubspot-api-client`` (CRM v3 objects, search, batch, properties;
v4 associations).

Every request goes through the shared :class:`connectors.transport.Transport` (pacing, retries). Responses
are read raw (``_preload_content=False``) and parsed as JSON once: the client still builds URLs, auth and
bodies, but we skip its per-object model deserialisation, which dominates the cost per record.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import urllib3
from hubspot import HubSpot
from hubspot.crm.associations.v4.exceptions import ApiException as AssociationsApiException
from hubspot.crm.contacts.exceptions import ApiException as ContactsApiException
from hubspot.crm.deals.exceptions import ApiException as DealsApiException
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException
from hubspot.oauth.exceptions import ApiException as OAuthApiException

from connectors.base import CheckResult, FieldStatus, FieldUpdate, Page, WriteResult, parse_time
from connectors.transport import Budget, Limits, RateLimiter, Transient, Transport, next_utc_midnight
from core.config import HubSpotConfig, secret
from core.errors import AuthError, ConnectorError, DailyLimitReached, DataError
from core.models import Contact, Deal, DealStatus, FieldSpec, FieldType

#: Each generated package of the client raises its own ApiException class.
API_EXCEPTIONS = (ContactsApiException, DealsApiException, PropertiesApiException, AssociationsApiException,
                  OAuthApiException)

#: HubSpot's search endpoints refuse to page past 10,000 results
#: (developers.hubspot.com/docs/api/crm/search#limitations); we re-window on the last timestamp instead.
SEARCH_RESULT_CAP = 10_000
#: The v4 associations batch read takes up to 1,000 ids per call
#: (developers.hubspot.com/docs/api/crm/associations/v4, "Retrieve associations in bulk").
ASSOCIATION_BATCH = 1000

_MODIFIED = {"contacts": "lastmodifieddate", "deals": "hs_lastmodifieddate"}
_PROPERTY_TYPES = {
    FieldType.NUMBER: ("number", "number"),
    FieldType.STRING: ("string", "text"),
    FieldType.DATETIME: ("datetime", "date"),
    FieldType.ENUM: ("enumeration", "select"),
    FieldType.BOOL: ("enumeration", "booleancheckbox"),
}
class HubSpotApiError(ConnectorError):
    """A non-retryable HubSpot error (4xx other than 429) with its parsed body."""

    def __init__(self, operation: str, status: int, body: Mapping[str, Any]) -> None:
        message = str(body.get("message") or body.get("category") or f"HTTP {status}")
        super().__init__(f"HubSpot {operation}: {status} {message}")
        self.status = status
        self.body = body


def _json(data: bytes | str | None) -> Any:
    if not data:
        return {}
    try:
        return json.loads(data)
    except ValueError:
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        return {"message": text[:200]}


def budget_from_headers(headers: Mapping[str, str]) -> Budget:
    """Read HubSpot's ``X-HubSpot-RateLimit-*`` headers
    (developers.hubspot.com/docs/api/usage-details#rate-limits)."""
    lowered = {k.lower(): v for k, v in headers.items()}

    def number(name: str) -> int | None:
        value = lowered.get(name)
        return int(value) if value is not None and value.strip().isdigit() else None

    interval = number("x-hubspot-ratelimit-interval-milliseconds")
    return Budget(
        window_remaining=number("x-hubspot-ratelimit-remaining"),
        window_max=number("x-hubspot-ratelimit-max"),
        window_seconds=interval / 1000 if interval else None,
        daily_remaining=number("x-hubspot-ratelimit-daily-remaining"),
        daily_max=number("x-hubspot-ratelimit-daily"),
    )


def format_value(spec: FieldSpec, value: Any) -> str:
    """Format one of our values as HubSpot stores it: numbers plain (no exponent), datetimes as epoch
    milliseconds UTC, booleans ``true``/``false``, empty string to clear."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if spec.type is FieldType.NUMBER:
        text = f"{float(value):.4f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    if spec.type is FieldType.DATETIME:
        moment = value if isinstance(value, datetime) else datetime.fromtimestamp(float(value), tz=UTC)
        return str(int(moment.timestamp() * 1000))
    if spec.type is FieldType.BOOL:
        return "true" if value else "false"
    return str(value)


class HubSpotConnector:
    """Pulls contacts and deals from HubSpot and writes our ``clm_*`` properties back."""

    name = "hubspot"

    def __init__(
        self,
        config: HubSpotConfig,
        *,
        contact_properties: Sequence[str] = (),
        deal_properties: Sequence[str] = (),
        owned_fields: Sequence[FieldSpec] = (),
        enum_options: Mapping[str, Sequence[str]] | None = None,
        token: str | None = None,
        transport: Transport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.config = config
        self.batch_size = config.batch_size
        self.timeout = timeout
        self._token = token or secret(config.token_env, "hubspot.token_env")
        self._specs = {spec.name: spec for spec in owned_fields}
        self._enum_options = {k: list(v) for k, v in (enum_options or {}).items()}
        owned = [self.crm_field_name(name) for name in self._specs]
        self._contact_props = sorted({"email", "createdate", "lastmodifieddate", "hs_merged_object_ids",
                                      *contact_properties, *owned,
                                      *(["lifecyclestage"] if config.write_native_lifecyclestage else [])})
        self._deal_props = sorted({"dealname", "amount", "dealstage", "pipeline", "closedate", "createdate",
                                   "hs_lastmodifieddate", "hs_is_closed_won", "hs_is_closed",
                                   "deal_currency_code", *deal_properties})
        self.transport = transport or Transport(
            RateLimiter(Limits(config.requests_per_10s, 10.0, config.daily_limit)),
            concurrency=config.max_concurrency,
        )
        self._search_limiter = RateLimiter(Limits(config.search_per_second, 1.0))
        self._apis: dict[str, Any] = {}
        self._refreshed = False

    # --- plumbing --------------------------------------------------------------------------------------

    def _api(self, path: str) -> Any:
        """A cached API object (the client builds a new connection pool on every attribute access)."""
        if path not in self._apis:
            # Retries are ours (the transport), so urllib3's own silent retries are switched off.
            client = HubSpot(access_token=self._token, host=self.config.base_url.rstrip("/"),
                             retry=urllib3.Retry(total=0, redirect=2))
            target: Any = client
            for part in path.split("."):
                target = getattr(target, part)
            self._apis[path] = target
        return self._apis[path]

    def _call(self, operation: str, api: str, method: str, *args: Any, search: bool = False,
              **kwargs: Any) -> Any:
        """Call one client method through the transport and return the parsed JSON body."""

        def attempt() -> Any:
            if search:
                self._search_limiter.acquire()
            func: Callable[..., Any] = getattr(self._api(api), method)
            try:
                response = func(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
            except API_EXCEPTIONS as exc:
                return self._failed(operation, exc)
            except (urllib3.exceptions.TimeoutError, urllib3.exceptions.ProtocolError,
                    urllib3.exceptions.NewConnectionError, urllib3.exceptions.MaxRetryError,
                    ConnectionError) as exc:
                raise Transient(f"connection: {type(exc).__name__}") from exc
            self.transport.limiter.observe(budget_from_headers(response.headers))
            return _json(response.data)

        return self.transport.call_named("HubSpot", operation, attempt)

    def _failed(self, operation: str, exc: Any) -> Any:
        status = int(exc.status or 0)
        # The client hands error bodies over as text (preloaded) or bytes (raw); both are HubSpot's JSON.
        body = _json(exc.body if isinstance(exc.body, str | bytes) else bytes(exc.body or b""))
        if not isinstance(body, dict):
            body = {"message": str(body)}
        headers = {k.lower(): v for k, v in dict(exc.headers or {}).items()}
        if status == 429:
            policy = str(body.get("policyName", ""))
            if policy == "DAILY":
                raise DailyLimitReached(
                    "HubSpot's daily API limit is reached",
                    resets_at=next_utc_midnight(datetime.now(UTC)),
                    hint="the run stopped cleanly; HubSpot resets the daily limit at midnight in the account's "
                         "time zone; run again then to resume",
                )
            retry_after = _float(headers.get("retry-after"))
            if retry_after is None:
                # TEN_SECONDLY_ROLLING frees up within the 10 s window; the search policy within a second.
                retry_after = 1.0 if "SECOND" in policy and "TEN" not in policy else 10.0
            raise Transient(f"429 {policy or 'rate limited'}", retry_after=retry_after, throttled=True)
        if status == 0 or status >= 500:
            raise Transient(f"{status or 'ssl'} server error")
        if status == 401 and not self._refreshed and self._refresh_token():
            raise Transient("401 token refreshed", retry_after=0.0)
        if status == 401:
            raise AuthError(
                f"HubSpot refused the token ({body.get('category', 'INVALID_AUTHENTICATION')})",
                hint=f"check the private app token in ${self.config.token_env}; it may have been rotated",
            )
        if status == 403:
            raise AuthError(f"HubSpot {operation}: missing permission ({body.get('message', '')})",
                            hint="give the private app the crm.objects.contacts/deals read+write and "
                                 "crm.schemas.contacts read+write scopes")
        raise HubSpotApiError(operation, status, body)

    def _refresh_token(self) -> bool:
        """Exchange the OAuth refresh token for a new access token once per run, if configured."""
        cfg = self.config
        if not (cfg.refresh_token_env and cfg.client_id_env and cfg.client_secret_env):
            return False
        self._refreshed = True
        client = HubSpot(host=cfg.base_url.rstrip("/"), retry=urllib3.Retry(total=0))
        try:
            response = client.oauth.tokens_api.create(
                grant_type="refresh_token",
                refresh_token=secret(cfg.refresh_token_env, "hubspot.refresh_token_env"),
                client_id=secret(cfg.client_id_env, "hubspot.client_id_env"),
                client_secret=secret(cfg.client_secret_env, "hubspot.client_secret_env"),
                _preload_content=False,
                _request_timeout=self.timeout,
            )
        except OAuthApiException as exc:
            raise AuthError("HubSpot refused the OAuth refresh token",
                            hint="re-authorise the app to get a new refresh token") from exc
        self._token = str(_json(response.data)["access_token"])
        self._apis.clear()
        return True

    # --- pull ------------------------------------------------------------------------------------------

    def crm_field_name(self, logical: str) -> str:
        """Our logical field name as a HubSpot property name (``stage`` -> ``clm_stage``)."""
        return f"{self.config.property_prefix}{logical}"

    def pull(self, cursor: Mapping[str, str] | None) -> Iterator[Page]:
        """Full pull by list paging when ``cursor`` is None; otherwise search on the modified timestamp.

        The cursor holds, per object type, the highest modified time (epoch ms) seen; the caller stores a
        page's cursor only after the page is in the mirror, so an interrupted pull repeats, never skips.
        """
        for object_type in ("contacts", "deals"):
            since = (cursor or {}).get(object_type)
            records = self._list_all(object_type) if since is None else self._search_since(object_type, since)
            for batch, high_water in records:
                page = Page()
                if object_type == "contacts":
                    for raw in batch:
                        self._add_contact(raw, page)
                else:
                    self._add_deals(batch, page)
                if high_water is not None:
                    page.cursor = {object_type: high_water}
                yield page
            archived = self._archived_ids(object_type, None if since is None else _parse_cursor(since)[0])
            if archived:
                page = Page()
                if object_type == "contacts":
                    page.deleted_contact_ids = archived
                else:
                    page.deleted_deal_ids = archived
                yield page

    def _list_all(self, object_type: str) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
        props = self._contact_props if object_type == "contacts" else self._deal_props
        after: str | None = None
        high_water, at_high_water = 0, set[str]()
        while True:
            kwargs: dict[str, Any] = {"limit": self.config.page_size, "properties": props, "archived": False}
            if after:
                kwargs["after"] = after
            body = self._call(f"list {object_type}", f"crm.{object_type}.basic_api", "get_page", **kwargs)
            results = body.get("results", [])
            for raw in results:
                ts = _modified_ms(raw, object_type)
                if ts > high_water:
                    high_water, at_high_water = ts, set()
                if ts == high_water:
                    at_high_water.add(str(raw["id"]))
            after = body.get("paging", {}).get("next", {}).get("after")
            # The high-water mark is only final once the whole list is read: until then, pages carry none.
            yield results, (_format_cursor(high_water, at_high_water) if not after else None)
            if not after:
                return

    def _search_since(self, object_type: str, cursor: str) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
        """Search records modified at or after ``since_ms``, ascending, re-windowing past the 10,000 cap.

        Ties at a window boundary are handled by starting the next window *at* the last timestamp and
        skipping ids already returned with that timestamp, so nothing is skipped and nothing repeats.
        """
        prop = _MODIFIED[object_type]
        props = self._contact_props if object_type == "contacts" else self._deal_props
        window_start, seen_at_start = _parse_cursor(cursor)
        while True:
            after = 0
            last_ts = window_start
            ids_at_last: set[str] = set(seen_at_start)
            progressed = False
            while True:
                request = {
                    "filterGroups": [{"filters": [{"propertyName": prop, "operator": "GTE",
                                                   "value": str(window_start)}]}],
                    "sorts": [{"propertyName": prop, "direction": "ASCENDING"}],
                    "properties": props,
                    "limit": self.config.search_page_size,
                    "after": str(after),
                }
                body = self._call(f"search {object_type}", f"crm.{object_type}.search_api", "do_search",
                                  public_object_search_request=request, search=True)
                fresh = []
                for raw in body.get("results", []):
                    ts = _modified_ms(raw, object_type)
                    if ts == window_start and str(raw["id"]) in seen_at_start:
                        continue
                    fresh.append(raw)
                    if ts > last_ts:
                        last_ts, ids_at_last = ts, set()
                    ids_at_last.add(str(raw["id"]))
                progressed = progressed or bool(fresh)
                next_after = body.get("paging", {}).get("next", {}).get("after")
                done = not next_after
                capped = next_after is not None and int(next_after) + self.config.search_page_size > SEARCH_RESULT_CAP
                yield fresh, (_format_cursor(last_ts, ids_at_last) if done else None)
                if done:
                    return
                if capped:
                    break
                after = int(next_after)
            if not progressed:
                raise ConnectorError(
                    f"more than {SEARCH_RESULT_CAP} {object_type} share the modified time {window_start}",
                    hint="run `clm sync --full` once to rebuild the mirror by list paging",
                )
            seen_at_start = ids_at_last
            window_start = last_ts

    def _archived_ids(self, object_type: str, since_ms: int | None) -> list[str]:
        ids: list[str] = []
        after: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": self.config.page_size, "archived": True,
                                      "properties": ["hs_object_id"]}
            if after:
                kwargs["after"] = after
            body = self._call(f"list archived {object_type}", f"crm.{object_type}.basic_api", "get_page", **kwargs)
            for raw in body.get("results", []):
                archived_at = parse_time(raw.get("archivedAt"))
                if since_ms is None or archived_at is None or archived_at.timestamp() * 1000 >= since_ms:
                    ids.append(str(raw["id"]))
            after = body.get("paging", {}).get("next", {}).get("after")
            if not after:
                return ids

    def _add_contact(self, raw: Mapping[str, Any], page: Page) -> None:
        props = dict(raw.get("properties") or {})
        try:
            contact = Contact(
                id=str(raw["id"]),
                email=props.pop("email", None) or None,
                created_at=parse_time(raw.get("createdAt") or props.get("createdate")) or datetime.now(UTC),
                updated_at=parse_time(raw.get("updatedAt") or props.get("lastmodifieddate")),
                properties={k: v for k, v in props.items() if v is not None},
            )
        except (ValueError, TypeError) as exc:
            page.problems.append(f"contact {raw.get('id')}: unreadable record ({exc.__class__.__name__})")
            return
        page.contacts.append(contact)
        merged = props.get("hs_merged_object_ids")
        if merged:
            # The ids merged into this contact no longer exist on their own (HubSpot keeps the survivor).
            page.deleted_contact_ids.extend(i for i in str(merged).split(";") if i and i != contact.id)

    def _add_deals(self, batch: Sequence[Mapping[str, Any]], page: Page) -> None:
        associations = self._deal_contacts([str(raw["id"]) for raw in batch])
        for raw in batch:
            props = dict(raw.get("properties") or {})
            deal_id = str(raw["id"])
            try:
                page.deals.append(Deal(
                    id=deal_id,
                    amount=_amount(props.get("amount"), deal_id),
                    currency=props.get("deal_currency_code") or None,
                    pipeline=props.get("pipeline") or None,
                    stage=props.get("dealstage") or None,
                    status=_deal_status(props),
                    created_at=parse_time(raw.get("createdAt") or props.get("createdate")) or datetime.now(UTC),
                    closed_at=parse_time(props.get("closedate")),
                    updated_at=parse_time(raw.get("updatedAt") or props.get("hs_lastmodifieddate")),
                    contact_ids=tuple(associations.get(deal_id, ())),
                    properties={k: v for k, v in props.items() if v is not None},
                ))
            except DataError as exc:
                page.problems.append(exc.message)
            except (ValueError, TypeError) as exc:
                page.problems.append(f"deal {deal_id}: unreadable record ({exc.__class__.__name__})")

    def _deal_contacts(self, deal_ids: Sequence[str]) -> dict[str, list[str]]:
        """Deal -> associated contact ids via the v4 batch API, in HubSpot's order."""
        out: dict[str, list[str]] = {}
        for start in range(0, len(deal_ids), ASSOCIATION_BATCH):
            chunk = deal_ids[start:start + ASSOCIATION_BATCH]
            body = self._call("read deal associations", "crm.associations.v4.batch_api", "get_page",
                              "deals", "contacts", {"inputs": [{"id": i} for i in chunk]})
            for result in body.get("results", []):
                source = str(result["_from"]["id"] if "_from" in result else result["from"]["id"])
                # HubSpot has no "primary" label on deal->contact associations; keep the order it returns.
                targets = result.get("to", [])
                out[source] = [str(t["toObjectId"]) for t in targets]
        return out

    # --- fields ----------------------------------------------------------------------------------------

    def ensure_fields(self, specs: Sequence[FieldSpec]) -> list[FieldStatus]:
        """Make sure our property group and ``clm_*`` properties exist with the right types."""
        group = self.config.property_group
        groups = self._call("list property groups", "crm.properties.groups_api", "get_all", "contacts")
        if not any(g.get("name") == group for g in groups.get("results", [])):
            try:
                self._call("create property group", "crm.properties.groups_api", "create", "contacts",
                           {"name": group, "label": "CRM Lifecycle", "displayOrder": -1})
            except HubSpotApiError as exc:
                if exc.status != 409:  # created meanwhile by another run: fine
                    raise
        existing = {p["name"]: p for p in self._call("list properties", "crm.properties.core_api", "get_all",
                                                     "contacts").get("results", [])}
        out = []
        for spec in specs:
            crm_name = self.crm_field_name(spec.name)
            want_type, field_type = _PROPERTY_TYPES[spec.type]
            options = self._options(spec)
            current = existing.get(crm_name)
            if current is None:
                body: dict[str, Any] = {"name": crm_name, "label": spec.label, "description": spec.description,
                                        "groupName": group, "type": want_type, "fieldType": field_type}
                if options:
                    body["options"] = [{"label": o, "value": o, "displayOrder": i} for i, o in enumerate(options)]
                try:
                    self._call("create property", "crm.properties.core_api", "create", "contacts", body)
                    out.append(FieldStatus(spec.name, crm_name, "created"))
                except HubSpotApiError as exc:
                    out.append(FieldStatus(spec.name, crm_name, "exists" if exc.status == 409 else "failed",
                                           str(exc.body.get("message", ""))))
            elif current.get("type") != want_type:
                out.append(FieldStatus(spec.name, crm_name, "conflict",
                                       f"exists as type '{current.get('type')}', we need '{want_type}'; "
                                       f"left unchanged — rename or delete it, or set hubspot.property_prefix"))
            else:
                have = {o.get("value") for o in current.get("options") or []}
                missing = [o for o in options if o not in have]
                if missing:
                    merged = list(current.get("options") or []) + [
                        {"label": o, "value": o, "displayOrder": len(have) + i} for i, o in enumerate(missing)]
                    self._call("update property options", "crm.properties.core_api", "update", "contacts",
                               crm_name, {"options": merged})
                    out.append(FieldStatus(spec.name, crm_name, "updated", f"added options: {', '.join(missing)}"))
                else:
                    out.append(FieldStatus(spec.name, crm_name, "exists"))
        return out

    def _options(self, spec: FieldSpec) -> list[str]:
        if spec.type is FieldType.BOOL:
            return ["true", "false"]
        return list(spec.options) or self._enum_options.get(spec.name, [])

    # --- write -----------------------------------------------------------------------------------------

    def write(self, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        """Batch-update our properties; every record gets a result, in input order.

        HubSpot answers a batch in one of three ways: 200 (all written), 207 (per-record errors, e.g. ids not
        found), or 400 for the whole batch when one input has an invalid value. In the last case the inputs
        the error names are set aside and the rest resent once; if it names none, the batch is split in two
        and each half retried, so a healthy batch costs one call and a bad one O(log n).
        """
        if len(updates) > self.batch_size:
            raise ValueError(f"batch of {len(updates)} exceeds hubspot.batch_size={self.batch_size}")
        results: dict[str, WriteResult] = {}
        self._write_batch(list(updates), results)
        return [results[u.record_id] for u in updates]

    def _encode(self, update: FieldUpdate) -> dict[str, Any]:
        props = {}
        for name, value in update.values.items():
            spec = self._specs.get(name)
            if name == "lifecyclestage":
                props[name] = str(value)
            elif spec is None:
                raise ValueError(f"'{name}' is not one of our fields")
            else:
                props[self.crm_field_name(name)] = format_value(spec, value)
        return {"id": update.record_id, "properties": props}

    def _write_batch(self, updates: list[FieldUpdate], results: dict[str, WriteResult]) -> None:
        if not updates:
            return
        inputs = [self._encode(u) for u in updates]
        try:
            body = self._call("batch update contacts", "crm.contacts.batch_api", "update", {"inputs": inputs})
        except HubSpotApiError as exc:
            if exc.status not in (400, 404) or len(updates) == 1:
                for u in updates:
                    results[u.record_id] = _rejection(u.record_id, exc.body, exc.status)
                return
            named = _named_inputs(exc.body, updates)
            if named:
                results.update(named)
                self._write_batch([u for u in updates if u.record_id not in named], results)
            else:
                middle = len(updates) // 2
                self._write_batch(updates[:middle], results)
                self._write_batch(updates[middle:], results)
            return
        for ok in body.get("results", []):
            results[str(ok["id"])] = WriteResult(str(ok["id"]), ok=True)
        for error in body.get("errors", []):
            ids = [str(i) for i in (error.get("context") or {}).get("ids", [])]
            for record_id in ids:
                results[record_id] = _rejection(record_id, error, int(error.get("status") or 400)
                                                if str(error.get("status", "")).isdigit() else 400)
        for u in updates:
            # HubSpot answers with the records it wrote; any input it neither wrote nor named is unknown.
            results.setdefault(u.record_id, WriteResult(u.record_id, ok=False, reason="no result from HubSpot",
                                                        transient=True))

    # --- check -----------------------------------------------------------------------------------------

    def check(self, specs: Sequence[FieldSpec]) -> list[CheckResult]:
        """Token, scopes, reachability and our properties, each with a fix."""
        checks = []
        try:
            self._call("read contacts", "crm.contacts.basic_api", "get_page", limit=1)
            checks.append(CheckResult("HubSpot reachable, token accepted, contacts readable", True,
                                      self.config.base_url))
        except (AuthError, ConnectorError) as exc:
            checks.append(CheckResult("HubSpot reachable, token accepted, contacts readable", False, exc.message,
                                      exc.hint or ""))
            return checks
        try:
            self._call("read deals", "crm.deals.basic_api", "get_page", limit=1)
            checks.append(CheckResult("deals readable", True))
        except (AuthError, ConnectorError) as exc:
            checks.append(CheckResult("deals readable", False, exc.message, exc.hint or ""))
        try:
            existing = {p["name"] for p in self._call("list properties", "crm.properties.core_api", "get_all",
                                                      "contacts").get("results", [])}
            missing = [self.crm_field_name(s.name) for s in specs if self.crm_field_name(s.name) not in existing]
            checks.append(CheckResult("our properties exist", not missing,
                                      f"missing: {', '.join(missing)}" if missing else f"{len(specs)} present",
                                      "run `clm fields ensure` (or `clm sync`, which creates them)" if missing else ""))
        except (AuthError, ConnectorError) as exc:
            checks.append(CheckResult("properties readable", False, exc.message, exc.hint or ""))
        return checks


def _named_inputs(body: Mapping[str, Any], updates: Sequence[FieldUpdate]) -> dict[str, WriteResult]:
    """The inputs a whole-batch 400 names, each with its own reason and property.

    HubSpot's VALIDATION_ERROR lists per-input errors with ``in: inputs[i].properties.<name>`` and/or
    ``context: {id: [...], propertyName: [...]}``; the top-level message repeats them as JSON text.
    """
    named: dict[str, WriteResult] = {}
    for error in body.get("errors") or []:
        context = error.get("context") or {}
        where = str(error.get("in", ""))
        match = re.match(r"inputs\[(\d+)\](?:\.properties\.(\w+))?", where)
        targets = [str(i) for i in context.get("ids", []) + context.get("id", [])]
        if match and int(match.group(1)) < len(updates):
            targets.append(updates[int(match.group(1))].record_id)
        prop = (context.get("propertyName") or [None])[0] or (match.group(2) if match else None)
        reason = f"{error.get('code') or body.get('category', 'VALIDATION_ERROR')}: {error.get('message', '')}"
        for record_id in targets:
            if any(u.record_id == record_id for u in updates):
                named[record_id] = WriteResult(record_id, ok=False, reason=reason[:300], field=prop)
    return named


def _rejection(record_id: str, body: Mapping[str, Any], status: int) -> WriteResult:
    category = str(body.get("category", ""))
    message = str(body.get("message", "")) or category or f"HTTP {status}"
    field = None
    match = re.search(r"\"name\"\s*:\s*\"([^\"]+)\"", message) or re.search(r"property[:\s]+'?([a-z0-9_]+)", message)
    if match:
        field = match.group(1)
    gone = status == 404 or category == "OBJECT_NOT_FOUND"
    return WriteResult(record_id, ok=False, reason=f"{category or status}: {message}"[:500], field=field, gone=gone)


def _format_cursor(ms: int, ids_at_ms: set[str]) -> str:
    """``<ms>|<ids>``: the high-water time and the ids already seen at that very millisecond, so the next
    search (which must start *at* that millisecond, ties being possible) skips exactly those."""
    return f"{ms}|{','.join(sorted(ids_at_ms, key=lambda i: (len(i), i)))}"


def _parse_cursor(cursor: str) -> tuple[int, set[str]]:
    ms, _, ids = cursor.partition("|")
    return int(ms), {i for i in ids.split(",") if i}


def _modified_ms(raw: Mapping[str, Any], object_type: str) -> int:
    props = raw.get("properties") or {}
    moment = parse_time(props.get(_MODIFIED[object_type]) or raw.get("updatedAt"))
    return int(moment.timestamp() * 1000) if moment else 0


def _deal_status(props: Mapping[str, Any]) -> DealStatus:
    won = props.get("hs_is_closed_won")
    closed = props.get("hs_is_closed")
    if won is not None and closed is not None:
        if str(won).lower() == "true":
            return DealStatus.WON
        return DealStatus.LOST if str(closed).lower() == "true" else DealStatus.OPEN
    stage = str(props.get("dealstage") or "")
    return {"closedwon": DealStatus.WON, "closedlost": DealStatus.LOST}.get(stage, DealStatus.OPEN)


def _amount(value: Any, deal_id: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        amount = float(value)
    except (TypeError, ValueError):
        raise DataError(f"deal {deal_id}, field amount: '{value}' is not a number; the deal is skipped") from None
    if not math.isfinite(amount):
        raise DataError(f"deal {deal_id}, field amount: '{value}' is not a finite number; the deal is skipped")
    return amount


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
