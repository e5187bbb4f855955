"""Writing our values onto contacts, one ``update-partial`` per contact, every record's outcome reported.

``PUT subscribers/update-partial`` takes ``{"id": …, "properties": [...]}`` and changes only the properties sent
("This will not affect other fields", github.com/engagebay/restapi README §1.4), so only fields we own are ever
written. It cannot delete a property, and the README asks never to send null ("Please don't pass null value",
§1.3): a value we no longer have is written as empty text.

The README's batch endpoint (§1.16, ``POST subscribers/subscriber-batch``, up to 100 contacts) *creates*
contacts, runs asynchronously ("it may take several minutes"), reports per-record outcomes only to a callback URL
and refuses a batch while another is running; it says nothing of updating a contact by id. A CLI or a scheduled
job has no callback URL to offer and must know each record's outcome before it checkpoints, so writes go one
contact per call, a batch of ``batch_size`` calls per checkpoint, ``max_concurrency`` batches in flight, paced by
the shared transport.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from connectors.base import FieldUpdate, WriteResult
from connectors.engagebay.client import EngageBayApiError, EngageBayClient
from connectors.engagebay.fields import FIELD_TYPES
from connectors.engagebay.records import DateText
from core.errors import TimeBudgetReached
from core.models import FieldSpec, FieldType


def format_value(spec: FieldSpec, value: Any, dates: DateText) -> str:
    """One of our values as EngageBay text: numbers plain, DATE in the account's format, CHECKBOX true/false,
    empty text for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if spec.type is FieldType.NUMBER:
        text = f"{float(value):.4f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    if spec.type is FieldType.DATETIME:
        moment = value if isinstance(value, datetime) else datetime.fromtimestamp(float(value), tz=UTC)
        return dates.format(moment)
    if spec.type is FieldType.BOOL:
        return "true" if value else "false"
    return str(value)


class Writer:
    """Partial updates of contacts, one call each, with per-record results in input order."""

    def __init__(self, client: EngageBayClient, specs: Mapping[str, FieldSpec], crm_name: Callable[[str], str],
                 batch_size: int, dates: DateText) -> None:
        self.client = client
        self.specs = dict(specs)
        self.crm_name = crm_name
        self.batch_size = batch_size
        self.dates = dates

    def write(self, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        """Write each update, in input order, with a result for each; when the run's time budget ends first
        (``--max-runtime``), the results of the records sent so far: the others stay planned for the next run."""
        if len(updates) > self.batch_size:
            raise ValueError(f"batch of {len(updates)} exceeds engagebay.batch_size={self.batch_size}")
        bodies = [(u.record_id, self.encode(u)) for u in updates]
        results: list[WriteResult] = []
        # One call after another: the sync already sends up to max_concurrency batches at once.
        for body in bodies:
            try:
                results.append(self._write_one(body))
            except TimeBudgetReached:
                break
        return results

    def encode(self, update: FieldUpdate) -> list[dict[str, str]]:
        """One update as the ``properties`` list of an update-partial body (our fields only)."""
        out = []
        for name, value in update.values.items():
            spec = self.specs.get(name)
            if spec is None:
                raise ValueError(f"'{name}' is not one of our fields")
            out.append({"name": self.crm_name(name), "value": format_value(spec, value, self.dates),
                        "field_type": FIELD_TYPES[spec.type], "type": "CUSTOM"})
        return out

    def _write_one(self, item: tuple[str, list[dict[str, str]]]) -> WriteResult:
        record_id, props = item
        # EngageBay ids are 16-digit numbers in its JSON; ours are their text.
        ident: int | str = int(record_id) if record_id.isdigit() else record_id
        try:
            self.client.call("update contact", "PUT", "subscribers/update-partial",
                             body={"id": ident, "properties": props})
        except EngageBayApiError as exc:
            field = next((p["name"] for p in props if p["name"] in exc.reason), None)
            # The README does not say how an update of a deleted contact is answered; a 404 (or a 400 saying the
            # contact does not exist) means it is gone, not that our values were wrong.
            gone = exc.status == 404 or "not found" in exc.reason.lower() or "not exist" in exc.reason.lower()
            return WriteResult(record_id, ok=False, reason=f"{exc.status}: {exc.reason}"[:500], field=field, gone=gone)
        return WriteResult(record_id, ok=True)
