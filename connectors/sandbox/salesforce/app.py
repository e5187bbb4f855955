"""The Salesforce emulator app: routing, authentication, API usage, emulator-specific faults, introspection.

Every ``/services/data`` request needs ``Authorization: Bearer <session id>``; an unknown or expired one gets
``401 [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]``. Each authenticated
request counts against ``DailyApiRequests`` and every response carries ``Sforce-Limit-Info: api-usage=N/M``
(the header simple-salesforce parses into ``api_usage``). Once the daily allocation is used up, requests get
``403 [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]`` (REST API status
codes: "If the error code is REQUEST_LIMIT_EXCEEDED, you've exceeded API request limits in your org";
message as reported in https://sfdecoded.github.io/errors/request-limit-exceeded.html).

Emulator-specific faults reuse :class:`connectors.sandbox.faults.FaultRule` (matched on method and path prefix,
with ``rate``/``count``/``after``), with these kinds:

* ``expired_session`` — the request's session is invalidated and answered 401 ``INVALID_SESSION_ID``;
* ``daily_limit`` — answered 403 ``REQUEST_LIMIT_EXCEEDED``;
* ``lock_row`` — per record of a write: ``UNABLE_TO_LOCK_ROW``;
* ``trigger_lock`` — per record: a trigger on the record failed to lock a *related* row, which the API reports
  as ``CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY`` wrapping the ``UNABLE_TO_LOCK_ROW`` of the trigger's own DML
  (message shape as quoted in SFDO-Community/declarative-lookup-rollup-summaries#1241 and #847): as transient
  as a plain lock;
* ``ingest_failure`` — per internal batch (200 rows) of a Bulk ingest job: the batch fails for good (Salesforce
  retries a failed batch up to 20 times, then "the entire ingest job is moved to the Failed state and remaining
  job data isn't processed"; rows already processed are not rolled back,
  https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_bulk_v2/datafiles_understanding_bulk2_ingest.htm);
* ``validation`` — per record: ``FIELD_CUSTOM_VALIDATION_EXCEPTION`` (message from ``rule.body`` if a string);
* ``deleted_before_write`` — per record: the record is deleted just before the write, which then fails
  ``ENTITY_IS_DELETED`` (a person deleted it between our read and our write).

Per-record kinds match the write request's path (``/services/data/vXX.X/composite/sobjects``, an sObject row,
or ``/services/data/vXX.X/jobs/ingest/{id}/batches`` with method ``PUT`` for Bulk ingest rows). Latency,
5xx, timeouts and dropped connections come from the server's generic :class:`FaultInjector`.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from connectors.sandbox.faults import FaultInjector, FaultRule
from connectors.sandbox.salesforce import bulk as bulk_api
from connectors.sandbox.salesforce import rest, tooling
from connectors.sandbox.salesforce.auth import Credentials, Logins, Sessions
from connectors.sandbox.salesforce.currency import enable_multicurrency
from connectors.sandbox.salesforce.errors import ApiError, RecordError, invalid_session, not_found
from connectors.sandbox.salesforce.seed import SeedResult, seed
from connectors.sandbox.salesforce.store import DuplicateRule, Record, Store, ValidationRule
from connectors.sandbox.salesforce.values import to_json
from connectors.sandbox.server import Request, Response
from core.models import Contact, Deal, FieldType

#: Bumped when a saved org's layout changes: an older file is refused, not misread.
_SAVE_VERSION = 1

API_VERSIONS: dict[str, str] = {
    "52.0": "Summer '21", "53.0": "Winter '22", "54.0": "Spring '22", "55.0": "Summer '22", "56.0": "Winter '23",
    "57.0": "Spring '23", "58.0": "Summer '23", "59.0": "Winter '24", "60.0": "Spring '24", "61.0": "Summer '24",
    "62.0": "Winter '25", "63.0": "Spring '25", "64.0": "Summer '25", "65.0": "Winter '26", "66.0": "Spring '26",
    "67.0": "Summer '26", "68.0": "Winter '27",
}
"""API versions the emulator answers, through the current release of December 2026: Winter '27 is 68.0
(GET /services/data lists them, developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_versions.htm;
68.0 = Winter '27 as in forcedotcom/dataloader#1665 and camunda/connectors#8453). simple-salesforce 1.12 defaults
to 59.0."""

DEFAULT_API_VERSION = "59.0"
DEFAULT_DAILY_LIMIT = 100_000
#: Seconds every Bulk job stays queued (see :mod:`connectors.sandbox.salesforce.bulk`).
DEFAULT_BULK_DELAY = 0.2

_DATA = re.compile(r"^/services/data/v(\d+\.\d)(/.*)?$")
_SOAP = re.compile(r"^/services/Soap/u/(\d+\.\d)(/.*)?$")
_IDENTITY = re.compile(r"^/id/([^/]+)/([^/]+)/?$")
COMPOSITE_MAX, COMPOSITE_MAX_QUERIES = 25, 5
RECORD_FAULTS = ("lock_row", "trigger_lock", "validation", "deleted_before_write", "ingest_failure")
REQUEST_FAULTS = ("expired_session", "daily_limit")

Handler = Callable[[rest.Context, tuple[str, ...]], Response]


class SalesforceEmulator:
    """An emulated Salesforce org behind the REST, Tooling, Bulk 2.0, OAuth and SOAP-login endpoints.

    Thread-safe; serve it with :class:`connectors.sandbox.server.SandboxServer` (see
    :func:`connectors.sandbox.salesforce.start_salesforce_sandbox`).
    """

    def __init__(self, *, credentials: Credentials | None = None, daily_api_limit: int | None = DEFAULT_DAILY_LIMIT,
                 clock: Callable[[], datetime] | None = None, bulk_delay: float = DEFAULT_BULK_DELAY,
                 session_ttl: timedelta | None = timedelta(hours=2), max_query_cursors: int = 10,
                 access_token: str | None = None, fault_seed: int = 0, org_name: str = "crm-lifecycle sandbox",
                 is_sandbox: bool = False, base_url: str | None = None, late_commits: float = 0.02,
                 store: Store | None = None) -> None:
        """``late_commits``: the share of person edits whose transaction commits seconds to minutes after their
        ``SystemModstamp`` (see :mod:`connectors.sandbox.salesforce.consistency`); 0 commits every edit at once.
        ``store``: an org saved before (see :meth:`load`) instead of a new one."""
        self.credentials = credentials or Credentials()
        self.store = store or Store(clock=clock, username=self.credentials.username, org_name=org_name,
                           is_sandbox=is_sandbox, late_commits=late_commits)
        self.sessions = Sessions(self.store, session_ttl)
        self.logins = Logins(self.store, self.sessions, self.credentials)
        self.cursors = rest.QueryCursors(self.store, max_query_cursors)
        self.bulk = bulk_api.BulkJobs(self.store, bulk_delay, self._record_faults)
        self.daily_api_limit = daily_api_limit
        self.base_url = base_url
        self.session_id = self.sessions.issue(access_token)
        """A valid session id for the integration user (what ``Salesforce(session_id=...)`` takes)."""
        self.admin_session_id = self.sessions.issue(user_id=self.store.org.admin_user_id)
        """A valid session id for the org's admin (System Administrator: may create fields and grant access)."""
        self.api_usage = 0
        self.request_counts: Counter[str] = Counter()
        self.internal_errors: list[str] = []
        self._faults = FaultInjector(fault_seed)
        self._lock = threading.Lock()
        self._routes = self._build_routes()

    # ------------------------------------------------------------ a sandbox a user comes back to

    def save(self, path: Path) -> None:
        """Write the org (records, schema with our custom fields, permissions, users' sessions and credentials)
        to ``path``, replacing it atomically: ``clm sandbox serve --state`` restores it on the next start.

        A pickle, as the org is a graph of the emulator's own objects; :meth:`load` reads only a file private
        to the user running it, since unpickling runs code.
        """
        with self.store.lock:
            blob = pickle.dumps({"version": _SAVE_VERSION, "store": self.store, "credentials": self.credentials,
                                 "sessions": self.sessions.snapshot(), "session_id": self.session_id,
                                 "admin_session_id": self.admin_session_id}, protocol=pickle.HIGHEST_PROTOCOL)
        path = Path(path)
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(blob)
        partial.chmod(0o600)  # personal data, and code to the unpickler: private to its owner
        partial.replace(path)

    @classmethod
    def load(cls, path: Path, **options: Any) -> SalesforceEmulator:
        """An emulator with the org :meth:`save` wrote to ``path`` (``options`` as for the constructor)."""
        path = Path(path)
        info = path.stat()
        if info.st_uid != os.getuid() or info.st_mode & 0o022:
            raise PermissionError(f"{path} is not private to this user (unpickling it would run its code)")
        try:
            saved = pickle.loads(path.read_bytes())  # our own private file, checked above
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError) as exc:
            raise ValueError(f"{path} is not a saved org ({exc})") from None
        if not isinstance(saved, dict) or saved.get("version") != _SAVE_VERSION:
            raise ValueError(f"{path} was saved by another version of the sandbox")
        emulator = cls(credentials=saved["credentials"], store=saved["store"], access_token=saved["session_id"],
                       **options)
        emulator.sessions.restore(saved["sessions"])
        emulator.admin_session_id = saved["admin_session_id"]
        return emulator

    # ------------------------------------------------------------ seeding & people

    def seed(self, contacts: Iterable[Contact], deals: Iterable[Deal], *,
             deal_properties: Mapping[str, FieldType] | None = None) -> SeedResult:
        """Load our records (see :mod:`connectors.sandbox.salesforce.seed`); returns the Id mappings."""
        return seed(self.store, contacts, deals, deal_properties=deal_properties)

    def enable_multicurrency(self, corporate: str, rates: Mapping[str, float], *,
                             dated: Mapping[str, Sequence[tuple[date, float]]] | None = None,
                             user_currency: str | None = None) -> None:
        """Turn on multiple currencies, and advanced currency management with ``dated`` periods, as an admin
        would (see :mod:`connectors.sandbox.salesforce.currency`); seed afterwards to give deals their currency."""
        enable_multicurrency(self.store, corporate, rates, dated=dated, user_currency=user_currency)

    def edit(self, record_id: str, values: Mapping[str, Any], *, commit_after: float | None = None) -> Record:
        """Change a record as a person would (stamps ``LastModifiedDate``/``SystemModstamp`` now); readable once
        committed, ``commit_after`` seconds later (None: most at once, a share late, see ``late_commits``)."""
        return dict(self.store.edit(record_id, values, commit_after=commit_after))

    def create(self, sobject: str, values: Mapping[str, Any], *, commit_after: float = 0.0) -> str:
        """Create a record as a person or another integration would, readable ``commit_after`` seconds after
        its ``CreatedDate``/``SystemModstamp``; returns its Id."""
        obj = self.store.object(sobject)
        if obj is None:
            raise KeyError(sobject)
        return self.store.insert(obj, values, commit_after=commit_after)

    def delete(self, record_id: str) -> bool:
        """Delete a record as a person would (recycle bin: ``IsDeleted``, visible to ``queryAll``; a contact role
        deleted by itself is hard-deleted, known only to getDeleted)."""
        return self.store.delete(record_id)

    def empty_recycle_bin(self) -> int:
        """An administrator empties the Recycle Bin (deleted records are physically deleted); returns how many."""
        return self.store.empty_recycle_bin()

    def undelete(self, record_id: str) -> bool:
        """Restore a record from the recycle bin."""
        return self.store.undelete(record_id)

    def merge(self, master_id: str, *loser_ids: str) -> None:
        """Merge records into ``master_id`` (losers deleted with ``MasterRecordId``; contact roles move)."""
        self.store.merge(master_id, loser_ids)

    def convert_lead(self, lead_id: str, *, contact_id: str | None = None, account_id: str | None = None,
                     field_map: Mapping[str, str] | None = None) -> str:
        """Convert a lead into a new (or the given) Contact and Account; returns the Contact's Id (see
        :meth:`connectors.sandbox.salesforce.store.Store.convert_lead`)."""
        return self.store.convert_lead(lead_id, contact_id=contact_id, account_id=account_id, field_map=field_map)

    def record(self, record_id: str) -> Record | None:
        """A copy of a stored record (all fields, visible or not)."""
        with self.store.lock:
            found = self.store.get(record_id)
            return dict(found) if found else None

    def add_validation_rule(self, rule: ValidationRule) -> ValidationRule:
        """Activate a validation rule (``FIELD_CUSTOM_VALIDATION_EXCEPTION`` when its condition holds)."""
        with self.store.lock:
            self.store.validation_rules.append(rule)
        return rule

    def add_duplicate_rule(self, rule: DuplicateRule) -> DuplicateRule:
        """Activate a duplicate rule (``DUPLICATES_DETECTED`` on saves of records that match another)."""
        with self.store.lock:
            self.store.duplicate_rules.append(rule)
        return rule

    def create_permission_set(self, name: str, label: str | None = None, *, assign: bool = True) -> str:
        """Create a permission set (optionally assigned to the integration user), as an admin would."""
        with self.store.lock, self.store.acting_as(self.store.org.admin_user_id):
            permission_set = self.store.create(self.store.objects["PermissionSet"],
                                               {"Name": name, "Label": label or name}, source="admin")
            if assign:
                self.store.create(self.store.objects["PermissionSetAssignment"],
                                  {"AssigneeId": self.store.org.user_id, "PermissionSetId": permission_set["Id"]},
                                  source="admin")
        return str(permission_set["Id"])

    def grant_field(self, permission_set_id: str, field: str, *, edit: bool = True) -> None:
        """Grant Read (and Edit) on ``Object.Field__c`` through a permission set, as an admin would in Setup."""
        sobject = field.partition(".")[0]
        with self.store.lock, self.store.acting_as(self.store.org.admin_user_id):
            self.store.create(self.store.objects["FieldPermissions"], {
                "ParentId": permission_set_id, "SobjectType": sobject, "Field": field, "PermissionsRead": True,
                "PermissionsEdit": edit}, source="admin")

    def field_access(self, sobject: str, field: str) -> tuple[bool, bool]:
        """(readable, editable) of a field for the integration user."""
        obj = self.store.object(sobject)
        definition = obj.field(field) if obj else None
        if obj is None or definition is None:
            return False, False
        return self.store.readable(obj, definition), self.store.editable(obj, definition)

    # ------------------------------------------------------------ sessions, limits, faults

    def new_session(self) -> str:
        """Issue another valid session id."""
        return self.sessions.issue()

    def expire_sessions(self, token: str | None = None) -> None:
        """Invalidate one session id (or all): later requests get 401 ``INVALID_SESSION_ID``."""
        self.sessions.expire(token)

    def revoke_refresh_tokens(self) -> None:
        """Revoke the integration user's refresh tokens: the refresh-token flow then gets ``invalid_grant``."""
        self.logins.revoke_refresh_tokens()

    def set_api_usage(self, used: int) -> None:
        """Set how many API requests the org has used in the current 24 hours."""
        with self._lock:
            self.api_usage = used

    def add_fault(self, rule: FaultRule) -> FaultRule:
        """Activate an emulator-specific fault (kinds in the module docstring); returns it for ``fired``."""
        if rule.kind not in RECORD_FAULTS + REQUEST_FAULTS:
            raise ValueError(f"unknown Salesforce fault kind {rule.kind!r}; generic faults go to the server's "
                             "FaultInjector")
        return self._faults.add(rule)

    def clear_faults(self) -> None:
        """Remove every emulator-specific fault."""
        self._faults.clear()

    def _fires(self, kinds: Iterable[str], method: str, path: str) -> FaultRule | None:
        return self._faults.take(kinds, method, path)

    def _record_faults(self, method: str, path: str) -> rest.RecordFaults:
        def before(record_id: str | None) -> RecordError | None:
            rule = self._fires(("lock_row", "trigger_lock", "deleted_before_write"), method, path)
            if rule is None:
                return None
            if rule.kind == "deleted_before_write":
                if record_id:
                    self.store.delete(record_id)
                return None
            if rule.kind == "trigger_lock":
                related = f"001{(record_id or '')[3:15]}"  # the Account the trigger rolls up to
                return RecordError(
                    "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
                    "ClmRollupTrigger: execution of AfterUpdate\n\ncaused by: System.DmlException: Update failed. "
                    f"First exception on row 0 with id {related}; first error: UNABLE_TO_LOCK_ROW, unable to "
                    "obtain exclusive access to this record: []\n\nTrigger.ClmRollupTrigger: line 7, column 1", [])
            return RecordError("UNABLE_TO_LOCK_ROW",
                               f"unable to obtain exclusive access to this record or 1 records: {record_id}", [])

        def after(record_id: str | None) -> RecordError | None:
            rule = self._fires(("validation",), method, path)
            if rule is None:
                return None
            message = rule.body if isinstance(rule.body, str) else "Record failed an injected validation rule"
            return RecordError("FIELD_CUSTOM_VALIDATION_EXCEPTION", message, [])

        def batch_fails() -> str | None:
            rule = self._fires(("ingest_failure",), method, path)
            if rule is None:
                return None
            # The real errorMessage of a job failed this way is not documented; this one names the cause.
            return rule.body if isinstance(rule.body, str) else (
                "InternalServerError : a batch of the job could not be processed after 20 retries")

        return rest.RecordFaults(before, after, batch_fails)

    # ------------------------------------------------------------ introspection

    def writes_to(self, record_id: str) -> dict[str, int]:
        """How many times each field of a record was written through the API."""
        with self.store.lock:
            return {field: n for (rid, field), n in self.store.writes.items() if rid == record_id}

    def max_writes_per_field(self) -> int:
        """The most times any one field of any one record was written through the API (1 = nothing twice)."""
        with self.store.lock:
            return max(self.store.writes.values(), default=0)

    def total_writes(self) -> int:
        """Field values written through the API (REST and Bulk)."""
        with self.store.lock:
            return sum(self.store.writes.values())

    def reset_counters(self) -> None:
        """Zero request counts, API usage and the write log (records keep their values)."""
        # Never hold both locks: request threads take the store lock, then this one (per-record faults).
        with self._lock:
            self.request_counts.clear()
            self.api_usage = 0
        with self.store.lock:
            self.store.writes.clear()
            self.store.write_log.clear()

    # ------------------------------------------------------------ HTTP

    def _base_url(self, request: Request) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        host = request.headers.get("host", "localhost")
        return f"https://{host}"

    def _limit_header(self) -> dict[str, str]:
        limit = self.daily_api_limit if self.daily_api_limit is not None else 5_000_000
        return {"Sforce-Limit-Info": f"api-usage={self.api_usage}/{limit}"}

    def handle(self, request: Request) -> Response:
        """Serve one request (the :class:`connectors.sandbox.server.App` protocol)."""
        try:
            return self._handle(request)
        except ApiError as error:
            return rest.json_response(error.status, error.body())
        except Exception:  # an emulator bug: answer like Salesforce's opaque 500 and keep the trace for tests
            self.internal_errors.append(traceback.format_exc())
            return rest.json_response(500, [{"errorCode": "UNKNOWN_EXCEPTION",
                                             "message": "An unexpected error occurred. Please include this ErrorId "
                                                        "if you contact support: 1234567890-12345 (-1234567890)"}])

    def _handle(self, request: Request) -> Response:
        path = request.path
        if path.rstrip("/") == "/services/data":
            self._count(request.method, "/services/data")
            return rest.json_response(200, [{"label": label, "url": f"/services/data/v{v}", "version": v}
                                            for v, label in API_VERSIONS.items()])
        if path.rstrip("/") == "/services/oauth2/token":
            self._count(request.method, "/services/oauth2/token")
            if request.method != "POST":
                raise not_found()
            form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
            status, payload = self.logins.token(form, request.headers.get("authorization"), self._base_url(request),
                                                request.headers.get("host"))
            return Response.json(status, payload)
        soap = _SOAP.match(path)
        if soap:
            self._count(request.method, "/services/Soap/u")
            if request.method != "POST":
                raise not_found()
            status, xml = self.logins.soap_login(request.body, soap.group(1), self._base_url(request))
            return Response(status, xml.encode(), {"Content-Type": "text/xml;charset=UTF-8"})
        if path.rstrip("/") == "/services/oauth2/userinfo" or _IDENTITY.match(path):
            self._count(request.method, "/services/oauth2/userinfo" if "oauth2" in path else "/id")
            caller = self.sessions.lookup(request.headers.get("authorization"))
            if caller is None:
                return Response.json(403, "Bad_OAuth_Token") if "oauth2" in path else Response.json(
                    403, "Forbidden")
            return rest.json_response(200, self.logins.identity(self._base_url(request), caller.user_id))
        match = _DATA.match(path)
        if not match:
            raise not_found()
        version, rest_path = match.group(1), (match.group(2) or "").rstrip("/")
        if version not in API_VERSIONS:
            raise not_found()
        route, handler, args = self._route(request.method, rest_path)
        self._count(request.method, route)
        session = self.sessions.lookup(request.headers.get("authorization"))
        if session is None:
            raise invalid_session()
        rule = self._fires(REQUEST_FAULTS, request.method, path)
        if rule is not None and rule.kind == "expired_session":
            self.sessions.expire(session.token)
            raise invalid_session()
        with self._lock:
            exhausted = rule is not None or (self.daily_api_limit is not None
                                             and self.api_usage >= self.daily_api_limit)
            if not exhausted:
                self.api_usage += 1
        if exhausted:
            response = rest.json_response(403, [{"message": "TotalRequests Limit exceeded.",
                                                 "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
        else:
            context = rest.Context(request, version, self.store, self._record_faults(request.method, path))
            try:
                with self.store.acting_as(session.user_id):
                    response = handler(context, args)
            except ApiError as error:
                response = rest.json_response(error.status, error.body())
        response.headers.update(self._limit_header())
        return response

    def _count(self, method: str, route: str) -> None:
        with self._lock:
            self.request_counts[f"{method} {route}"] += 1

    def _composite(self, ctx: rest.Context, _args: tuple[str, ...]) -> Response:
        """``POST composite``: up to 25 subrequests, at most 5 of them queries or sObject Collections, run in
        order as the same user; the whole call counts once against the API limits ("The entire series of
        requests counts as a single call toward your API limits",
        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite_post.htm).

        Subrequests are independent (``allOrNone`` false): each answers its own status and body. References
        between subrequests (``@{ref.field}``) are not modelled; the exact error text for too many subrequests is
        not documented, so the emulator answers a 400 naming the limit.
        """
        body = ctx.request.json()
        subrequests = body.get("compositeRequest") if isinstance(body, dict) else None
        if not isinstance(subrequests, list) or not subrequests:
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body must hold a compositeRequest list")
        if body.get("allOrNone"):
            raise ApiError(400, "INVALID_API_INPUT", "allOrNone composite requests are not modelled by the sandbox")
        if len(subrequests) > COMPOSITE_MAX:
            raise ApiError(400, "INVALID_API_INPUT", f"Composite requests may hold at most {COMPOSITE_MAX} "
                                                     f"subrequests; this one holds {len(subrequests)}")
        answers = []
        queries = 0
        for sub in subrequests:
            method, url = str(sub.get("method") or "GET").upper(), str(sub.get("url") or "")
            path, _, query_text = url.partition("?")
            match = _DATA.match(path)
            if not match or match.group(1) not in API_VERSIONS:
                raise ApiError(400, "INVALID_API_INPUT", f"Invalid subrequest url: {url[:200]}")
            rest_path = (match.group(2) or "").rstrip("/")
            if rest_path.startswith(("/query", "/queryAll", "/composite/sobjects")):
                queries += 1
                if queries > COMPOSITE_MAX_QUERIES:
                    raise ApiError(400, "INVALID_API_INPUT", f"Composite requests may hold at most "
                                                             f"{COMPOSITE_MAX_QUERIES} query or sObject Collections "
                                                             "subrequests")
            elif not rest_path.startswith("/sobjects"):
                raise ApiError(400, "INVALID_API_INPUT", f"Resource not supported in a composite request: {path}")
            sub_body = sub.get("body")
            request = Request(method, path, parse_qs(query_text), {**ctx.request.headers, **(sub.get(
                "httpHeaders") or {})}, json.dumps(sub_body).encode() if sub_body is not None else b"")
            try:
                route, handler, args = self._route(method, rest_path)
                self._count(method, f"composite{route}")
                answer = handler(rest.Context(request, match.group(1), self.store,
                                              self._record_faults(method, path)), args)
            except ApiError as error:
                answer = rest.json_response(error.status, error.body())
            answers.append({"body": json.loads(answer.body) if answer.body else None,
                            "httpHeaders": {k: v for k, v in answer.headers.items() if k != "Content-Type"},
                            "httpStatusCode": answer.status, "referenceId": sub.get("referenceId")})
        return rest.json_response(200, {"compositeResponse": answers})

    # ------------------------------------------------------------ routing table

    def _route(self, method: str, rest_path: str) -> tuple[str, Handler, tuple[str, ...]]:
        for pattern, template, handlers in self._routes:
            found = pattern.match(rest_path)
            if found:
                handler = handlers.get(method)
                if handler is None:
                    raise ApiError(405, "METHOD_NOT_ALLOWED",
                                   f"HTTP Method '{method}' not allowed. Allowed are {','.join(sorted(handlers))}")
                return template, handler, found.groups()
        raise not_found()

    def _build_routes(self) -> list[tuple[re.Pattern[str], str, dict[str, Handler]]]:
        cursors, jobs = self.cursors, self.bulk

        def usage_limits(ctx: rest.Context, _args: tuple[str, ...]) -> Response:
            return rest.limits(ctx, self.api_usage, self.daily_api_limit, jobs.query_jobs_created, jobs.batches)

        def create_field(ctx: rest.Context, _args: tuple[str, ...]) -> Response:
            return rest.json_response(201, tooling.create_custom_field(ctx.store, ctx.request.json()))

        def custom_field(ctx: rest.Context, args: tuple[str, ...]) -> Response:
            method = ctx.request.method
            if method == "GET":
                return rest.json_response(200, _json_row(ctx, tooling.get_custom_field(ctx.store, args[0])))
            if method == "PATCH":
                tooling.update_custom_field(ctx.store, args[0], ctx.request.json())
                return Response(204)
            row = ctx.store.get(args[0])
            found = ctx.store.field_for_tooling_id(row["Id"]) if row else None
            if found is None:
                raise not_found()
            tooling.require_customize(ctx.store)
            ctx.store.remove_field(found[0], found[1].name)
            return Response(204)

        table: list[tuple[str, str, dict[str, Handler]]] = [
            (r"", "/", {"GET": lambda c, a: rest.resources(c)}),
            (r"/query", "/query", {"GET": lambda c, a: rest.query(c, cursors, include_deleted=False)}),
            (r"/queryAll", "/queryAll", {"GET": lambda c, a: rest.query(c, cursors, include_deleted=True)}),
            (r"/query/([^/]+)", "/query/{locator}", {"GET": lambda c, a: rest.query_more(c, cursors, a[0])}),
            (r"/queryAll/([^/]+)", "/queryAll/{locator}", {"GET": lambda c, a: rest.query_more(c, cursors, a[0])}),
            (r"/limits", "/limits", {"GET": usage_limits}),
            (r"/sobjects", "/sobjects", {"GET": lambda c, a: rest.describe_global(c)}),
            (r"/sobjects/(\w+)", "/sobjects/{sobject}", {"GET": lambda c, a: rest.object_info(c, a[0]),
                                                         "POST": lambda c, a: rest.create_row(c, a[0])}),
            (r"/sobjects/(\w+)/describe", "/sobjects/{sobject}/describe",
             {"GET": lambda c, a: rest.describe(c, a[0])}),
            (r"/sobjects/(\w+)/updated", "/sobjects/{sobject}/updated", {"GET": lambda c, a: rest.updated(c, a[0])}),
            (r"/sobjects/(\w+)/deleted", "/sobjects/{sobject}/deleted", {"GET": lambda c, a: rest.deleted(c, a[0])}),
            (r"/sobjects/(\w+)/(\w+)", "/sobjects/{sobject}/{id}", {
                "GET": lambda c, a: rest.get_row(c, a[0], a[1]), "PATCH": lambda c, a: rest.update_row(c, a[0], a[1]),
                "DELETE": lambda c, a: rest.delete_row(c, a[0], a[1])}),
            (r"/composite", "/composite", {"POST": self._composite}),
            (r"/composite/sobjects", "/composite/sobjects", {
                "PATCH": lambda c, a: rest.collection_update(c), "POST": lambda c, a: rest.collection_create(c),
                "DELETE": lambda c, a: rest.collection_delete(c)}),
            (r"/composite/sobjects/(\w+)", "/composite/sobjects/{sobject}",
             {"GET": lambda c, a: rest.collection_retrieve(c, a[0])}),
            (r"/tooling/query", "/tooling/query",
             {"GET": lambda c, a: rest.query(c, cursors, include_deleted=False, tooling=True)}),
            (r"/tooling/query/([^/]+)", "/tooling/query/{locator}",
             {"GET": lambda c, a: rest.query_more(c, cursors, a[0], tooling=True)}),
            (r"/tooling/sobjects", "/tooling/sobjects", {"GET": lambda c, a: rest.describe_global(c, tooling=True)}),
            (r"/tooling/sobjects/(\w+)/describe", "/tooling/sobjects/{sobject}/describe",
             {"GET": lambda c, a: rest.describe(c, a[0], tooling=True)}),
            (r"/tooling/sobjects/CustomField", "/tooling/sobjects/CustomField", {"POST": create_field}),
            (r"/tooling/sobjects/CustomField/(\w+)", "/tooling/sobjects/CustomField/{id}",
             {"GET": custom_field, "PATCH": custom_field, "DELETE": custom_field}),
            (r"/jobs/query", "/jobs/query", {"POST": lambda c, a: jobs.create_query(c),
                                             "GET": lambda c, a: jobs.list_jobs("query")}),
            (r"/jobs/query/(\w+)", "/jobs/query/{id}", {
                "GET": lambda c, a: jobs.get_query(a[0]), "PATCH": lambda c, a: jobs.patch(c, a[0], "query"),
                "DELETE": lambda c, a: jobs.delete(a[0], "query")}),
            (r"/jobs/query/(\w+)/results", "/jobs/query/{id}/results",
             {"GET": lambda c, a: jobs.query_results(c, a[0])}),
            (r"/jobs/query/(\w+)/resultPages", "/jobs/query/{id}/resultPages",
             {"GET": lambda c, a: jobs.result_pages(c, a[0])}),
            (r"/jobs/ingest", "/jobs/ingest", {"POST": lambda c, a: jobs.create_ingest(c),
                                               "GET": lambda c, a: jobs.list_jobs("ingest")}),
            (r"/jobs/ingest/(\w+)", "/jobs/ingest/{id}", {
                "GET": lambda c, a: jobs.get_ingest(a[0]), "PATCH": lambda c, a: jobs.patch(c, a[0], "ingest"),
                "DELETE": lambda c, a: jobs.delete(a[0], "ingest")}),
            (r"/jobs/ingest/(\w+)/batches", "/jobs/ingest/{id}/batches", {"PUT": lambda c, a: jobs.upload(c, a[0])}),
            (r"/jobs/ingest/(\w+)/(?i:(successfulResults|failedResults|unprocessedrecords))",
             "/jobs/ingest/{id}/{results}", {"GET": lambda c, a: jobs.ingest_results(a[0], a[1].lower())}),
            (r"/chatter/users/me", "/chatter/users/me", {"GET": lambda c, a: rest.chatter_me(c)}),
        ]
        return [(re.compile(f"^{pattern}$"), template, handlers) for pattern, template, handlers in table]


def _json_row(ctx: rest.Context, row: Mapping[str, Any]) -> dict[str, Any]:
    obj = ctx.store.tooling["CustomField"]
    out: dict[str, Any] = {"attributes": {"type": "CustomField",
                                          "url": f"/services/data/v{ctx.version}/tooling/sobjects/CustomField/"
                                                 f"{row['Id']}"}}
    for definition in obj:
        value = row.get(definition.name)
        out[definition.name] = to_json(definition, value)
    return out
