"""Writing our values onto contacts in batches, with every record's outcome reported.

HubSpot answers a batch update in one of three ways: 200 (all written), 207 (per-record errors, e.g. ids not
found), or 400 for the whole batch when one input has an invalid value — nothing written. A real whole-batch
``VALIDATION_ERROR`` names the *property* (``context.propertyName``, and a message such as
``Property values were not valid: [{"name":"clm_score","message":"abc was not a valid number.",…}]``), not the
input index. So the inputs are found by what the body carries: the property and, when the message quotes it,
the offending value, matched against what each input sends. Those inputs are set aside with the reason and the
rest resent; only when the body identifies no input is the batch split in two (the last resort, O(log n) calls).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from connectors.base import FieldUpdate, WriteResult
from connectors.hubspot.client import HubSpotApiError, HubSpotClient
from core.models import FieldSpec, FieldType


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


class Writer:
    """Batch updates of contacts with per-record results."""

    def __init__(self, client: HubSpotClient, specs: Mapping[str, FieldSpec], crm_name: Any,
                 batch_size: int) -> None:
        self.client = client
        self.specs = dict(specs)
        self.crm_name = crm_name
        self.batch_size = batch_size

    def write(self, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        """Batch-update our properties; every record gets a result, in input order."""
        if len(updates) > self.batch_size:
            raise ValueError(f"batch of {len(updates)} exceeds hubspot.batch_size={self.batch_size}")
        results: dict[str, WriteResult] = {}
        self._write_batch([(u.record_id, self.encode(u)) for u in updates], results)
        return [results[u.record_id] for u in updates]

    def encode(self, update: FieldUpdate) -> dict[str, str]:
        """One update as HubSpot properties (CRM names, HubSpot's text forms)."""
        props = {}
        for name, value in update.values.items():
            spec = self.specs.get(name)
            if name == "lifecyclestage":
                props[name] = str(value)
            elif spec is None:
                raise ValueError(f"'{name}' is not one of our fields")
            else:
                props[self.crm_name(name)] = format_value(spec, value)
        return props

    def _write_batch(self, inputs: list[tuple[str, dict[str, str]]], results: dict[str, WriteResult]) -> None:
        while inputs:
            try:
                body = self.client.call("batch update contacts", "crm.contacts.batch_api", "update",
                                        {"inputs": [{"id": rid, "properties": props} for rid, props in inputs]})
            except HubSpotApiError as exc:
                if exc.status not in (400, 404) or len(inputs) == 1:
                    for rid, _ in inputs:
                        results[rid] = rejection(rid, exc.body, exc.status)
                    return
                named = suspects(exc.body, inputs)
                if not named:
                    middle = len(inputs) // 2
                    self._write_batch(inputs[:middle], results)
                    self._write_batch(inputs[middle:], results)
                    return
                results.update(named)
                inputs = [(rid, props) for rid, props in inputs if rid not in named]
                continue
            for ok in body.get("results", []):
                results[str(ok["id"])] = WriteResult(str(ok["id"]), ok=True)
            for error in body.get("errors", []):
                status = int(error["status"]) if str(error.get("status", "")).isdigit() else 400
                for record_id in (str(i) for i in (error.get("context") or {}).get("ids", [])):
                    results[record_id] = rejection(record_id, error, status)
            for rid, _ in inputs:
                # HubSpot answers with the records it wrote; any input it neither wrote nor named is unknown.
                results.setdefault(rid, WriteResult(rid, ok=False, reason="no result from HubSpot", transient=True))
            return


def _problems(body: Mapping[str, Any]) -> list[tuple[str | None, str, str, int | None]]:
    """(property, code, message, input index) for each problem a whole-batch 400 describes."""
    out: list[tuple[str | None, str, str, int | None]] = []
    for error in body.get("errors") or []:
        context = error.get("context") or {}
        names = context.get("propertyName") or [None]
        where = re.match(r"inputs\[(\d+)\]", str(error.get("in", "")))
        for name in names:
            out.append((name, str(error.get("code") or ""), str(error.get("message", "")),
                        int(where.group(1)) if where else None))
    message = str(body.get("message", ""))
    listed = message.find("[")
    if listed >= 0:
        try:
            details = json.loads(message[listed:])
        except ValueError:
            details = []
        for item in details if isinstance(details, list) else []:
            if isinstance(item, dict) and item.get("name"):
                out.append((str(item["name"]), str(item.get("error") or ""), str(item.get("message") or ""), None))
    return out


def _quotes(message: str, value: str) -> bool:
    """Whether a HubSpot validation message is about ``value``: it opens with it
    (``abc was not a valid number.``, ``no-such was not one of the allowed options: [...]``); the allowed values
    it lists afterwards do not count."""
    if not value:
        return False
    return re.match(rf"['\"]?{re.escape(value)}['\"]? (was|is) not\b", message.strip()) is not None


def suspects(body: Mapping[str, Any], inputs: Sequence[tuple[str, Mapping[str, str]]]) -> dict[str, WriteResult]:
    """The inputs a whole-batch 400 identifies, each with its reason and property; empty when it names none."""
    named: dict[str, WriteResult] = {}
    category = str(body.get("category") or "VALIDATION_ERROR")
    for prop, code, message, index in _problems(body):
        reason = f"{code or category}: {message or body.get('message', '')}"[:300]
        if index is not None and index < len(inputs):
            rid = inputs[index][0]
            named[rid] = WriteResult(rid, ok=False, reason=reason, field=prop)
            continue
        if prop is None:
            continue
        for rid, props in inputs:
            if prop in props and _quotes(message, props[prop]):
                named[rid] = WriteResult(rid, ok=False, reason=reason, field=prop)
    return named


def rejection(record_id: str, body: Mapping[str, Any], status: int) -> WriteResult:
    """A record HubSpot refused, with the property when the body names one."""
    category = str(body.get("category", ""))
    message = str(body.get("message", "")) or category or f"HTTP {status}"
    field = None
    names = (body.get("context") or {}).get("propertyName")
    match = re.search(r"\"name\"\s*:\s*\"([^\"]+)\"", message) or re.search(r"property[:\s]+'?([a-z0-9_]+)", message)
    if names:
        field = str(names[0])
    elif match:
        field = match.group(1)
    gone = status == 404 or category == "OBJECT_NOT_FOUND"
    return WriteResult(record_id, ok=False, reason=f"{category or status}: {message}"[:500], field=field, gone=gone)
