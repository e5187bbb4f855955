"""The HubSpot emulator app: routing, authentication, rate limits, emulator-specific faults, introspection.

``hubspot-api-client`` works against it unchanged: ``HubSpot(access_token=token, host=server.url)`` — the
client joins ``host`` with each operation's path (``/crm/v3/objects/contacts``...), so the emulator serves
HubSpot's paths at its root.

Every ``/crm`` request needs ``Authorization: Bearer <token>`` (:mod:`.auth`), is counted against the rate
limits (:mod:`.limits`) and may be hit by an emulator-specific fault. Those reuse
:class:`connectors.sandbox.faults.FaultRule` (matched on method and path prefix, with ``rate``/``count``/
``after``), with these kinds:

* ``expired_token`` — the request's token expires there and then: 401 ``EXPIRED_AUTHENTICATION`` (and on every
  later use of it; an OAuth client refreshes through ``/oauth/v1/token``);
* ``daily_limit`` — the day's allowance is used up: 429 ``DAILY`` until :meth:`HubSpotEmulator.reset_daily`;
* ``partial_failure`` — per input of a write: that input fails as a 207 item (category from ``rule.body``, a
  string or ``{"category", "message"}``; default ``INTERNAL_ERROR``), the rest is written;
* ``deleted_before_write`` — per input: a person deletes the record just before the write, which then comes
  back ``OBJECT_NOT_FOUND`` in the 207;
* ``merged_before_write`` — per input: a person merges the record with a duplicate just before the write; both
  become a new record with a new id (see :meth:`HubSpotEmulator.merge`), the old id resolves to it, so the write
  lands there and its result carries the new id.

Per-input kinds match write paths (``…/batch/update``, ``…/batch/create``, ``…/batch/upsert``, ``PATCH …/{id}``).
Latency, 429 bursts, 5xx, timeouts and dropped connections come from the server's generic ``FaultInjector``
(see :func:`connectors.sandbox.hubspot.sandbox.rate_limit_burst`).
"""

from __future__ import annotations

import re
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs

from connectors.sandbox.faults import FaultInjector, FaultRule
from connectors.sandbox.hubspot import objects, properties
from connectors.sandbox.hubspot.auth import DEFAULT_TOKEN, OAuthApp, TokenInfo, Tokens
from connectors.sandbox.hubspot.errors import (
    ApiError,
    correlation_id,
    invalid_request,
    route_not_found,
    standard_error,
)
from connectors.sandbox.hubspot.limits import DEFAULT_TIME_ZONE, RateLimiter, RateLimits
from connectors.sandbox.hubspot.objects import Context, json_response
from connectors.sandbox.hubspot.schema import OBJECT_TYPE_IDS, OBJECT_TYPES
from connectors.sandbox.hubspot.search import SearchIndex
from connectors.sandbox.hubspot.spec import Specs, load_specs
from connectors.sandbox.hubspot.store import Record, SeedResult, Store
from connectors.sandbox.hubspot.values import normalise, to_ms
from connectors.sandbox.server import Request, Response
from core.models import Contact, Deal

RECORD_FAULTS = ("partial_failure", "deleted_before_write", "merged_before_write")
REQUEST_FAULTS = ("expired_token", "daily_limit")
DEFAULT_PORTAL_ID = 4_242_424
DEFAULT_APP_ID = 1_512_050

Handler = Callable[[Context, tuple[str, ...]], Response]
_WRITES = re.compile(r"^/crm/v3/objects/[^/]+(/batch/(update|create|upsert)|/[^/]+)$")


class HubSpotEmulator:
    """An emulated HubSpot portal behind the CRM v3 objects/search/batch/properties and v4 associations APIs.

    Thread-safe; serve it with :class:`connectors.sandbox.server.SandboxServer` (see
    :func:`connectors.sandbox.hubspot.start_hubspot_sandbox`).

    With ``validate_requests`` (the default) every request is checked against its operation in HubSpot's
    OpenAPI specs (:mod:`.spec`) and answered 400 ``VALIDATION_ERROR`` when it does not match; each such request
    is logged in :attr:`spec_violations` and in the process-wide :meth:`take_spec_violations`.
    ``time_zone`` is the account's: the daily limit resets at its midnight.
    """

    _all_violations: ClassVar[list[str]] = []
    _violations_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, *, tokens: Iterable[str] = (DEFAULT_TOKEN,), oauth: OAuthApp | None = None,
                 rate_limits: RateLimits | None = None, clock: Callable[[], float] | None = None,
                 monotonic: Callable[[], float] | None = None, access_token_ttl: int = 1800,
                 portal_id: int = DEFAULT_PORTAL_ID, app_id: int = DEFAULT_APP_ID, fault_seed: int = 0,
                 search_lag_ms: int = 3000, association_page_size: int = 100, validate_requests: bool = True,
                 time_zone: str = DEFAULT_TIME_ZONE) -> None:
        """``search_lag_ms``: how long after a change search still answers from the previously indexed record
        (0: at once; see :class:`connectors.sandbox.hubspot.store.SearchView`), on ``clock``.
        ``association_page_size``: associations per input in a v4 batch read page (HubSpot publishes none;
        see :func:`connectors.sandbox.hubspot.properties.read_associations`)."""
        self.store = Store(clock, search_lag_ms=search_lag_ms, association_page_size=association_page_size)
        self.search_index = SearchIndex(self.store)
        token_list = list(tokens)
        self.token = token_list[0] if token_list else ""
        """The first private app token (what ``HubSpot(access_token=...)`` takes)."""
        self.oauth = oauth or OAuthApp()
        self.tokens = Tokens(token_list, self.oauth, access_ttl=access_token_ttl, clock=clock)
        self.limiter = RateLimiter(rate_limits or RateLimits(), monotonic=monotonic, wall=clock, time_zone=time_zone)
        self.specs: Specs | None = load_specs() if validate_requests else None
        """The specs requests are validated against (None when validation was switched off; when they could not
        be loaded, ``specs.enabled`` is False and ``specs.reason`` says why)."""
        self.spec_violations: list[str] = []
        """Every request this emulator answered 400 because the spec rejects it: ``"METHOD path: reason"``."""
        self.portal_id = portal_id
        self.app_id = app_id
        self.request_counts: Counter[str] = Counter()
        self.internal_errors: list[str] = []
        self._faults = FaultInjector(fault_seed)
        self._lock = threading.Lock()
        self._routes = self._build_routes()

    # ------------------------------------------------------------ data, as a person would change it

    def set_currencies(self, company: str, rates: Mapping[str, float | list[tuple[datetime, float]]]) -> None:
        """The portal's company currency and its additional currencies' exchange rates to it (one rate, or
        rates effective from given times), as an admin sets them in Account defaults > Currency."""
        with self.store.lock:
            self.store.set_currencies(company, rates)

    def account_details(self) -> dict[str, Any]:
        """``GET /account-info/v3/details`` (shape from the docs' example, developers.hubspot.com/docs/
        api-reference/legacy/account/account-information/get-account-details)."""
        moment = datetime.fromtimestamp(self.limiter.wall(), tz=self.limiter.time_zone)
        offset = moment.utcoffset()
        offset_ms = int(offset.total_seconds() * 1000) if offset is not None else 0
        with self.store.lock:
            company, additional = self.store.company_currency, sorted(self.store.exchange_rates)
        return {"accountType": "STANDARD", "additionalCurrencies": additional, "companyCurrency": company,
                "dataHostingLocation": "na1", "portalId": self.portal_id, "timeZone": str(self.limiter.time_zone),
                "uiDomain": "app.hubspot.com", "utcOffset": moment.strftime("%z")[:3] + ":" + moment.strftime("%z")[3:],
                "utcOffsetMilliseconds": offset_ms}

    def seed(self, contacts: Iterable[Contact] = (), deals: Iterable[Deal] = ()) -> SeedResult:
        """Load our records as HubSpot would hold them; returns our id -> HubSpot id mappings.

        Numeric ids are kept, others get the next free HubSpot id. Won deals go to ``closedwon``, lost ones to
        ``closedlost``, open ones to their stage when the default pipeline has it, else ``appointmentscheduled``.
        Properties HubSpot does not know are defined on the fly with a type inferred from the value (numbers
        ``number``, datetimes ``datetime``, booleans ``bool``, the rest ``string``); enumeration values the
        portal lacks are added as options.
        """
        with self.store.lock:
            return self.store.seed(contacts, deals)

    def _record(self, object_type: str, object_id: str) -> Record:
        record = self.store.resolve(_object_type(object_type), object_id)
        if record is None:
            raise KeyError(f"no {object_type} {object_id}")
        return record

    def edit(self, object_type: str, object_id: str, values: Mapping[str, object]) -> dict[str, Any]:
        """Change a record as a person editing it in HubSpot would (validated; bumps its modified time; not
        counted as an API write). Returns the record with all its properties."""
        kind = _object_type(object_type)
        with self.store.lock:
            record = self._record(kind, object_id)
            table = self.store.tables[kind]
            stored = {}
            for name, raw in values.items():
                prop = table.props.get(name) or self.store.define(kind, name, raw)
                stored[name] = normalise(prop, str(to_ms(raw)) if isinstance(raw, datetime) else raw)
            self.store.update(kind, record, stored, source="person")
            return self.store.to_json(table, record, list(table.props))

    def bulk_edit(self, object_type: str, ids: Iterable[str], values: Mapping[str, object]) -> int:
        """Apply values to many records with ONE identical modified time, as HubSpot's own batch jobs do
        (imports, workflow bulk edits, the month-end "Batch Update" that "sets all affected records to the exact
        same timestamp", github.com/airbytehq/airbyte/issues/43317). Returns that time (epoch ms).

        The stamp is later than every chosen record's modified time, so each record's modified time still
        increases. Not counted as API writes."""
        kind = _object_type(object_type)
        with self.store.lock:
            records = [self._record(kind, object_id) for object_id in ids]
            table = self.store.tables[kind]
            stored = {}
            for name, raw in values.items():
                prop = table.props.get(name) or self.store.define(kind, name, raw)
                stored[name] = normalise(prop, str(to_ms(raw)) if isinstance(raw, datetime) else raw)
            stamp = max([self.store.now_ms(), *(r.updated + 1 for r in records)])
            for record in records:
                self.store.update(kind, record, stored, source="person", when=stamp)
            return stamp

    def delete(self, object_type: str, object_id: str) -> bool:
        """Delete (archive) a record as a person would; False if there was none."""
        kind = _object_type(object_type)
        with self.store.lock:
            record = self.store.resolve(kind, object_id)
            if record is None:
                return False
            self.store.archive(kind, record)
            return True

    def restore(self, object_type: str, object_id: str) -> bool:
        """Restore an archived record."""
        kind = _object_type(object_type)
        with self.store.lock:
            record = self.store.resolve(kind, object_id, archived=True)
            if record is None:
                return False
            self.store.restore(kind, record)
            return True

    def merge(self, object_type: str, primary_id: str, secondary_id: str) -> str:
        """Merge two records as a person would; returns the id of the NEW record both become (see
        :meth:`connectors.sandbox.hubspot.store.Store.merge`: the primary's values win, blanks come from the
        secondary, ``hs_merged_object_ids`` lists both old ids, both old ids resolve to it)."""
        kind = _object_type(object_type)
        with self.store.lock:
            primary, secondary = self._record(kind, primary_id), self._record(kind, secondary_id)
            return str(self.store.merge(kind, primary, secondary).id)

    def associate(self, deal_id: str, contact_id: str) -> None:
        """Associate a deal with a contact as a person would (neither record's modified time changes)."""
        with self.store.lock:
            self.store.associate(self._record("deals", deal_id).id, self._record("contacts", contact_id).id)

    def dissociate(self, deal_id: str, contact_id: str) -> bool:
        """Remove a deal↔contact association as a person would (modified times unchanged); False if there was
        none."""
        with self.store.lock:
            return self.store.dissociate(self._record("deals", deal_id).id,
                                         self._record("contacts", contact_id).id)

    def record(self, object_type: str, object_id: str) -> dict[str, Any] | None:
        """A record with all its properties (merged-away ids resolve to the survivor), or None."""
        kind = _object_type(object_type)
        with self.store.lock:
            found = self.store.resolve(kind, object_id) or self.store.resolve(kind, object_id, archived=True)
            if found is None:
                return None
            table = self.store.tables[kind]
            return self.store.to_json(table, found, list(table.props), ("contacts", "deals"))

    def ids(self, object_type: str, *, archived: bool = False) -> list[str]:
        """The ids of the live (or archived) records, ascending."""
        kind = _object_type(object_type)
        with self.store.lock:
            return [str(r.id) for r in self.store.tables[kind].iter_from(0, archived)]

    def count(self, object_type: str) -> int:
        """How many live records an object type has."""
        kind = _object_type(object_type)
        with self.store.lock:
            return sum(1 for r in self.store.tables[kind].records.values() if r.archived_at is None)

    # ------------------------------------------------------------ tokens, limits, faults

    def issue_token(self) -> str:
        """Accept another private app token and return it."""
        return self.tokens.add()

    def expire_token(self, token: str | None = None) -> None:
        """Expire one token (or all): later requests with it get 401 ``EXPIRED_AUTHENTICATION``."""
        self.tokens.expire(token)

    def exhaust_daily_limit(self) -> None:
        """Use up today's API allowance: requests get 429 ``DAILY`` until :meth:`reset_daily`."""
        self.limiter.exhaust_daily()

    def reset_daily(self) -> None:
        """Start a new day of API usage."""
        self.limiter.reset_daily()

    def add_fault(self, rule: FaultRule) -> FaultRule:
        """Activate an emulator-specific fault (kinds in the module docstring); returns it for ``fired``."""
        if rule.kind not in RECORD_FAULTS + REQUEST_FAULTS:
            raise ValueError(f"unknown HubSpot fault kind {rule.kind!r}; latency, status, timeout and drop "
                             "faults go to the server's FaultInjector")
        return self._faults.add(rule)

    def clear_faults(self) -> None:
        """Remove every emulator-specific fault."""
        self._faults.clear()

    def _fires(self, kinds: Iterable[str], method: str, path: str) -> FaultRule | None:
        return self._faults.take(kinds, method, path)

    def _record_fault(self, method: str, path: str) -> objects.RecordFault:
        applies = bool(_WRITES.match(path)) and method in ("POST", "PATCH")

        def fault(object_type: str, record: Record | None) -> dict[str, Any] | None:
            if not applies:
                return None
            rule = self._fires(RECORD_FAULTS, method, path)
            if rule is None:
                return None
            if rule.kind == "partial_failure":
                spec = rule.body if isinstance(rule.body, dict) else {"category": rule.body} if isinstance(
                    rule.body, str) else {}
                category = str(spec.get("category") or "INTERNAL_ERROR")
                message = str(spec.get("message") or "An internal error occurred while processing this input; "
                                                     "retry it.")
                return standard_error(category, message, {"ids": [str(record.id)] if record else []})
            if record is None:
                return None
            if rule.kind == "deleted_before_write":
                self.store.archive(object_type, record)
            else:  # merged_before_write: a duplicate absorbs it; the old id now resolves to the duplicate
                table = self.store.tables[object_type]
                copy = {name: table.stored(record, name) for name in table.slots}
                if object_type == "contacts":
                    copy.pop("email", None)
                duplicate = self.store.create(object_type, copy, source="person")
                self.store.merge(object_type, duplicate, record)
            return None

        return fault

    # ------------------------------------------------------------ introspection

    @property
    def throttled(self) -> Counter[str]:
        """429s sent, by ``policyName``."""
        return self.limiter.throttled

    def writes_to(self, object_type: str, object_id: str) -> int:
        """How many API writes landed on a record (batch inputs, PATCHes, creates)."""
        with self.store.lock:
            return self.store.writes[(_object_type(object_type), object_id)]

    def property_writes_to(self, object_type: str, object_id: str) -> dict[str, int]:
        """How many times each property of a record was written through the API."""
        kind = _object_type(object_type)
        with self.store.lock:
            return {name: n for (t, rid, name), n in self.store.property_writes.items()
                    if t == kind and rid == object_id}

    def max_writes_per_record(self) -> int:
        """The most API writes any one record received (1 = nothing written twice)."""
        with self.store.lock:
            return max(self.store.writes.values(), default=0)

    def total_writes(self) -> int:
        """Record writes applied through the API."""
        with self.store.lock:
            return sum(self.store.writes.values())

    def reset_counters(self) -> None:
        """Zero request counts, 429 counts and the write log (records keep their values)."""
        with self._lock:
            self.request_counts.clear()
        self.limiter.throttled.clear()
        with self.store.lock:
            self.store.writes.clear()
            self.store.property_writes.clear()

    def save(self, path: Path) -> None:
        """Write the portal to a SQLite file (see :mod:`connectors.sandbox.hubspot.persist`)."""
        from connectors.sandbox.hubspot.persist import save

        with self.store.lock:
            save(self.store, path)

    def load(self, path: Path) -> None:
        """Replace the portal's data with a SQLite file written by :meth:`save`."""
        from connectors.sandbox.hubspot.persist import load

        with self.store.lock:
            load(self.store, path)

    # ------------------------------------------------------------ HTTP

    def handle(self, request: Request) -> Response:
        """Serve one request (the :class:`connectors.sandbox.server.App` protocol)."""
        try:
            return self._handle(request)
        except ApiError as error:
            return json_response(error.status, error.body(), error.headers)
        except Exception:  # an emulator bug: answer like HubSpot's opaque 500 and keep the trace for tests
            self.internal_errors.append(traceback.format_exc())
            return json_response(500, {"status": "error", "message": "internal error", "correlationId":
                                       correlation_id(), "category": "INTERNAL_ERROR"})

    def _handle(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        # v1 is HubSpot's legacy token endpoint (deprecated 2027-02-16); v3 takes the same form in the body
        # (developers.hubspot.com/docs/api-reference/auth-oauth-v3/guide).
        if path in ("/oauth/v1/token", "/oauth/v3/token"):
            self._count(f"{request.method} {path}")
            if request.method != "POST":
                raise route_not_found(path)
            form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
            status, payload = self.tokens.grant(form)
            return json_response(status, payload)
        route, handler, args = self._route(request.method, path)
        self._count(f"{request.method} {route}")
        info = self.tokens.check(request.headers.get("authorization"))
        rule = self._fires(REQUEST_FAULTS, request.method, path)
        if rule is not None and rule.kind == "expired_token":
            token = (request.headers.get("authorization") or "")[7:].strip()
            self.tokens.expire(token)
            self.tokens.check(request.headers.get("authorization"))  # raises EXPIRED_AUTHENTICATION
        if rule is not None and rule.kind == "daily_limit":
            self.limiter.exhaust_daily()
        headers = self._admit(route, info)
        self._validate(request, path, headers)
        context = Context(request, self.store, self.search_index, self.portal_id,
                          self._record_fault(request.method, path))
        try:
            with self.store.lock:
                response = handler(context, args)
        except ApiError as error:
            error.headers.update(headers)
            raise
        response.headers.update(headers)
        return response

    @property
    def validating(self) -> bool:
        """True when requests are validated against the specs."""
        return self.specs is not None and self.specs.enabled

    @classmethod
    def take_spec_violations(cls) -> list[str]:
        """The violations every emulator in this process logged since the last call, which clears them (the
        whole-suite guard in ``tests/conftest.py`` reads them after each test)."""
        with cls._violations_lock:
            taken = list(cls._all_violations)
            cls._all_violations.clear()
        return taken

    def _validate(self, request: Request, path: str, headers: Mapping[str, str]) -> None:
        # After authentication and the rate limits: HubSpot counts a rejected request as a call.
        if self.specs is None:
            return
        problems = self.specs.request_problems(request.method, path, request.query, request.body,
                                               request.headers.get("content-type"))
        if not problems:
            return
        entry = f"{request.method} {path}: " + "; ".join(str(p) for p in problems)
        self.spec_violations.append(entry)
        with self._violations_lock:
            self._all_violations.append(entry)
        error = invalid_request([(p.location, p.message, p.missing) for p in problems])
        error.headers.update(headers)
        raise error

    def _admit(self, route: str, info: TokenInfo) -> dict[str, str]:
        return self.limiter.admit(search=route.endswith("/search"), oauth=info.kind == "oauth",
                                  portal_id=self.portal_id, app_id=self.app_id)

    def _count(self, key: str) -> None:
        with self._lock:
            self.request_counts[key] += 1

    def _route(self, method: str, path: str) -> tuple[str, Handler, tuple[str, ...]]:
        for pattern, template, handlers in self._routes:
            found = pattern.match(path)
            if not found:
                continue
            groups = list(found.groups())
            names = [g for g in pattern.groupindex]
            for i, name in enumerate(names):
                if name.startswith("type"):
                    kind = OBJECT_TYPE_IDS.get(groups[i].lower())
                    if kind is None:
                        raise route_not_found(path)
                    groups[i] = kind
            handler = handlers.get(method)
            if handler is None:
                raise ApiError(405, "METHOD_NOT_ALLOWED", f"HTTP method {method} is not supported by {path}")
            label = template
            for i, name in enumerate(names):
                if name.startswith("type"):
                    label = label.replace("{" + name + "}", groups[i], 1)
            return label, handler, tuple(groups)
        raise route_not_found(path)

    def _build_routes(self) -> list[tuple[re.Pattern[str], str, dict[str, Handler]]]:
        o, p = objects, properties
        table: list[tuple[str, str, dict[str, Handler]]] = [
            (r"/crm/v3/objects/(?P<type>[^/]+)", "/crm/v3/objects/{type}",
             {"GET": lambda c, a: o.list_objects(c, a[0]), "POST": lambda c, a: o.create_object(c, a[0])}),
            (r"/crm/v3/objects/(?P<type>[^/]+)/search", "/crm/v3/objects/{type}/search",
             {"POST": lambda c, a: o.search(c, a[0])}),
            (r"/crm/v3/objects/(?P<type>[^/]+)/merge", "/crm/v3/objects/{type}/merge",
             {"POST": lambda c, a: o.merge_objects(c, a[0])}),
            (r"/crm/v3/objects/(?P<type>[^/]+)/batch/read", "/crm/v3/objects/{type}/batch/read",
             {"POST": lambda c, a: o.batch_read(c, a[0])}),
            (r"/crm/v3/objects/(?P<type>[^/]+)/batch/update", "/crm/v3/objects/{type}/batch/update",
             {"POST": lambda c, a: o.batch_update(c, a[0])}),
            (r"/crm/v3/objects/(?P<type>[^/]+)/batch/create", "/crm/v3/objects/{type}/batch/create",
             {"POST": lambda c, a: o.batch_create(c, a[0])}),
            (r"/crm/v3/objects/(?P<type>[^/]+)/batch/upsert", "/crm/v3/objects/{type}/batch/upsert",
             {"POST": lambda c, a: o.batch_upsert(c, a[0])}),
            (r"/crm/v3/objects/(?P<type>[^/]+)/batch/archive", "/crm/v3/objects/{type}/batch/archive",
             {"POST": lambda c, a: o.batch_archive(c, a[0])}),
            (r"/crm/v3/objects/(?P<type>[^/]+)/(?P<id>[^/]+)", "/crm/v3/objects/{type}/{id}",
             {"GET": lambda c, a: o.get_object(c, a[0], a[1]), "PATCH": lambda c, a: o.update_object(c, a[0], a[1]),
              "DELETE": lambda c, a: o.archive_object(c, a[0], a[1])}),
            (r"/crm/v3/properties/(?P<type>[^/]+)", "/crm/v3/properties/{type}",
             {"GET": lambda c, a: p.list_properties(c, a[0]), "POST": lambda c, a: p.create_property(c, a[0])}),
            (r"/crm/v3/properties/(?P<type>[^/]+)/groups", "/crm/v3/properties/{type}/groups",
             {"GET": lambda c, a: p.list_groups(c, a[0]), "POST": lambda c, a: p.create_group(c, a[0])}),
            (r"/crm/v3/properties/(?P<type>[^/]+)/groups/(?P<name>[^/]+)", "/crm/v3/properties/{type}/groups/{name}",
             {"GET": lambda c, a: p.get_group(c, a[0], a[1])}),
            (r"/crm/v3/properties/(?P<type>[^/]+)/(?P<name>[^/]+)", "/crm/v3/properties/{type}/{name}",
             {"GET": lambda c, a: p.get_property(c, a[0], a[1]),
              "PATCH": lambda c, a: p.update_property(c, a[0], a[1]),
              "DELETE": lambda c, a: p.archive_property(c, a[0], a[1])}),
            (r"/crm/v4/associations/(?P<type_from>[^/]+)/(?P<type_to>[^/]+)/batch/read",
             "/crm/v4/associations/{type_from}/{type_to}/batch/read",
             {"POST": lambda c, a: p.read_associations(c, a[0], a[1])}),
            (r"/crm/v4/objects/(?P<type_from>[^/]+)/(?P<id>[^/]+)/associations/(?P<type_to>[^/]+)",
             "/crm/v4/objects/{type_from}/{id}/associations/{type_to}",
             {"GET": lambda c, a: p.list_record_associations(c, a[0], a[1], a[2])}),
        ]
        # Today's private-app usage and when it resets (developers.hubspot.com/docs/api-reference/legacy/account/
        # account-information/get-usage-details; the date-versioned path is .../2026-03/account/...). Not in our
        # spec files, so not validated. HubSpot does not say whether the call counts against the limits; it does
        # here, itself included (the harder case; the docs' example, "currentUsage": 1, fits a first call).
        table.append((r"/account-info/(?P<version>v3|2026-03)/api-usage/daily/private-apps",
                      "/account-info/{version}/api-usage/daily/private-apps",
                      {"GET": lambda c, a: json_response(200, self.limiter.usage())}))
        table.append((r"/account-info/(?P<version>v3|2026-03)/details", "/account-info/{version}/details",
                      {"GET": lambda c, a: json_response(200, self.account_details())}))
        return [(re.compile(f"^{pattern}$"), template, handlers) for pattern, template, handlers in table]


def _object_type(name: str) -> str:
    kind = OBJECT_TYPE_IDS.get(name.lower())
    if kind is None or kind not in OBJECT_TYPES:
        raise KeyError(f"unknown object type {name!r}; use contacts or deals")
    return kind
