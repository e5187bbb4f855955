"""The narrow interface every CRM connector implements; the sync engine needs nothing else.

A connector knows its CRM's API only: how to page through contacts and deals (all, or changed since a
cursor), which records were deleted, how to make sure our custom fields exist, and how to write one batch of
field values reporting each record's outcome. Pacing and retries come from :mod:`connectors.transport`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from core.models import Contact, Deal, FieldSpec


@dataclass
class Page:
    """One page of pulled records plus the cursor to store once it is safely in the mirror."""

    contacts: list[Contact] = field(default_factory=list)
    deals: list[Deal] = field(default_factory=list)
    deleted_contact_ids: list[str] = field(default_factory=list)
    deleted_deal_ids: list[str] = field(default_factory=list)
    cursor: dict[str, str] = field(default_factory=dict)
    merged_contacts: dict[str, str] = field(default_factory=dict)
    """Contact ids merged away -> the id of the record they were merged into (HubSpot creates a new one)."""
    problems: list[str] = field(default_factory=list)
    """Per-record data problems (named record and field) that did not stop the pull."""
    live_contact_ids: list[str] | None = None
    """A reconciling sweep's every live contact id: the mirror drops the contacts not among them (None: no sweep)."""
    live_deal_ids: list[str] | None = None
    """Likewise every live deal id."""


@dataclass(frozen=True)
class FieldUpdate:
    """New values of our fields for one record (logical field names, Python values)."""

    record_id: str
    values: Mapping[str, Any]


@dataclass(frozen=True)
class WriteResult:
    """What the CRM did with one record of a batch."""

    record_id: str
    ok: bool
    reason: str | None = None
    field: str | None = None
    transient: bool = False
    gone: bool = False
    """The record was deleted or merged away: drop it from the mirror rather than retrying."""


@dataclass(frozen=True)
class FieldStatus:
    """The outcome of ensuring one of our fields exists in the CRM."""

    name: str
    crm_name: str
    action: str
    """``exists``, ``created``, ``updated`` (enum options added), ``conflict`` or ``failed``."""
    detail: str = ""


@dataclass(frozen=True)
class CheckResult:
    """One line of ``clm check``: what was checked, whether it passed and how to fix it."""

    name: str
    ok: bool
    detail: str = ""
    fix: str = ""


class Connector(Protocol):
    """What the sync engine needs from a CRM."""

    name: str
    batch_size: int
    deadline: float | None
    """When (``time.monotonic()``) work that waits on the CRM, such as a queued Bulk job, gives up: the run's
    time budget, set by the sync for the length of a run; None waits as long as the CRM takes."""

    def pull(self, cursor: Mapping[str, str] | None) -> Iterator[Page]:
        """Yield pages of contacts and deals: all of them when ``cursor`` is None, else those changed since."""
        ...

    def ensure_fields(self, specs: Sequence[FieldSpec]) -> list[FieldStatus]:
        """Create the missing fields we own; leave existing ones alone; report type conflicts."""
        ...

    def crm_field_name(self, logical: str) -> str:
        """The CRM's name for one of our logical field names."""
        ...

    def write(self, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        """Write one batch (at most ``batch_size``); one result per input record, in input order. A connector
        that writes record by record may stop early when the run's time budget ends (results for a prefix of
        the batch: the rest was not sent); one that sends the batch in one call raises
        :class:`core.errors.TimeBudgetReached` before sending instead."""
        ...

    def check(self, specs: Sequence[FieldSpec]) -> list[CheckResult]:
        """Credentials, permissions, reachability and our fields, each with a fix when it fails."""
        ...


@runtime_checkable
class FieldAccess(Protocol):
    """A connector whose fields are created once by an admin (``clm fields ensure``), not by each sync.

    The sync asks :meth:`field_access` instead of :meth:`Connector.ensure_fields`: what the logged-in user may
    write, one :class:`FieldStatus` per field (and object), ``failed`` ones naming the missing permission.
    """

    def field_access(self, specs: Sequence[FieldSpec]) -> list[FieldStatus]:
        """Which of our fields the logged-in user may write; changes nothing in the CRM."""
        ...


@runtime_checkable
class DescribesProperties(Protocol):
    """A connector that can list the properties its CRM holds on contacts and deals (HubSpot's properties API,
    Salesforce describe), so a run can tell a misspelled configured property from one that is merely empty."""

    def crm_properties(self, object_type: str) -> dict[str, str]:
        """Every property of ``contact`` or ``deal`` records the user can read: name -> the CRM's type name."""
        ...


@runtime_checkable
class WritesOneByOne(Protocol):
    """A connector whose CRM has no batch update (EngageBay): :meth:`Connector.write` makes one API call per
    record, so a run's write calls are its records, not its batches."""

    writes_one_record_per_call: bool


@runtime_checkable
class BulkWriter(Protocol):
    """A connector that can also write a large plan in few API calls (e.g. Salesforce Bulk API 2.0).

    The sync uses :meth:`write_bulk` instead of batches of ``batch_size`` when a plan has more than
    ``bulk_write_threshold`` records, in chunks it checkpoints one by one.
    """

    bulk_write_threshold: int

    def write_bulk(self, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        """Write any number of records; one result per input record, in input order."""
        ...


def parse_time(value: Any) -> datetime | None:
    """Read a CRM timestamp: ISO 8601 (with ``Z`` or offset), a date, or epoch milliseconds.

    Anything unreadable raises :class:`ValueError` (never ``OSError``/``OverflowError``, which
    ``datetime.fromtimestamp`` raises for out-of-range numbers such as ``99999999999999999999``, issue 14), so
    the caller can report the record and field and skip the record.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    text = str(value)
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"'{text[:40]}' is not a readable date") from None
