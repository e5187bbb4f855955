"""Bulk API 2.0: query jobs (CSV results paged with ``Sforce-Locator``) and ingest jobs (CSV upload, results).

Query jobs (https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_job_results.htm):
``POST jobs/query`` → ``UploadComplete``; ``GET jobs/query/{id}`` → ``InProgress`` then ``JobComplete``;
``GET jobs/query/{id}/results?locator=&maxRecords=`` → CSV with the ``Sforce-NumberOfRecords`` and
``Sforce-Locator`` headers (``null`` on the last set). Locators are base64-encoded offsets, as real ones are.

Ingest jobs (https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/get_job_failed_results.htm):
``POST jobs/ingest`` → ``Open``; ``PUT …/batches`` (CSV, ``201``); ``PATCH {"state": "UploadComplete"}``;
``GET`` → ``JobComplete`` with ``numberRecordsProcessed``/``numberRecordsFailed``; ``successfulResults``
(``sf__Id``, ``sf__Created`` + the uploaded columns), ``failedResults`` (``sf__Id``, ``sf__Error`` + columns),
``unprocessedrecords``. An empty cell leaves the field unchanged and ``#N/A`` sets it to null (Bulk API
"Prepare CSV Files"). An unknown column fails the whole job with ``InvalidBatch : Field name not found : X``.
Rows are processed in transactions of 200, each its own save.

Jobs are processed lazily: once ``bulk_delay`` seconds of wall time have passed since upload completion (or
query job creation), the next read of the job processes it. Real jobs always queue: "the job is queued and
ready to be processed" (Bulk API 2.0 "Job States"), for seconds in a quiet org and minutes in a busy one, so the
emulator's default keeps every job ``UploadComplete``/``InProgress`` for a moment and the polling path is
always taken (tests choose longer delays).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.sandbox.salesforce import ids
from connectors.sandbox.salesforce.errors import ApiError, RecordError, not_found
from connectors.sandbox.salesforce.rest import Context, RecordFaults, json_response
from connectors.sandbox.salesforce.schema import FieldDef, ObjectDef
from connectors.sandbox.salesforce.soql import Compiled, _SubColumn, compile_query
from connectors.sandbox.salesforce.store import Store, View
from connectors.sandbox.salesforce.values import format_datetime, from_csv, to_csv
from connectors.sandbox.server import Response

DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
INGEST_OPERATIONS = ("insert", "update", "upsert", "delete")
TRANSACTION_SIZE = 200


def _job_error(message: str, status: int = 400, code: str = "INVALIDJOB") -> ApiError:
    return ApiError(status, code, message)


@dataclass
class Job:
    """One Bulk API 2.0 job."""

    id: str
    kind: str
    operation: str
    object: str
    version: str
    created: datetime
    column_delimiter: str = "COMMA"
    line_ending: str = "LF"
    state: str = "Open"
    modified: datetime | None = None
    ready_at: float | None = None
    """``time.monotonic()`` from which the job is processed: queueing takes wall time, whatever the org's clock."""
    query: str | None = None
    compiled: Compiled | None = None
    external_id_field: str | None = None
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    results: list[list[str]] = field(default_factory=list)
    successful: list[list[str]] = field(default_factory=list)
    failed: list[list[str]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)
    processed: int = 0
    error_message: str | None = None

    def info(self, user_id: str) -> dict[str, Any]:
        """The job info body."""
        body: dict[str, Any] = {
            "id": self.id, "operation": self.operation, "object": self.object, "createdById": user_id,
            "createdDate": format_datetime(self.created),
            "systemModstamp": format_datetime(self.modified or self.created), "state": self.state,
            "concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": float(self.version),
            "jobType": "V2Query" if self.kind == "query" else "V2Ingest", "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter, "numberRecordsProcessed": self.processed, "retries": 0,
            "totalProcessingTime": 0,
        }
        if self.kind == "ingest":
            body.update({"contentUrl": f"services/data/v{self.version}/jobs/ingest/{self.id}/batches",
                         "externalIdFieldName": self.external_id_field,
                         "numberRecordsFailed": len(self.failed), "apiActiveProcessingTime": 0,
                         "apexProcessingTime": 0})
        if self.error_message:
            body["errorMessage"] = self.error_message
        return body


class BulkJobs:
    """All Bulk API 2.0 jobs of the org."""

    def __init__(self, store: Store, delay: float = 0.0,
                 fault_factory: Callable[[str, str], RecordFaults] | None = None) -> None:
        self.store = store
        self.delay = delay
        self.fault_factory = fault_factory or (lambda _method, _path: RecordFaults())
        self.jobs: dict[str, Job] = {}
        self.query_jobs_created = 0
        self.result_page_rows = 10_000
        """Rows per ``resultPages`` URI."""
        self.batches = 0
        self._lock = threading.RLock()

    # ------------------------------------------------------------ helpers

    def _job(self, job_id: str, kind: str) -> Job:
        job = self.jobs.get(ids.normalize(job_id) or job_id)
        if job is None or job.kind != kind:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    def _advance(self, job: Job) -> None:
        """Process a job whose time has come."""
        if job.state not in ("UploadComplete", "InProgress") or job.ready_at is None:
            return
        if time.monotonic() < job.ready_at:
            job.state = "InProgress"
            return
        if job.kind == "query":
            self._run_query(job)
        else:
            self._run_ingest(job)
        job.modified = self.store.now()

    def _csv(self, job: Job, rows: list[list[str]]) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=DELIMITERS[job.column_delimiter],
                            lineterminator=LINE_ENDINGS[job.line_ending], quoting=csv.QUOTE_ALL)
        writer.writerows(rows)
        return buffer.getvalue().encode()

    # ------------------------------------------------------------ query jobs

    def create_query(self, ctx: Context) -> Response:
        body = ctx.request.json()
        if not isinstance(body, Mapping):
            raise _job_error("Invalid job definition")
        operation = body.get("operation")
        if operation not in ("query", "queryAll"):
            raise _job_error(f"Invalid operation: {operation}")
        delimiter = body.get("columnDelimiter", "COMMA")
        line_ending = body.get("lineEnding", "LF")
        if delimiter not in DELIMITERS or line_ending not in LINE_ENDINGS:
            raise _job_error("Invalid columnDelimiter or lineEnding")
        text = body.get("query")
        if not isinstance(text, str) or not text.strip():
            raise _job_error("Query is required")
        compiled = compile_query(text, View(self.store), ctx.version)
        if any(isinstance(c, _SubColumn) for c in compiled.columns) or compiled.offset or compiled.count:
            # Bulk API 2.0 query does not support parent-to-child sub-queries, OFFSET or COUNT().
            raise ApiError(400, "API_ERROR", "The query contains a feature not supported by Bulk API 2.0: nested "
                                             "queries, OFFSET and COUNT() are not supported")
        now = self.store.now()
        with self._lock:
            job = Job(self.store.ids.new(ids.KEY_PREFIXES["AsyncJob"]), "query", operation, compiled.obj.name,
                      ctx.version, now, delimiter, line_ending, "UploadComplete", now,
                      time.monotonic() + self.delay, text, compiled)
            self.jobs[job.id] = job
            self.query_jobs_created += 1
        return json_response(200, job.info(self.store.org.user_id))

    def _run_query(self, job: Job) -> None:
        assert job.compiled is not None
        rows = job.compiled.run(job.operation == "queryAll")
        columns = job.compiled.csv_columns()
        cells = [cell for _, cell in columns]
        job.results = [[name for name, _ in columns]]
        job.results.extend([to_csv(*cell(record)) for cell in cells] for record in rows)
        job.processed = len(rows)
        job.state = "JobComplete"

    def get_query(self, job_id: str) -> Response:
        with self._lock:
            job = self._job(job_id, "query")
            self._advance(job)
            return json_response(200, job.info(self.store.org.user_id))

    def query_results(self, ctx: Context, job_id: str) -> Response:
        with self._lock:
            job = self._job(job_id, "query")
            self._advance(job)
            if job.state != "JobComplete":
                raise _job_error(f"Job {job.id} is not complete: {job.state}", 400, "INVALIDJOBSTATE")
            locator = ctx.request.param("locator") or ""
            try:
                offset = int(base64.b64decode(locator).decode()) if locator else 0
            except (ValueError, binascii.Error, UnicodeDecodeError):
                raise ApiError(400, "INVALID_LOCATOR", f"Invalid locator: {locator}") from None
            max_records_text = ctx.request.param("maxRecords")
            try:
                max_records = int(max_records_text) if max_records_text else 1_000_000
            except ValueError:
                raise ApiError(400, "INVALID_MAX_RECORDS", f"Invalid maxRecords: {max_records_text}") from None
            if max_records <= 0:
                raise ApiError(400, "INVALID_MAX_RECORDS", f"Invalid maxRecords: {max_records}")
            data = job.results[1:]
            chunk = data[offset : offset + max_records]
            end = offset + len(chunk)
            next_locator = base64.b64encode(str(end).encode()).decode() if end < len(data) else "null"
            body = self._csv(job, [job.results[0], *chunk])
        return Response(200, body, {"Content-Type": "text/csv", "Sforce-Locator": next_locator,
                                    "Sforce-NumberOfRecords": str(len(chunk))})

    def result_pages(self, ctx: Context, job_id: str) -> Response:
        """``GET jobs/query/{id}/resultPages`` (API 58.0+): up to five result URIs per answer, each a locator
        and a ``maxRecords`` that can be read in parallel, and ``nextRecordsUrl`` for the next five
        (https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_parallel_job_results.htm).
        How many rows Salesforce puts in one page is not documented: the emulator uses
        :attr:`result_page_rows`. The doc's table names the link ``nextRecordUrl`` and its example
        ``nextRecordsUrl``; the emulator sends the example's spelling."""
        if float(ctx.version) < 58.0:
            raise not_found()
        with self._lock:
            job = self._job(job_id, "query")
            self._advance(job)
            if job.state != "JobComplete":
                raise _job_error(f"Job {job.id} is not complete: {job.state}", 400, "INVALIDJOBSTATE")
            if job.version != ctx.version:
                # "use the same API version that you used to create the query. Otherwise, the call returns a 409"
                raise _job_error(f"Job {job.id} was created with API version {job.version}", 409, "INVALIDJOBSTATE")
            first_text = ctx.request.param("page") or "0"
            try:
                first = int(first_text)
            except ValueError:
                raise ApiError(400, "INVALID_LOCATOR", f"Invalid page: {first_text}") from None
            rows = len(job.results) - 1
            size = self.result_page_rows
            count = max(1, -(-rows // size))
            base = f"/services/data/v{ctx.version}/jobs/query/{job.id}"
            pages = [{"resultUrl": f"{base}/results?locator={base64.b64encode(str(n * size).encode()).decode()}"
                                   f"&maxRecords={size}" if n else f"{base}/results?maxRecords={size}"}
                     for n in range(first, min(first + 5, count))]
            done = first + 5 >= count
        return json_response(200, {"resultPages": pages, "done": done,
                                   "nextRecordsUrl": None if done else f"{base}/resultPages?page={first + 5}"})

    # ------------------------------------------------------------ ingest jobs

    def create_ingest(self, ctx: Context) -> Response:
        body = ctx.request.json()
        if not isinstance(body, Mapping):
            raise _job_error("Invalid job definition")
        operation = body.get("operation")
        if operation not in INGEST_OPERATIONS:
            raise _job_error(f"Invalid operation: {operation}" if operation != "hardDelete"
                             else "hardDelete requires the Bulk API Hard Delete permission", 400,
                             "INVALIDJOB" if operation != "hardDelete" else "FEATURENOTENABLED")
        obj = self.store.object(str(body.get("object") or ""))
        if obj is None:
            raise _job_error(f"sObject type '{body.get('object')}' is not supported")
        if body.get("contentType", "CSV") != "CSV":
            raise _job_error("Only the CSV content type is supported")
        delimiter = body.get("columnDelimiter", "COMMA")
        line_ending = body.get("lineEnding", "LF")
        if delimiter not in DELIMITERS or line_ending not in LINE_ENDINGS:
            raise _job_error("Invalid columnDelimiter or lineEnding")
        external = body.get("externalIdFieldName")
        if operation == "upsert" and (not external or str(external).lower() != "id"):
            raise _job_error("The sandbox supports upsert on Id only (externalIdFieldName: Id)")
        now = self.store.now()
        with self._lock:
            job = Job(self.store.ids.new(ids.KEY_PREFIXES["AsyncJob"]), "ingest", operation, obj.name, ctx.version,
                      now, delimiter, line_ending, "Open", now, external_id_field=external)
            self.jobs[job.id] = job
        return json_response(200, job.info(self.store.org.user_id))

    def upload(self, ctx: Context, job_id: str) -> Response:
        with self._lock:
            job = self._job(job_id, "ingest")
            if job.state != "Open":
                raise _job_error(f"Job {job.id} is not open for uploads (state {job.state})", 409, "INVALIDJOBSTATE")
            text = ctx.request.body.decode("utf-8-sig")
            reader = csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[job.column_delimiter])
            rows = [row for row in reader if row]
            if not rows:
                raise _job_error("The uploaded CSV is empty", 400, "INVALIDBATCH")
            if job.header and rows[0] != job.header:
                raise _job_error("All uploads of a job must have the same header", 400, "INVALIDBATCH")
            job.header = rows[0]
            job.rows.extend(rows[1:])
            job.modified = self.store.now()
        return Response(201)

    def patch(self, ctx: Context, job_id: str, kind: str) -> Response:
        body = ctx.request.json()
        state = body.get("state") if isinstance(body, Mapping) else None
        with self._lock:
            job = self._job(job_id, kind)
            if state == "UploadComplete" and kind == "ingest":
                if job.state != "Open":
                    raise _job_error(f"Job {job.id} is not open (state {job.state})", 409, "INVALIDJOBSTATE")
                job.state = "UploadComplete"
                job.ready_at = time.monotonic() + self.delay
                self.batches += max(1, -(-len(job.rows) // 10_000))
            elif state == "Aborted":
                if job.state in ("JobComplete", "Failed", "Aborted"):
                    raise _job_error(f"Job {job.id} cannot be aborted (state {job.state})", 409, "INVALIDJOBSTATE")
                job.state = "Aborted"
                job.unprocessed = list(job.rows)
            else:
                raise _job_error(f"Invalid state change: {state}")
            job.modified = self.store.now()
            return json_response(200, job.info(self.store.org.user_id))

    def get_ingest(self, job_id: str) -> Response:
        with self._lock:
            job = self._job(job_id, "ingest")
            self._advance(job)
            return json_response(200, job.info(self.store.org.user_id))

    def delete(self, job_id: str, kind: str) -> Response:
        with self._lock:
            job = self._job(job_id, kind)
            if job.state in ("Open", "UploadComplete", "InProgress"):
                raise _job_error(f"Job {job.id} must be closed before it is deleted", 409, "INVALIDJOBSTATE")
            del self.jobs[job.id]
        return Response(204)

    def ingest_results(self, job_id: str, which: str) -> Response:
        with self._lock:
            job = self._job(job_id, "ingest")
            self._advance(job)
            if which == "successfulresults":
                rows = [["sf__Id", "sf__Created", *job.header], *job.successful]
            elif which == "failedresults":
                rows = [["sf__Id", "sf__Error", *job.header], *job.failed]
            else:
                rows = [job.header, *job.unprocessed]
            body = self._csv(job, rows) if job.header else b""
        return Response(200, body, {"Content-Type": "text/csv"})

    def list_jobs(self, kind: str) -> Response:
        with self._lock:
            records = [j.info(self.store.org.user_id) for j in self.jobs.values() if j.kind == kind]
        return json_response(200, {"done": True, "records": records, "nextRecordsUrl": None})

    # ------------------------------------------------------------ ingest processing

    def _columns(self, job: Job, obj: ObjectDef) -> list[FieldDef | None] | None:
        columns: list[FieldDef | None] = []
        for name in job.header:
            if name.lower() == "id":
                columns.append(None)
                continue
            definition = obj.field(name)
            if definition is None or not self.store.readable(obj, definition):
                job.state = "Failed"
                job.error_message = f"InvalidBatch : Field name not found : {name}"
                job.unprocessed = list(job.rows)
                return None
            columns.append(definition)
        return columns

    def _run_ingest(self, job: Job) -> None:
        obj = self.store.objects[job.object]
        columns = self._columns(job, obj)
        if columns is None:
            return
        id_column = next((i for i, name in enumerate(job.header) if name.lower() == "id"), None)
        # Per-record faults match the upload request that carried the rows.
        faults = self.fault_factory("PUT", f"/services/data/v{job.version}/jobs/ingest/{job.id}/batches")
        for start in range(0, len(job.rows), TRANSACTION_SIZE):
            failure = faults.batch_fails()
            if failure is not None:
                # Processed rows stay written; the rest is reported by unprocessedrecords.
                job.state = "Failed"
                job.error_message = failure
                job.unprocessed = list(job.rows[start:])
                return
            with self.store.lock:
                when = self.store.now()
                for row in job.rows[start : start + TRANSACTION_SIZE]:
                    padded = row + [""] * (len(job.header) - len(row))
                    raw_id = padded[id_column] if id_column is not None else None
                    try:
                        record_id, created = self._ingest_row(job, obj, columns, padded, raw_id or None, when,
                                                             faults)
                        job.successful.append([record_id, "true" if created else "false", *padded])
                    except RecordError as error:
                        job.failed.append(["", error.as_bulk_error(), *padded])
                    job.processed += 1
        job.state = "JobComplete"

    def _ingest_row(self, job: Job, obj: ObjectDef, columns: list[FieldDef | None], row: list[str],
                    raw_id: str | None, when: datetime, faults: RecordFaults) -> tuple[str, bool]:
        values: dict[str, Any] = {}
        for position, (definition, cell) in enumerate(zip(columns, row, strict=False), start=1):
            if definition is None or cell == "":
                continue  # an empty cell leaves the field as it is
            values[definition.name] = None if cell == "#N/A" else from_csv(definition, cell, position)
        operation = job.operation
        if operation == "upsert":
            operation = "update" if raw_id else "insert"
        normalized = ids.normalize(raw_id) if raw_id else None
        if operation == "insert":
            if raw_id:
                raise RecordError("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
            record = self.store.create(obj, values, source="bulk")
            return record["Id"], True
        injected = faults.before(normalized)
        if injected is not None:
            raise injected
        if operation == "delete":
            if normalized is None:
                raise RecordError("MALFORMED_ID", f"bad id {raw_id}", [])
            if self.store.get(normalized) is None:
                raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
            if not self.store.delete(normalized, when):
                raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [])
            return normalized, False
        record, changes = self.store.prepare_update(obj, raw_id, values)
        injected = faults.after(normalized)
        if injected is not None:
            raise injected
        self.store.apply_update(obj, record, changes, when, "bulk")
        return record["Id"], False
