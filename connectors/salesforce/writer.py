"""Writing our field values: sObject Collections PATCH per batch, Bulk API 2.0 ingest jobs for large plans.

sObject Collections (``PATCH composite/sobjects``, at most 200 records, ``allOrNone: false``) answer one
SaveResult per record in input order
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_update.htm).
Each is mapped to a :class:`connectors.base.WriteResult`:

- ``UNABLE_TO_LOCK_ROW``, and ``CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY`` whose message carries the
  ``UNABLE_TO_LOCK_ROW`` of a trigger's own DML (a rollup trigger locking the parent Account: the shape quoted in
  SFDO-Community/declarative-lookup-rollup-summaries#1241): only those records are sent again, up to
  :data:`LOCK_RETRIES` times, the transport backing off in between; still locked: ``transient=True`` (the next
  run retries them);
- ``ENTITY_IS_DELETED`` / ``INVALID_CROSS_REFERENCE_KEY`` / ``CANNOT_UPDATE_CONVERTED_LEAD``: ``gone=True``
  (deleted, merged away, or a lead converted into a contact since the pull: the person lives on as the contact);
- ``FIELD_CUSTOM_VALIDATION_EXCEPTION``: rejected, not transient, with the rule's message and field;
- ``DUPLICATES_DETECTED``: every write carries ``Sforce-Duplicate-Rule-Header: allowSave=true`` (we change
  only our own fields and never create a duplicate; the header's fields default to false, REST API "Duplicate
  Rule Header"), so only a rule whose action is *Block* refuses, and that record is rejected with what to do;
- ``INVALID_FIELD_FOR_INSERT_UPDATE``: rejected, with a hint to grant edit access on the field.

Writes are *at least once*: when a request times out or the connection drops after Salesforce applied it, the
transport sends it again and Salesforce applies the same values a second time. Every write sets absolute values
of our own fields, so a repeat leaves the record as one write would (its ``SystemModstamp`` moves once more).

Some errors refuse the *whole* request (400 ``JSON_PARSER_ERROR``, ``INVALID_FIELD`` "No such column"): the
records carrying the field the error names are set aside as rejected and the others sent again; when nothing
can be pinned down the batch is split in two, so one bad record costs O(log n) calls, never the batch.

A stop (daily limit, refused session, Salesforce down after retries) raises only while Salesforce has answered
nothing of the batch (Ids refused locally, such as another object's, do not count). Once Salesforce has answered
for some of its records (say the limit is met by a lock retry), the batch returns those results and reports its
unsent records as ``transient``; the next batch meets the same stop before sending anything, so every write
that happened is in some batch's results.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from simple_salesforce.api import Salesforce

from connectors.base import FieldUpdate, WriteResult
from connectors.salesforce.client import SalesforceApiError, SalesforceClient
from connectors.salesforce.reader import Reader, bulk_client
from connectors.transport import Transient
from core.errors import AuthError, ConnectorError, RateLimited
from core.models import FieldSpec, FieldType

#: Standard key prefixes of the objects we write (Id prefixes are fixed across orgs).
KEY_PREFIXES = {"003": "Contact", "00Q": "Lead"}
#: How many times locked records are sent again within one write call.
LOCK_RETRIES = 2
#: Records per Bulk ingest job (far below the 150 MB upload limit at our ~200 bytes a row).
BULK_JOB_ROWS = 100_000
GONE_CODES = frozenset({"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY", "CANNOT_UPDATE_CONVERTED_LEAD"})
#: Sent with every write (see the module docstring).
DUPLICATE_HEADER = {"Sforce-Duplicate-Rule-Header": "allowSave=true"}
_HEAD = '{"allOrNone":false,"records":['
_COLUMN = re.compile(r"column:\s*(\d+)")
_TOKEN = re.compile(r"from (VALUE_[A-Z_]+|START_[A-Z_]+)")
_NO_COLUMN = re.compile(r"No such column '([^']+)' on sobject of type (\w+)")
_KEY = re.compile(r'"([A-Za-z0-9_]+)":')
_BULK_FIELD = re.compile(r"Field name not found : (\S+)")


def iso_datetime(value: Any) -> str:
    """A datetime as Salesforce expects it: ISO 8601 in UTC with milliseconds and ``Z``."""
    if isinstance(value, int | float):
        moment = datetime.fromtimestamp(float(value), tz=UTC)
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    else:
        moment = value
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def format_value(spec: FieldSpec, value: Any) -> Any:
    """One of our values as the JSON Salesforce expects: numbers rounded to the field's 4 decimals, ISO
    datetimes with ``Z``, JSON booleans (a checkbox cannot be null: unknown is false), picklist values as
    strings; None (or NaN) clears the field."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return False if spec.type is FieldType.BOOL else None
    if spec.type is FieldType.NUMBER:
        number = round(float(value), 4)
        return 0.0 if number == 0 else number
    if spec.type is FieldType.DATETIME:
        return iso_datetime(value)
    if spec.type is FieldType.BOOL:
        return value.strip().lower() in ("true", "1", "yes") if isinstance(value, str) else bool(value)
    return str(value)


def format_csv(spec: FieldSpec, value: Any) -> str:
    """The same value as a Bulk API 2.0 CSV cell (``#N/A`` sets a field to null; an empty cell would leave it
    unchanged — Bulk API 2.0 "Prepare Data to Upload")."""
    formatted = format_value(spec, value)
    if formatted is None:
        return "#N/A"
    if isinstance(formatted, bool):
        return "true" if formatted else "false"
    if isinstance(formatted, float):
        text = f"{formatted:.4f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    return str(formatted)


def record_result(record_id: str, errors: Sequence[Mapping[str, Any]], permission_set: str) -> WriteResult:
    """A failed SaveResult (or Bulk failed-results row) as a WriteResult."""
    first = errors[0] if errors else {}
    code = str(first.get("statusCode") or first.get("errorCode") or "UNKNOWN_ERROR")
    message = str(first.get("message") or "")
    fields = [str(f) for f in first.get("fields") or [] if f]
    field = fields[0] if fields else None
    reason = f"{code}: {message}"
    locked = code == "UNABLE_TO_LOCK_ROW" or (
        code == "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY" and "UNABLE_TO_LOCK_ROW" in message)
    if code == "FIELD_CUSTOM_VALIDATION_EXCEPTION":
        reason = f"{code}: a validation rule refused the record: {message}"
    elif code == "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY" and not locked:
        reason = f"{code}: a trigger or flow in the org refused the update: {message}"
    elif code == "DUPLICATES_DETECTED":
        reason = (f"{code}: a duplicate rule that blocks edits matches this record with another ({message}); merge "
                  "the duplicates, or let the rule allow edits with an alert")
    elif code == "INVALID_FIELD_FOR_INSERT_UPDATE":
        reason += (f" — the integration user cannot edit {field or 'the field'}: grant edit access (field-level "
                   f"security) through permission set {permission_set}, e.g. with `clm fields ensure`")
    return WriteResult(record_id, ok=False, reason=reason[:500], field=field,
                       transient=locked, gone=code in GONE_CODES)


def parse_bulk_error(text: str) -> dict[str, Any]:
    """Bulk API 2.0 ``sf__Error``: ``CODE:message:field1 field2 --`` (the message may contain colons)."""
    body = text.strip()
    body = body[:-2].rstrip() if body.endswith("--") else body
    code, _, rest = body.partition(":")
    message, _, fields = rest.rpartition(":")
    if not message:  # no field part at all
        message, fields = rest, ""
    return {"statusCode": code.strip(), "message": message.strip(), "fields": fields.split()}


@dataclass
class _Record:
    """One update ready to send."""

    index: int
    record_id: str
    sobject: str
    values: dict[str, Any]

    def json(self) -> str:
        body = {"attributes": {"type": self.sobject}, "Id": self.record_id, **self.values}
        return json.dumps(body, separators=(",", ":"), allow_nan=False)


def collection_body(records: Sequence[_Record]) -> tuple[str, list[tuple[int, int]]]:
    """The PATCH body and the character span of each record in it (to locate JSON_PARSER_ERROR columns)."""
    parts, spans = [], []
    position = len(_HEAD)
    for i, record in enumerate(records):
        text = record.json()
        position += 1 if i else 0
        spans.append((position, position + len(text)))
        position += len(text)
        parts.append(text)
    return _HEAD + ",".join(parts) + "]}", spans


def _token_kind(token: str) -> str:
    if token in ("VALUE_TRUE", "VALUE_FALSE"):
        return "boolean"
    if token.startswith("VALUE_NUMBER"):
        return "number"
    return token


def _value_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "VALUE_STRING"
    if isinstance(value, dict):
        return "START_OBJECT"
    if isinstance(value, list):
        return "START_ARRAY"
    return "VALUE_NULL"


def offending(exc: SalesforceApiError, records: Sequence[_Record]) -> tuple[list[_Record], str | None]:
    """The records a whole-request 400 is about, and the field it names (none found: ``([], None)``)."""
    field: str | None = None
    sobject: str | None = None
    kind: str | None = None
    if exc.code == "INVALID_FIELD" and (match := _NO_COLUMN.search(exc.detail)):
        field, sobject = match.group(1), match.group(2)
    elif exc.code == "JSON_PARSER_ERROR" and (column := _COLUMN.search(exc.detail)):
        text, spans = collection_body(records)
        offset = int(column.group(1)) - 1
        for start, end in spans:
            if start <= offset < end:
                keys = [m.group(1) for m in _KEY.finditer(text, start, offset)]
                field = keys[-1] if keys else None
                if field in ("attributes", "type", "Id"):
                    field = None
                token = _TOKEN.search(exc.detail)
                kind = _token_kind(token.group(1)) if token else None
                break
    elif exc.fields:
        field = exc.fields[0]
    if field is None:
        return [], None
    lowered = field.lower()
    hits = []
    for record in records:
        if sobject is not None and record.sobject.lower() != sobject.lower():
            continue
        for name, value in record.values.items():
            if name.lower() == lowered and (kind is None or (value is not None and _value_kind(value) == kind)):
                hits.append(record)
                field = name
                break
    return hits, field


class Writer:
    """Writes batches (sObject Collections) and large plans (Bulk API 2.0 ingest)."""

    def __init__(self, client: SalesforceClient, reader: Reader, specs: Mapping[str, FieldSpec],
                 crm_names: dict[str, str], objects: Iterable[str], permission_set: str, *,
                 lock_backoff: float = 0.5) -> None:
        self.client = client
        self.reader = reader
        self.specs = specs
        self.crm_names = crm_names
        self.prefixes = {p: o for p, o in KEY_PREFIXES.items() if o in set(objects)}
        self.permission_set = permission_set
        self.lock_backoff = lock_backoff

    # --- preparing ---------------------------------------------------------------------------------------

    def _prepare(self, updates: Sequence[FieldUpdate], results: dict[int, WriteResult], *, csv_cells: bool = False
                 ) -> list[_Record]:
        records = []
        for index, update in enumerate(updates):
            sobject = self.prefixes.get(update.record_id[:3])
            if sobject is None:
                results[index] = WriteResult(update.record_id, ok=False, reason=(
                    f"not the Id of a {' or '.join(self.prefixes.values())} (prefix '{update.record_id[:3]}'); "
                    "salesforce.objects lists the objects written"))
                continue
            values: dict[str, Any] = {}
            for name, value in update.values.items():
                spec = self.specs.get(name)
                if spec is None:
                    raise ValueError(f"'{name}' is not one of our fields")
                values[self.crm_names[name]] = format_csv(spec, value) if csv_cells else format_value(spec, value)
            records.append(_Record(index, update.record_id, sobject, values))
        # sObject Collections accept at most 10 runs of consecutive same-type records: keep types together.
        records.sort(key=lambda r: r.sobject)
        return records

    # --- sObject Collections ----------------------------------------------------------------------------

    def write(self, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        """One batch (≤ 200): one result per input, in input order."""
        refused: dict[int, WriteResult] = {}
        records = self._prepare(updates, refused)
        # ``results`` holds only what Salesforce answered, so an empty one means nothing of the batch got through.
        results: dict[int, WriteResult] = {}
        self._write(records, results, fresh=True)
        results.update(refused)
        return [results[i] for i in range(len(updates))]

    def _write(self, records: list[_Record], results: dict[int, WriteResult], *, fresh: bool = False) -> None:
        if not records:
            return
        try:
            self._send(records, results, fresh)
        except SalesforceApiError as exc:
            unresolved = [r for r in records if r.index not in results]
            if not unresolved:
                return
            if exc.status != 400 or len(unresolved) == 1:
                field = exc.fields[0] if exc.fields else None
                for record in unresolved:
                    results[record.index] = self._refused(record, exc, field)
                return
            hits, field = offending(exc, unresolved)
            if hits:
                for record in hits:
                    results[record.index] = self._refused(record, exc, field)
                self._write([r for r in unresolved if r.index not in results], results)
            else:
                middle = len(unresolved) // 2
                self._write(unresolved[:middle], results)
                self._write(unresolved[middle:], results)

    def _refused(self, record: _Record, exc: SalesforceApiError, field: str | None) -> WriteResult:
        reason = f"{exc.code}: {exc.detail}"
        if exc.code == "INVALID_FIELD":
            reason += (f" — the field is missing or hidden by field-level security; run `clm fields ensure` to create "
                       f"it and grant read/edit through permission set {self.permission_set}")
        return WriteResult(record.record_id, ok=False, reason=reason[:500], field=field)

    def _send(self, records: list[_Record], results: dict[int, WriteResult], fresh: bool) -> None:
        """PATCH the records; resend only the locked ones (transport backoff) up to LOCK_RETRIES times."""
        pending = list(records)
        rounds = 0

        def attempt(sf: Salesforce) -> None:
            nonlocal pending, rounds
            if not pending:
                return
            text, _ = collection_body(pending)
            answer = sf.restful("composite/sobjects", method="PATCH", data=text, timeout=self.client.timeout,
                                headers=DUPLICATE_HEADER)
            answers = answer if isinstance(answer, list) else []
            locked = []
            for position, record in enumerate(pending):
                result = answers[position] if position < len(answers) else None
                if result is None:
                    locked.append(record)  # no answer for it: treat like a lock, safe to resend
                elif result.get("success"):
                    results[record.index] = WriteResult(record.record_id, ok=True)
                else:
                    outcome = record_result(record.record_id, result.get("errors") or [], self.permission_set)
                    if outcome.transient:
                        locked.append(record)
                    else:
                        results[record.index] = outcome
            pending = locked
            if locked and rounds < LOCK_RETRIES:
                rounds += 1
                raise Transient("UNABLE_TO_LOCK_ROW", retry_after=self.lock_backoff * 2 ** (rounds - 1))
            for record in locked:
                results[record.index] = WriteResult(
                    record.record_id, ok=False, transient=True,
                    reason=f"UNABLE_TO_LOCK_ROW: still locked after {LOCK_RETRIES} retries (another process or a "
                           "trigger is updating it or a related record); the next run retries it")
            pending = []

        try:
            self.client.call("update records (sObject Collections)", attempt)
        except SalesforceApiError:
            raise  # a whole-request refusal: _write isolates the records it is about
        except (RateLimited, AuthError, ConnectorError) as exc:
            # Nothing of the batch got through: stop the run (raising loses nothing). A ConnectorError after a
            # whole-request 400 (``fresh`` false) only fails the records it leaves unsent.
            if not results and (fresh or isinstance(exc, RateLimited | AuthError)):
                raise
            # Salesforce answered for some records (written or refused): report those; the unsent ones are
            # transient, for the next run.
            for record in pending:
                results[record.index] = WriteResult(record.record_id, ok=False, transient=True,
                                                    reason=exc.message[:500])

    # --- Bulk API 2.0 ingest -------------------------------------------------------------------------------

    def write_bulk(self, updates: Sequence[FieldUpdate], batch_size: int) -> list[WriteResult]:
        """Any number of updates through Bulk 2.0 ``update`` jobs; one result per input, in input order."""
        results: dict[int, WriteResult] = {}
        records = self._prepare(updates, results, csv_cells=True)
        by_object: dict[str, list[_Record]] = {}
        for record in records:
            by_object.setdefault(record.sobject, []).append(record)
        for sobject, group in by_object.items():
            for start in range(0, len(group), BULK_JOB_ROWS):
                self._ingest(sobject, group[start:start + BULK_JOB_ROWS], results)
        # Rows locked, held by a duplicate alert or left unprocessed by a failed job were not written: send them
        # once more through sObject Collections — unless the run's time budget is spent (they wait for the next).
        locked = [r.index for r in records if results[r.index].transient]
        if locked and self.client.transport.time_left() != 0:
            retry_updates = [updates[i] for i in locked]
            for start in range(0, len(locked), batch_size):
                part = retry_updates[start:start + batch_size]
                for index, result in zip(locked[start:start + batch_size], self.write(part), strict=True):
                    results[index] = result
        return [results[i] for i in range(len(updates))]

    def _ingest(self, sobject: str, records: list[_Record], results: dict[int, WriteResult]) -> None:
        columns = sorted({name for record in records for name in record.values})
        buffer = io.StringIO()
        out = csv.writer(buffer, lineterminator="\n")
        out.writerow(["Id", *columns])
        for record in records:
            # An empty cell leaves a field unchanged: only fields of this record's update carry a value.
            out.writerow([record.record_id, *(record.values.get(c, "") for c in columns)])
        bulk = self.reader
        job = self.client.call(f"create Bulk update job ({sobject})",
                               lambda sf: bulk_client(sf, sobject).create_job("update"))
        bulk.bulk_jobs += 1
        job_id = str(job["id"])
        self.client.call("upload Bulk job data", lambda sf: bulk_client(sf, sobject).upload_job_data(
            job_id, buffer.getvalue()))
        self.client.call("close Bulk job", lambda sf: bulk_client(sf, sobject).close_job(job_id))
        try:
            self._settle_job(sobject, job_id, records, columns, results)
        finally:
            bulk.delete_job(sobject, job_id, is_query=False)

    def _settle_job(self, sobject: str, job_id: str, records: list[_Record], columns: list[str],
                    results: dict[int, WriteResult]) -> None:
        """Wait for an ingest job and turn its result sets into results.

        A ``Failed`` job (a batch that failed 20 times) or an ``Aborted`` one (our deadline) has still written
        the rows it processed — Salesforce does not roll them back — so its results are read like a complete
        job's and only the rows it did not process are transient.
        """
        bulk = self.reader
        info = bulk.wait(sobject, job_id, is_query=False)
        state = str(info.get("state"))
        stopped = ""
        if state != "JobComplete":
            message = str(info.get("errorMessage") or state)
            missing = _BULK_FIELD.search(message)
            field = missing.group(1) if missing else None
            if field and field in columns:
                rest = []
                for record in records:
                    if field in record.values and record.values[field] != "":
                        results[record.index] = WriteResult(record.record_id, ok=False, field=field, reason=(
                            f"INVALID_FIELD: {message} — the field is missing or hidden by field-level security; "
                            f"run `clm fields ensure`")[:500])
                    else:
                        rest.append(record)
                for record in rest:
                    record.values.pop(field, None)
                if rest:
                    self._ingest(sobject, rest, results)
                return
            stopped = f"Bulk job {job_id} ended {state} before processing it ({message}); it is sent again"
        by_id: dict[str, list[_Record]] = {}
        for record in records:
            by_id.setdefault(record.record_id, []).append(record)
        for kind in ("successfulResults", "failedResults", "unprocessedrecords"):
            def fetch(sf: Salesforce, which: str = kind) -> str:
                return str(bulk_client(sf, sobject).get_ingest_results(job_id, which))

            text = self.client.call(f"read Bulk {kind}", fetch)
            lines = list(csv.reader(io.StringIO(text, newline="")))
            if not lines:
                continue
            header = lines[0]
            id_at = header.index("Id") if "Id" in header else None
            error_at = header.index("sf__Error") if "sf__Error" in header else None
            for cells in lines[1:]:
                if id_at is None or id_at >= len(cells) or not by_id.get(cells[id_at]):
                    continue
                record = by_id[cells[id_at]].pop(0)
                if kind == "successfulResults":
                    results[record.index] = WriteResult(record.record_id, ok=True)
                elif kind == "failedResults" and error_at is not None:
                    error = parse_bulk_error(cells[error_at])
                    if error["statusCode"] == "DUPLICATES_DETECTED":
                        # Bulk requests cannot carry the duplicate-rule header: resend it through sObject
                        # Collections with allowSave (refused again only by a blocking rule).
                        results[record.index] = WriteResult(record.record_id, ok=False, transient=True,
                                                            reason=f"DUPLICATES_DETECTED in Bulk job {job_id}")
                    else:
                        results[record.index] = record_result(record.record_id, [error], self.permission_set)
                else:
                    results[record.index] = WriteResult(record.record_id, ok=False, transient=True,
                                                        reason=stopped or f"not processed by Bulk job {job_id}")
        for record in records:
            results.setdefault(record.index, WriteResult(
                record.record_id, ok=False, transient=True,
                reason=stopped or f"no result for it from Bulk job {job_id}"))
