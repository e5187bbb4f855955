"""One check of the engine's columns per run: values that do not fit their declared type, and impossible values.

Pure (no I/O, no clock). Every finding is counted per field with up to :data:`EXAMPLES` record ids, returned in
the enrichment diagnostics, and the value is excluded: a contact property that does not fit or is impossible
becomes unknown (as if the CRM had sent nothing), and a deal with an impossible amount or date is left out of
every model (as if it did not exist). So a bad value is never silent and never moves anybody else's score
(issue 14: a won deal of 1e300 made the spend model fall back for everyone; a close date in 1900 or in epoch
seconds changed stages silently).

The thresholds are constants rather than configuration: each is far outside what a real CRM record can hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from core.models import FieldType, PropertyValue

#: Example record ids kept per field.
EXAMPLES = 5
#: No CRM record we sync can predate 1990 (HubSpot was founded in 2006, Salesforce in 1999); an earlier time is
#: a default such as 1900-01-01 or epoch seconds read as milliseconds (which land in January 1970).
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC).timestamp()
#: Contact date properties may lie in the future (a renewal date), but not past 2100: such a value is epoch
#: milliseconds read as seconds or a typo.
LATEST_PROPERTY = datetime(2100, 1, 1, tzinfo=UTC).timestamp()
#: How far after the as-of a deal may have closed: clock skew and time zones, not real future closes.
FUTURE_MARGIN = 2 * 86_400.0
#: The largest believable single deal amount in any currency (a trillion): above it the amount is a typo or a
#: sentinel such as 1e300, and one such deal would dominate every spend model.
MAX_AMOUNT = 1e12


@dataclass
class FieldQuality:
    """The findings of one field: how many values did not fit its type, how many were impossible, and why."""

    name: str
    unfit: int = 0
    impossible: int = 0
    unconverted: int = 0
    examples: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def add(self, record_id: str, reason: str, *, impossible: bool, unconverted: bool = False) -> None:
        """Count one value of ``record_id`` and keep it as an example while there are fewer than five."""
        if unconverted:
            self.unconverted += 1
        elif impossible:
            self.impossible += 1
        else:
            self.unfit += 1
        if len(self.examples) < EXAMPLES and record_id not in self.examples:
            self.examples.append(record_id)
        if reason not in self.reasons and len(self.reasons) < EXAMPLES:
            self.reasons.append(reason)

    def line(self) -> str:
        """One readable line: field, counts, reasons and example records."""
        counts = []
        if self.unfit:
            counts.append(f"{self.unfit} value(s) not fitting the declared type")
        if self.impossible:
            counts.append(f"{self.impossible} impossible value(s)")
        if self.unconverted:
            counts.append(f"{self.unconverted} amount(s) in a currency without an exchange rate")
        return (f"{self.name}: {' and '.join(counts)} ({'; '.join(self.reasons)}), excluded; "
                f"e.g. {', '.join(self.examples)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"unfit": self.unfit, "impossible": self.impossible, "unconverted": self.unconverted,
                "examples": list(self.examples), "reasons": list(self.reasons)}


@dataclass
class QualityReport:
    """Findings per field (``contact.<property>``, ``deal.amount``, ``deal.closed_at`` ...) of one run."""

    fields: dict[str, FieldQuality] = field(default_factory=dict)

    def add(self, name: str, record_id: str, reason: str, *, impossible: bool, unconverted: bool = False) -> None:
        """Record one bad value of field ``name`` in record ``record_id``."""
        self.fields.setdefault(name, FieldQuality(name)).add(record_id, reason, impossible=impossible,
                                                             unconverted=unconverted)

    def lines(self) -> list[str]:
        """One line per field with findings, in field order."""
        return [self.fields[name].line() for name in sorted(self.fields)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: per field counts, reasons and examples."""
        return {name: self.fields[name].to_dict() for name in sorted(self.fields)}

    def check_property(self, name: str, ids: Sequence[Any] | npt.NDArray[Any], raw: Sequence[PropertyValue],
                       column: npt.NDArray[Any], kind: FieldType) -> npt.NDArray[Any]:
        """Report the values of one property column that do not fit ``kind`` or are impossible.

        ``raw`` are the values as they arrived and ``column`` their conversion (NaN where unreadable); returns the
        column with impossible values made unknown. Text columns always fit.
        """
        if kind in (FieldType.STRING, FieldType.ENUM) or column.dtype == object:
            return column
        out = column.copy()
        for i in np.flatnonzero(~np.isfinite(out)).tolist():
            value = raw[i]
            if value is None or value == "" or (isinstance(value, float) and np.isnan(value)):
                continue
            impossible = bool(np.isinf(out[i]))
            reason = (f"'{_shown(value)}' is not finite" if impossible
                      else f"'{_shown(value)}' is not a {kind.value}")
            self.add(name, str(ids[i]), reason, impossible=impossible)
            out[i] = np.nan
        if kind is FieldType.DATETIME:
            early = out < EARLIEST
            late = out >= LATEST_PROPERTY
            for i in np.flatnonzero(early | late).tolist():
                self.add(name, str(ids[i]), _date_reason(raw[i], float(out[i])), impossible=True)
            out[early | late] = np.nan
        return out

    def check_deals(self, ids: Sequence[Any] | npt.NDArray[Any], amount: npt.NDArray[np.float64],
                    closed: npt.NDArray[np.bool_], created_at: npt.NDArray[np.float64],
                    closed_at: npt.NDArray[np.float64], as_of: float) -> npt.NDArray[np.bool_]:
        """Report deals with an impossible amount or date; returns the mask of deals to keep.

        Impossible: an amount that is infinite, negative or above :data:`MAX_AMOUNT`; a creation or close time
        before :data:`EARLIEST`; a won or lost deal closed more than :data:`FUTURE_MARGIN` after ``as_of``
        (the close date of an open deal is only expected, so it may lie ahead). An unknown (NaN) value is not
        impossible.
        """
        bad = np.zeros(len(ids), dtype=bool)
        checks = (
            ("deal.amount", np.isinf(amount) | (amount < 0) | (amount > MAX_AMOUNT), amount),
            ("deal.created_at", created_at < EARLIEST, created_at),
            ("deal.closed_at", (closed_at < EARLIEST) | (closed & (closed_at > as_of + FUTURE_MARGIN)), closed_at),
        )
        for name, mask, values in checks:
            for i in np.flatnonzero(mask).tolist():
                value = float(values[i])
                if name == "deal.amount":
                    reason = f"{_shown(value)} is not a believable amount (negative, infinite or above 1e12)"
                elif value > as_of:
                    reason = f"{_iso(value)} is after the as-of {_iso(as_of)}"
                else:
                    reason = _date_reason(value, value)
                self.add(name, str(ids[i]), reason + "; the deal is excluded", impossible=True)
            bad |= mask
        return ~bad


def _date_reason(raw: Any, seconds: float) -> str:
    if seconds < EARLIEST and EARLIEST <= seconds * 1000 < LATEST_PROPERTY:
        return f"'{_shown(raw)}' reads as {_iso(seconds)}: epoch seconds where milliseconds are expected"
    if seconds < EARLIEST:
        return f"'{_shown(raw)}' reads as {_iso(seconds)}, before 1990"
    return f"'{_shown(raw)}' reads as after 2100"


def _iso(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).date().isoformat()
    except (ValueError, OverflowError, OSError):
        return "out of range"


def _shown(value: Any) -> str:
    """A value as text, cut short: a report names the value, it does not reproduce a 300-digit number."""
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 30 else text[:27] + "..."
