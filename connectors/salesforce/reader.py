"""Reading query results: REST query/queryMore pages, or Bulk API 2.0 query jobs, row by row.

The REST path pages with query locators (``nextRecordsUrl``) of up to ``page_size`` records
(``Sforce-Query-Options: batchSize``). A locator the org released (a user has at most 10 open cursors) or that
expired after 15 idle minutes answers ``INVALID_QUERY_LOCATOR``; the pull then restarts the query from its
cursor, which is exactly what the keyset window is for.

The Bulk path creates a query job, polls it, and reads the CSV result sets with ``Sforce-Locator``
(https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_job_results.htm).
From API 58.0 on, result sets are listed through ``resultPages`` (five locators per answer) and read
concurrently instead of one locator after the other
(https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_parallel_job_results.htm).
A job can sit queued for minutes in a busy org: waiting stops at the run's deadline (the transport's), aborts
the job and raises :class:`core.errors.TimeBudgetReached`, so a queued job never outlives ``--max-runtime`` or
a serverless timeout. Every job is deleted once read: "when a job is deleted, job data stored by Salesforce is
deleted" (Bulk API 2.0 "Delete a Query Job") — the results hold personal data, which otherwise stays in the
org for days.
simple-salesforce's ``SFBulk2Type.query`` polls with its own sleeps and hides the per-request budget, so its
lower-level ``_Bulk2Client`` calls are made one by one here, each through the transport.
"""

from __future__ import annotations

import contextlib
import csv
import io
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.util import call_salesforce

from connectors.salesforce.client import SalesforceApiError, SalesforceClient
from core.errors import ClmError, ConnectorError, TimeBudgetReached

#: Rows per Bulk 2.0 result request (simple-salesforce's default; Salesforce allows more, memory decides).
BULK_RESULT_ROWS = 50_000
#: ``resultPages`` (parallel result sets) exists from this API version on.
PARALLEL_RESULTS_SINCE = 58.0
#: Composite API: subrequests per call, and how many of them may be queries.
COMPOSITE_MAX, COMPOSITE_MAX_QUERIES = 25, 5
#: Job states (Bulk API 2.0 "Get Information About a Query Job").
_DONE, _FAILED = "JobComplete", ("Failed", "Aborted")


def bulk_client(sf: Salesforce, sobject: str) -> Any:
    """simple-salesforce's Bulk 2.0 client for one object (one HTTP request per method)."""
    return getattr(sf.bulk2, sobject)._client


class Reader:
    """Runs SOQL through REST or Bulk 2.0 for the pull."""

    def __init__(self, client: SalesforceClient, page_size: int, *,
                 sleep: Callable[[float], None] = time.sleep, poll_interval: float = 0.25,
                 max_poll_interval: float = 5.0) -> None:
        self.client = client
        self.page_size = page_size
        self.sleep = sleep
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.bulk_jobs = 0
        self._counts: dict[tuple[str, bool], int] = {}

    @property
    def _options(self) -> dict[str, str]:
        return {"Sforce-Query-Options": f"batchSize={self.page_size}"}

    def count(self, sobject: str, where: str, *, include_deleted: bool) -> int:
        """``SELECT COUNT()``: one call, no rows transferred (none when :meth:`prefetch` already counted it)."""
        soql = count_soql(sobject, where)
        counted = self._counts.pop((soql, include_deleted), None)
        if counted is not None:
            return counted
        body = self.client.call(f"count {sobject}", lambda sf: sf.query(soql, include_deleted=include_deleted,
                                                                        timeout=self.client.timeout))
        return int(body.get("totalSize", 0))

    def prefetch(self, describes: Sequence[str], counts: Sequence[tuple[str, str, bool]]) -> dict[str, Any]:
        """Describe objects and count windows (``(sobject, where, include_deleted)``) in one Composite call.

        "The entire series of requests counts as a single call toward your API limits"; a call holds up to 25
        subrequests, of which up to 5 queries
        (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite_post.htm).
        Returns the describe bodies by object; the counts are kept for :meth:`count`. What does not fit, or a
        subrequest that failed, is left out, so the caller's own request runs and reports its error as usual.
        """
        wanted = list(dict.fromkeys(describes))[:COMPOSITE_MAX - COMPOSITE_MAX_QUERIES]
        counted = list(dict.fromkeys(counts))[:COMPOSITE_MAX_QUERIES]
        if len(wanted) + len(counted) < 2:
            return {}  # one subrequest: the plain request costs the same

        def call(sf: Salesforce) -> Any:
            base = urlsplit(sf.base_url).path.rstrip("/")
            subs = [{"method": "GET", "url": f"{base}/sobjects/{name}/describe", "referenceId": f"d{i}"}
                    for i, name in enumerate(wanted)]
            subs += [{"method": "GET", "referenceId": f"c{i}", "url": f"{base}/{'queryAll' if deleted else 'query'}"
                      f"?{urlencode({'q': count_soql(sobject, where)})}"}
                     for i, (sobject, where, deleted) in enumerate(counted)]
            return sf.restful("composite", method="POST", json={"compositeRequest": subs},
                              timeout=self.client.timeout)

        body = self.client.call("describe and count (composite)", call)
        answers = {str(r.get("referenceId")): r for r in (body or {}).get("compositeResponse") or []}
        out: dict[str, Any] = {}
        for i, name in enumerate(wanted):
            answer = answers.get(f"d{i}") or {}
            if answer.get("httpStatusCode") == 200 and isinstance(answer.get("body"), dict):
                out[name] = answer["body"]
        for i, (sobject, where, deleted) in enumerate(counted):
            answer = answers.get(f"c{i}") or {}
            if answer.get("httpStatusCode") == 200 and isinstance(answer.get("body"), dict):
                self._counts[(count_soql(sobject, where), deleted)] = int(answer["body"].get("totalSize", 0))
        return out

    def query_page(self, operation: str, soql: str, *, include_deleted: bool = False) -> dict[str, Any]:
        """The first page of a REST query."""
        body: dict[str, Any] = self.client.call(operation, lambda sf: sf.query(
            soql, include_deleted=include_deleted, headers=self._options, timeout=self.client.timeout))
        return body

    def more(self, operation: str, url: str) -> dict[str, Any]:
        """The next page of a REST query (``nextRecordsUrl``)."""
        body: dict[str, Any] = self.client.call(operation, lambda sf: sf.query_more(
            url, identifier_is_url=True, headers=self._options, timeout=self.client.timeout))
        return body

    def rest(self, operation: str, soql: Callable[[], str], *, include_deleted: bool
             ) -> Iterator[list[dict[str, Any]]]:
        """Pages of raw REST records. ``soql()`` is asked again to restart after ``INVALID_QUERY_LOCATOR``
        (the caller's cursor has moved on by then, so the restart continues where the pages stopped)."""
        restarts = 0
        body = self.query_page(operation, soql(), include_deleted=include_deleted)
        while True:
            yield list(body.get("records") or [])
            url = body.get("nextRecordsUrl")
            if body.get("done", True) or not url:
                return
            try:
                body = self.more(operation, str(url))
            except SalesforceApiError as exc:
                if exc.code != "INVALID_QUERY_LOCATOR" or restarts >= 3:
                    raise
                restarts += 1
                body = self.query_page(operation, soql(), include_deleted=include_deleted)

    def all_rows(self, operation: str, soql: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Every raw record of a small REST query."""
        return [r for page in self.rest(operation, lambda: soql, include_deleted=include_deleted) for r in page]

    def children(self, operation: str, relation: Any) -> list[dict[str, Any]]:
        """The records of a parent-to-child sub-query result, following its own ``nextRecordsUrl`` if the
        parent page truncated it (SOQL reference, "Relationship Query Limits")."""
        if not isinstance(relation, dict):
            return []
        records = list(relation.get("records") or [])
        while not relation.get("done", True) and relation.get("nextRecordsUrl"):
            relation = self.more(operation, str(relation["nextRecordsUrl"]))
            records.extend(relation.get("records") or [])
        return records

    # --- Bulk API 2.0 ----------------------------------------------------------------------------------

    def bulk(self, operation: str, sobject: str, soql: str, *, include_deleted: bool
             ) -> Iterator[tuple[list[str], list[list[str]]]]:
        """Result sets of a Bulk 2.0 query job as ``(header, rows of cells)``."""
        kind = "queryAll" if include_deleted else "query"
        job = self.client.call(f"create Bulk query job ({operation})",
                               lambda sf: bulk_client(sf, sobject).create_job(kind, query=soql))
        self.bulk_jobs += 1
        job_id = str(job["id"])
        try:
            self.wait(sobject, job_id, is_query=True)
            if float(self.client.config.api_version) >= PARALLEL_RESULTS_SINCE:
                yield from self._parallel_results(operation, sobject, job_id)
                return
            locator = ""
            while True:
                def results(sf: Salesforce, at: str = locator) -> Any:
                    return bulk_client(sf, sobject).get_query_results(job_id, at, BULK_RESULT_ROWS)

                result = self.client.call(f"read Bulk query results ({operation})", results)
                rows = list(csv.reader(io.StringIO(result["records"], newline="")))
                if rows:
                    yield rows[0], rows[1:]
                locator = result.get("locator") or ""
                if not locator:
                    return
        finally:
            self.delete_job(sobject, job_id, is_query=True)

    def _parallel_results(self, operation: str, sobject: str, job_id: str
                          ) -> Iterator[tuple[list[str], list[list[str]]]]:
        """A finished job's result sets through ``resultPages``: five locators per answer, read concurrently
        (within the transport's limits), yielded in order."""
        link = f"/services/data/v{self.client.config.api_version}/jobs/query/{job_id}/resultPages"
        while link:
            def pages(sf: Salesforce, at: str = link) -> dict[str, Any]:
                answer: dict[str, Any] = _get(sf, sobject, at, csv_body=False).json()
                return answer

            body = self.client.call(f"list Bulk result pages ({operation})", pages)
            urls = [str(p["resultUrl"]) for p in body.get("resultPages") or [] if p.get("resultUrl")]

            def fetch(url: str) -> str:
                return self.client.call(f"read Bulk query results ({operation})",
                                        lambda sf: _get(sf, sobject, url, csv_body=True).content.decode("utf-8"))

            for text in self.client.transport.map(fetch, urls):
                rows = list(csv.reader(io.StringIO(text.replace("\x00", ""), newline="")))
                if rows:
                    yield rows[0], rows[1:]
            following = body.get("nextRecordsUrl") or body.get("nextRecordUrl")
            link = "" if body.get("done", True) or not following else str(following)

    def delete_job(self, sobject: str, job_id: str, *, is_query: bool) -> None:
        """Delete a finished (or aborted) Bulk job and its data; a failure only leaves it to Salesforce's own
        clean-up (jobs older than 7 days), so it never fails the run."""
        def delete(sf: Salesforce) -> None:
            # Not ``_Bulk2Client.delete_job``: it parses the ``204 No Content`` answer as JSON and raises.
            client = bulk_client(sf, sobject)
            call_salesforce(url=client._construct_request_url(job_id, is_query), method="DELETE",
                            session=client.session, headers=client._get_headers())

        with contextlib.suppress(ClmError):
            self.client.call("delete Bulk job", delete)

    def _abort(self, sobject: str, job_id: str, is_query: bool) -> dict[str, Any]:
        """Abort a job still queued or running; the job's state afterwards (it may have finished meanwhile)."""
        with contextlib.suppress(SalesforceApiError):  # 409 INVALIDJOBSTATE: it finished in the meantime
            self.client.call("abort Bulk job", lambda sf: bulk_client(sf, sobject).abort_job(job_id, is_query))
        info: dict[str, Any] = self.client.call(
            "read Bulk job state", lambda sf: bulk_client(sf, sobject).get_job(job_id, is_query))
        return info

    def wait(self, sobject: str, job_id: str, *, is_query: bool) -> dict[str, Any]:
        """Poll a Bulk job until it completes (polling backs off to ``max_poll_interval``).

        An ingest job that ends ``Failed`` or ``Aborted`` is returned like a complete one: rows it processed
        before stopping stay written and its results say which. At the run's deadline a job still queued or
        running is aborted: an ingest job is returned in its final state, a query job raises
        :class:`TimeBudgetReached`.
        """
        delay = self.poll_interval
        transport = self.client.transport
        while True:
            info: dict[str, Any] = self.client.call(
                "read Bulk job state", lambda sf: bulk_client(sf, sobject).get_job(job_id, is_query))
            state = str(info.get("state"))
            left = transport.time_left()
            if state not in (_DONE, *_FAILED) and left is not None and left <= 0:
                info = self._abort(sobject, job_id, is_query)
                state = str(info.get("state"))
                if is_query and state != _DONE:
                    raise TimeBudgetReached(
                        f"the time budget ran out while Salesforce Bulk query job {job_id} was {state}",
                        hint="the job was aborted; the next run starts it again (a longer --max-runtime, or a "
                             "higher salesforce.bulk_threshold to page through REST instead, avoids the wait)")
            if state == _DONE:
                return info
            if state in _FAILED:
                if not is_query:
                    return info
                raise ConnectorError(f"Salesforce Bulk query job {job_id} ended {state}: "
                                     f"{info.get('errorMessage') or 'no message'}",
                                     hint="run again; if it persists, lower salesforce.bulk_threshold above the "
                                          "record count to use REST paging")
            self.sleep(delay if left is None else min(delay, left))
            delay = min(delay * 2, self.max_poll_interval)


def _get(sf: Salesforce, sobject: str, path: str, *, csv_body: bool) -> requests.Response:
    """GET a path the API handed out (``/services/data/...``) with the session's Bulk headers."""
    client = bulk_client(sf, sobject)
    headers = client._get_headers(client.JSON_CONTENT_TYPE, client.CSV_CONTENT_TYPE if csv_body else None)
    response: requests.Response = call_salesforce(url=f"https://{sf.sf_instance}{path}", method="GET",
                                                  session=client.session, headers=headers)
    return response


def count_soql(sobject: str, where: str) -> str:
    """``SELECT COUNT() FROM <object> [WHERE ...]``."""
    return f"SELECT COUNT() FROM {sobject}" + (f" WHERE {where}" if where else "")


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
