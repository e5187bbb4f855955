"""A local emulator of the EngageBay REST API paths our connector uses, for tests, benchmarks and ``clm demo``.

Every behaviour is EngageBay's as its README documents it (github.com/engagebay/restapi; "§" numbers are its
sections), and where the README is silent the emulator takes the case that is harder for a client:

- paths under ``/dev/api/panel/`` ("End Points"); ``Authorization: <REST API key>`` as it is, ``Bearer`` refused
  with the README's 401 body ``{"error": "UnAuthenticated User", "status": "401"}`` ("Errors");
- answers in XML unless ``Accept: application/json`` (§1.1 "By default, the response will be in XML format");
- ``POST subscribers`` / ``POST deals`` list with ``page_size`` (max 100, §1.1: a larger ask is *silently* capped,
  the README not saying it is refused), ``sort_key`` ``created_time``/``updated_time`` with ``-`` for descending
  and the ``cursor`` carried in the last record (§1.1). The cursor is a position in the sort order (EngageBay's
  are Datastore query cursors: §1.1's example ``Cl0KFgoMY3JlYXRlZF90aW1l…`` decodes to an index position on
  ``created_time``), so a record whose ``updated_time`` changes while a client pages moves; a full page carries a
  cursor even when nothing follows (the next page is then empty). Deals are listed per ``track_id``, the default
  track's when none is given (§3.1);
- ``PUT subscribers/update-partial`` (§1.4) adds or replaces the properties sent and stamps ``updated_time``;
  values of our typed custom fields are checked (NUMBER, CHECKBOX, DATE in the account's format: README "Custom
  Fields", "Date Format") and refused with 400; an unknown id is a 404 (the README does not say);
- hard deletes (§1.5, §3.4); custom fields listed and created per scope (§12.1, §12.2); tracks (§4.1);
- 429 with ``{"error": ...}`` and no ``Retry-After`` when more than ``rate_limit`` requests arrive in
  ``rate_window`` seconds ("Errors": 429, no published limit, no header documented).

5xx, timeouts and dropped connections come from the server's shared :class:`FaultInjector`; the emulator's own
fault, ``deleted_before_write`` (a person deletes the contact just before our update arrives), comes from
:meth:`EngageBayEmulator.add_fault`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from connectors.sandbox.engagebay.store import DEFAULT_KEY, FIELD_TYPES, SCOPES, Account
from connectors.sandbox.faults import FaultInjector, FaultRule
from connectors.sandbox.server import Request, Response
from core.models import Contact, Deal

ROOT = "/dev/api/panel/"
MAX_PAGE = 100
#: The README gives no default page size; a client that sends none gets a small one.
DEFAULT_PAGE = 20
SORT_KEYS = ("created_time", "updated_time", "-created_time", "-updated_time")
RECORD_FAULTS = frozenset({"deleted_before_write"})
#: EngageBay publishes no limit ("Errors": 429 "too many requests", "contact EngageBay support"). Unknown, so the
#: harder case: 429s from 300 requests a minute, no faster than the connector's default pace (None: off).
DEFAULT_RATE_LIMIT = 300


class Encoded:
    """An answer already encoded as JSON text (a list page, encoded once while the account is locked)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class Problem(Exception):
    """An error answer: status and EngageBay's ``{"error": ...}`` body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class EngageBayEmulator:
    """Serves one account over the :class:`connectors.sandbox.server.App` protocol; thread-safe."""

    def __init__(self, *, api_key: str = DEFAULT_KEY, account: Account | None = None,
                 rate_limit: int | None = DEFAULT_RATE_LIMIT, rate_window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.api_key = api_key
        self.account = account or Account()
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self._clock = clock
        self._arrivals: deque[float] = deque()
        self._rate_lock = threading.Lock()
        self.faults = FaultInjector(seed=3)
        self.calls: Counter[str] = Counter()
        self.throttled = 0
        self.internal_errors: list[str] = []

    # --- what tests and the demo use ---------------------------------------------------------------------

    def seed(self, contacts: Iterable[Contact], deals: Iterable[Deal]) -> None:
        """Load generated or real records (see :meth:`Account.seed`)."""
        self.account.seed(contacts, deals)

    def save(self, path: Path) -> None:
        """Write the account's data to ``path`` (see :meth:`Account.save`)."""
        self.account.save(path)

    def count(self, kind: str) -> int:
        """How many ``contacts`` or ``deals`` the account holds."""
        with self.account.lock:
            return len(self.account.records[kind])

    def ids(self, kind: str) -> list[str]:
        """The ids of ``contacts`` or ``deals``, in numeric order."""
        with self.account.lock:
            return sorted(self.account.records[kind], key=int)

    def record(self, kind: str, record_id: str) -> dict[str, Any] | None:
        """A copy of one record as the API shows it."""
        with self.account.lock:
            record = self.account.records[kind].get(record_id)
            return json.loads(json.dumps(record)) if record is not None else None

    def value(self, record_id: str, name: str) -> str | None:
        """A contact's property value by name."""
        return self.account.value(record_id, name)

    def edit(self, kind: str, record_id: str, values: Mapping[str, Any]) -> None:
        """A person's edit in the app (``updated_time`` now)."""
        self.account.edit(kind, record_id, values)

    def delete(self, kind: str, record_id: str) -> bool:
        """A person's hard delete."""
        return self.account.delete(kind, record_id)

    def create_contact(self, values: Mapping[str, Any], email: str | None = None) -> str:
        """A contact a person adds (``updated_time`` 0)."""
        return self.account.create_contact(values, email)

    def add_fault(self, rule: FaultRule) -> FaultRule:
        """An emulator-specific fault (:data:`RECORD_FAULTS`)."""
        return self.faults.add(rule)

    def clear_faults(self) -> None:
        """Remove the emulator-specific faults."""
        self.faults.clear()

    def total_writes(self) -> int:
        """How many update-partial calls changed a contact."""
        return sum(self.account.writes.values())

    def max_writes_per_record(self) -> int:
        """The most update-partial calls any one contact received (1 when nothing was written twice)."""
        return max(self.account.writes.values(), default=0)

    # --- HTTP --------------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Serve one request."""
        try:
            return self._handle(request)
        except Problem as problem:
            return self._answer(request, problem.status, {"error": problem.message})
        except Exception:  # an emulator bug: an opaque 500, the trace kept for tests
            self.internal_errors.append(traceback.format_exc())
            return self._answer(request, 500, {"error": "Internal server error"})

    def _handle(self, request: Request) -> Response:
        if not request.path.startswith(ROOT):
            raise Problem(404, "Not found")
        path = request.path[len(ROOT):].strip("/")
        if request.headers.get("authorization", "").strip() != self.api_key:
            self.calls["401"] += 1
            return self._answer(request, 401, {"error": "UnAuthenticated User", "status": "401"})
        if self._throttled():
            self.throttled += 1
            return self._answer(request, 429, {"error": "Too many requests. Please try again later."})
        route, handler, args = self._route(request.method, path)
        self.calls[f"{request.method} {route}"] += 1
        status, payload = handler(request, *args)
        return self._answer(request, status, payload)

    def _throttled(self) -> bool:
        if self.rate_limit is None:
            return False
        with self._rate_lock:
            now = self._clock()
            while self._arrivals and now - self._arrivals[0] >= self.rate_window:
                self._arrivals.popleft()
            if len(self._arrivals) >= self.rate_limit:
                return True
            self._arrivals.append(now)
            return False

    def _route(self, method: str, path: str) -> tuple[str, Callable[..., tuple[int, Any]], tuple[str, ...]]:
        routes: list[tuple[str, str, Callable[..., tuple[int, Any]]]] = [
            ("POST", r"subscribers", self._list_contacts),
            ("PUT", r"subscribers/update-partial", self._update_contact),
            ("POST", r"subscribers/subscriber", self._create_contact),
            ("GET", r"subscribers/(\d+)", self._get_contact),
            ("DELETE", r"subscribers/(\d+)", self._delete_contact),
            ("POST", r"deals", self._list_deals),
            ("GET", r"deals/(\d+)", self._get_deal),
            ("DELETE", r"deals/(\d+)", self._delete_deal),
            ("GET", r"tracks", self._tracks),
            ("GET", r"customfields/list/([A-Z]+)", self._list_fields),
            ("POST", r"customfields", self._create_field),
            ("GET", r"users/profile/user-info", self._profile),
        ]
        for verb, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if match and verb == method:
                return f"{verb} {pattern}", handler, match.groups()
        raise Problem(404, "Not found")

    def _answer(self, request: Request, status: int, payload: Any) -> Response:
        wants_json = "application/json" in request.headers.get("accept", "")
        if isinstance(payload, Encoded):
            if wants_json:
                return Response(status, payload.text.encode(), {"Content-Type": "application/json"})
            payload = json.loads(payload.text)
        if wants_json:
            return Response.json(status, payload)
        return Response(status, to_xml(payload).encode(), {"Content-Type": "application/xml;charset=utf-8"})

    # --- contacts ----------------------------------------------------------------------------------------

    def _list_contacts(self, request: Request) -> tuple[int, Any]:
        return 200, self._page("contacts", request, None)

    def _get_contact(self, request: Request, record_id: str) -> tuple[int, Any]:
        record = self.record("contacts", record_id)
        if record is None:
            raise Problem(404, "Contact not found")
        return 200, [record]  # §1.2's example answer is a one-element list

    def _delete_contact(self, request: Request, record_id: str) -> tuple[int, Any]:
        if not self.account.delete("contacts", record_id):
            raise Problem(404, "Contact not found")
        return 204, ""

    def _create_contact(self, request: Request) -> tuple[int, Any]:
        body = _json(request)
        props = [p for p in body.get("properties") or [] if isinstance(p, dict)]
        email = next((str(p.get("value")) for p in props if p.get("name") == "email"), None)
        record_id = self.account.create_contact({}, email)
        with self.account.lock:
            record = self.account.records["contacts"][record_id]
            self.account.set_properties(record, [self._checked(p) for p in props if p.get("name") != "email"])
            self.account.touch()
        return 200, self.record("contacts", record_id)

    def _update_contact(self, request: Request) -> tuple[int, Any]:
        body = _json(request)
        record_id = str(body.get("id") or "")
        props = body.get("properties")
        if not record_id or not isinstance(props, list):
            raise Problem(400, "Invalid input. Please provide all the required fields.")
        rule = self.faults.take(RECORD_FAULTS, request.method, request.path)
        if rule is not None:
            self.account.delete("contacts", record_id)
        checked = [self._checked(p) for p in props if isinstance(p, dict)]
        with self.account.lock:
            record = self.account.records["contacts"].get(record_id)
            if record is None:
                raise Problem(404, "Contact not found")
            self.account.set_properties(record, checked)
            record["updated_time"] = self.account.now()
            self.account.writes[record_id] += 1
            self.account.touch()
        return 200, self.record("contacts", record_id)

    def _checked(self, prop: Mapping[str, Any]) -> dict[str, Any]:
        """A property as stored, or a 400 naming the field when its value does not fit the field's type."""
        name = str(prop.get("name") or "")
        value = prop.get("value")
        if not name or value is None:
            # README §1.3: "Please don't pass null value."
            raise Problem(400, f"Invalid input. Property '{name}' has no value.")
        text = str(value)
        with self.account.lock:
            field = self.account.field("CONTACT", name) if prop.get("type") == "CUSTOM" else None
        kind = str(field["field_type"]) if field else str(prop.get("field_type") or "TEXT")
        if text and kind == "NUMBER":
            try:
                float(text)
            except ValueError:
                raise Problem(400, f"Invalid value '{text[:40]}' for the number field {name}") from None
        if text and kind == "CHECKBOX" and text not in ("true", "false"):
            raise Problem(400, f"Invalid value '{text[:40]}' for the checkbox field {name}")
        if text and kind == "DATE" and self.account.parse_date(text) is None:
            raise Problem(400, f"Invalid date '{text[:40]}' for the field {name}: expected "
                               f"{self.account.date_format}")
        return {"name": name, "value": text, "field_type": kind, "is_searchable": False,
                "type": "CUSTOM" if prop.get("type") == "CUSTOM" else "SYSTEM",
                **({"subtype": prop["subtype"]} if prop.get("subtype") else {})}

    # --- deals and tracks --------------------------------------------------------------------------------

    def _list_deals(self, request: Request) -> tuple[int, Any]:
        form = _params(request)
        with self.account.lock:
            default = next(t for t in self.account.tracks if t.get("isDefault"))
            track = form.get("track_id") or str(default["id"])
            if track not in {str(t["id"]) for t in self.account.tracks}:
                raise Problem(400, f"Invalid track_id {track[:40]}")
        return 200, self._page("deals", request, track)

    def _get_deal(self, request: Request, record_id: str) -> tuple[int, Any]:
        record = self.record("deals", record_id)
        if record is None:
            raise Problem(404, "Deal not found")
        return 200, record

    def _delete_deal(self, request: Request, record_id: str) -> tuple[int, Any]:
        if not self.account.delete("deals", record_id):
            raise Problem(404, "Deal not found")
        return 204, ""

    def _tracks(self, request: Request) -> tuple[int, Any]:
        with self.account.lock:
            return 200, json.loads(json.dumps(self.account.tracks))

    # --- custom fields and profile -----------------------------------------------------------------------

    def _list_fields(self, request: Request, scope: str) -> tuple[int, Any]:
        if scope not in SCOPES:
            raise Problem(400, f"Invalid scope {scope}: one of {', '.join(SCOPES)}")
        with self.account.lock:
            return 200, json.loads(json.dumps(self.account.fields[scope]))

    def _create_field(self, request: Request) -> tuple[int, Any]:
        body = _json(request)
        scope, label, kind = (str(body.get(k) or "") for k in ("scope", "field_label", "field_type"))
        if scope not in SCOPES or not label or kind not in FIELD_TYPES:
            raise Problem(400, "Invalid input. Please provide all the required fields.")
        with self.account.lock:
            if self.account.field(scope, label) is not None:
                raise Problem(400, f"A custom field named {label} already exists")
            item = self.account.add_field(scope, label, kind, str(body.get("field_description") or ""))
            return 200, json.loads(json.dumps(item))

    def _profile(self, request: Request) -> tuple[int, Any]:
        return 200, {"name": "Sandbox Admin", "email": "admin@sandbox.example"}

    # --- paging ------------------------------------------------------------------------------------------

    def _page(self, kind: str, request: Request, track: str | None) -> Encoded:
        params = _params(request)
        sort_key = params.get("sort_key") or "created_time"
        if sort_key not in SORT_KEYS:
            raise Problem(400, f"Invalid sort_key {sort_key[:40]}")
        try:
            size = min(MAX_PAGE, max(1, int(params.get("page_size") or DEFAULT_PAGE)))
        except ValueError:
            raise Problem(400, "Invalid page_size") from None
        field = sort_key.lstrip("-")
        descending = sort_key.startswith("-")
        start = _decode(params.get("cursor"), sort_key)
        with self.account.lock:
            records = self.account.records[kind]
            # Index order: (value, id) ascending, or (-value, id) for descending (ties by id ascending either way).
            rows = self.account.order(kind, field, descending)
            index = 0 if start is None else self.account.after(rows, (-start[0] if descending else start[0],
                                                                      start[1]))
            out: list[dict[str, Any]] = []
            last: tuple[int, int] | None = None
            for key, record_id in rows[index:]:
                record = records.get(str(record_id))
                if record is None or (track is not None and str(record.get("track_id")) != track):
                    continue
                out.append(record)
                last = (-key if descending else key, record_id)
                if len(out) == size:
                    break
            if len(out) == size and last is not None:
                out[-1] = {**out[-1], "cursor": _encode(sort_key, last)}
            # Encoded under the lock: a person's edit on another thread must not change a record mid-answer.
            return Encoded(json.dumps(out, separators=(",", ":")))


def _params(request: Request) -> dict[str, str]:
    """Form fields of the body (§1.1's ``-d "page_size=10&sort_key=-created_time"``), then the query's."""
    out = {k: v[0] for k, v in request.query.items() if v}
    if "json" not in request.headers.get("content-type", ""):
        out.update({k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()})
    return out


def _json(request: Request) -> dict[str, Any]:
    try:
        body = request.json()
    except ValueError:
        raise Problem(400, "Invalid input. The body is not JSON.") from None
    if not isinstance(body, dict):
        raise Problem(400, "Invalid input. Please provide all the required fields.")
    return body


def _encode(sort_key: str, position: tuple[int, int]) -> str:
    raw = json.dumps({"k": sort_key, "v": position[0], "i": position[1]}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str | None, sort_key: str) -> tuple[int, int] | None:
    if not cursor:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if data["k"] != sort_key:
            raise ValueError("cursor of another sort order")
        return int(data["v"]), int(data["i"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise Problem(400, "Invalid cursor") from None


def to_xml(payload: Any, tag: str = "response") -> str:
    """A JSON-shaped answer as XML, which EngageBay sends when ``Accept`` does not ask for JSON."""
    if isinstance(payload, list):
        inner = "".join(to_xml(item, "item") for item in payload)
    elif isinstance(payload, dict):
        inner = "".join(to_xml(value, str(key)) for key, value in payload.items())
    else:
        inner = escape("" if payload is None else str(payload))
    return f"<{tag}>{inner}</{tag}>"
