"""Reading query results: REST query/queryMore pages, or Bulk API 2.0 query jobs, row by row.

The REST path pages with query locators (``nextRecordsUrl``) of up to ``page_size`` records
(``Sforce-Query-Options: batchSize``). A locator the org released (a user has at most 10 open cursors) or that
expired after 15 idle minutes answers ``INVALID_QUERY_LOCATOR``; the pull then restarts the query from its
cursor, which is exactly what the keyset window is for.

The Bulk path creates a query job, polls it, and reads the CSV result sets with ``Sforce-Locator``
(https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_job_results.htm).
simple-salesforce's ``SFBulk2Type.query`` polls with its own sleeps and hides the per-request budget, so its
lower-level ``_Bulk2Client`` calls are made one by one here, each through the transport.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from simple_salesforce.api import Salesforce

from connectors.salesforce.client import SalesforceApiError, SalesforceClient
from core.errors import ConnectorError

#: Rows per Bulk 2.0 result request (simple-salesforce's default; Salesforce allows more, memory decides).
BULK_RESULT_ROWS = 50_000
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

    @property
    def _options(self) -> dict[str, str]:
        return {"Sforce-Query-Options": f"batchSize={self.page_size}"}

    def count(self, sobject: str, where: str, *, include_deleted: bool) -> int:
        """``SELECT COUNT()``: one call, no rows transferred."""
        soql = f"SELECT COUNT() FROM {sobject}" + (f" WHERE {where}" if where else "")
        body = self.client.call(f"count {sobject}", lambda sf: sf.query(soql, include_deleted=include_deleted,
                                                                        timeout=self.client.timeout))
        return int(body.get("totalSize", 0))

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
        self.wait(sobject, job_id, is_query=True)
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

    def wait(self, sobject: str, job_id: str, *, is_query: bool) -> dict[str, Any]:
        """Poll a Bulk job until it completes (polling backs off to ``max_poll_interval``)."""
        delay = self.poll_interval
        while True:
            info: dict[str, Any] = self.client.call(
                "read Bulk job state", lambda sf: bulk_client(sf, sobject).get_job(job_id, is_query))
            state = str(info.get("state"))
            if state == _DONE:
                return info
            if state in _FAILED:
                if not is_query:
                    return info
                raise ConnectorError(f"Salesforce Bulk query job {job_id} ended {state}: "
                                     f"{info.get('errorMessage') or 'no message'}",
                                     hint="run again; if it persists, lower salesforce.bulk_threshold above the "
                                          "record count to use REST paging")
            self.sleep(delay)
            delay = min(delay * 2, self.max_poll_interval)


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
