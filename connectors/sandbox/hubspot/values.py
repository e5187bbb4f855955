"""Property values: how HubSpot validates what is written and how it renders what is read.

HubSpot stores every value as text and returns all of them as strings. Writes are validated per property
type; one bad value rejects the request with a ``VALIDATION_ERROR`` whose message is
``Property values were not valid: [{"isValid":false,"message":...,"error":CODE,"name":PROPERTY}]``
(format as HubSpot sends it, e.g. ``INVALID_INTEGER``/``INVALID_OPTION``/``INVALID_DATE`` bodies quoted in
github.com/gitcoinco/code_fund_ads/issues/479 and public client tests).

Internally datetime and date values are kept as epoch milliseconds (ints) so they sort and compare cheaply;
everything else is kept as the string HubSpot would return.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connectors.sandbox.hubspot.schema import PropertyDef

Stored = str | int
"""A stored value: epoch ms for date/datetime properties, the string otherwise."""

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_EPOCH = re.compile(r"^-?\d{1,16}$")
_DAY_MS = 86_400_000


class ValueProblem(Exception):
    """A value HubSpot would refuse: ``code`` is its ``error`` field (``INVALID_OPTION``...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as HubSpot renders timestamps: ``2019-10-30T03:30:17.883Z``."""
    seconds, millis = divmod(ms, 1000)
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    if moment.year < 1000:
        # glibc's %Y does not pad years below 1000 (isoformat does): such years keep the strftime rendering.
        return f"{moment:%Y-%m-%dT%H:%M:%S}.{millis:03d}Z"
    # isoformat is twice strftime's speed, and a search page renders hundreds of timestamps; a whole-second
    # UTC moment renders as ``...T03:30:17+00:00``, less the offset.
    return f"{moment.isoformat()[:-6]}.{millis:03d}Z"


def to_ms(moment: datetime) -> int:
    """A datetime (naive = UTC) as epoch milliseconds."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return round(aware.timestamp() * 1000)


def parse_time(text: str) -> int | None:
    """Epoch ms from what HubSpot accepts for date/datetime values: epoch ms, ISO 8601, or ``YYYY-MM-DD``."""
    text = text.strip()
    if _EPOCH.match(text):
        return int(text)
    try:
        if len(text) == 10:
            return to_ms(datetime.combine(date.fromisoformat(text), datetime.min.time()))
        return to_ms(datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00")))
    except ValueError:
        return None


def _not_midnight(ms: int) -> ValueProblem:
    # HubSpot's own wording, e.g. "1579179660000 is at 13:1:0.0 UTC, not midnight!" (INVALID_DATE), quoted from
    # a live response in public client code (HubSpot date properties must be midnight UTC).
    rest = ms % _DAY_MS
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return ValueProblem("INVALID_DATE", f"{ms} is at {hours}:{minutes}:{seconds}.{millis} UTC, not midnight!")


def _allowed_options(prop: PropertyDef) -> str:
    # HubSpot prints the protobuf-ish option list in its INVALID_OPTION message
    # (github.com/gitcoinco/code_fund_ads/issues/479 quotes one verbatim).
    parts = [f'label: "{o.label}"\nvalue: "{o.value}"\ndisplay_order: {o.display_order}\nhidden: '
             f"{str(o.hidden).lower()}\nread_only: false\n" for o in prop.options]
    return "[" + ", ".join(parts) + "]"


def normalise(prop: PropertyDef, raw: object) -> Stored | None:
    """Validate one written value and return what to store (``None`` clears the value).

    Raises :class:`ValueProblem` with HubSpot's error code and message when HubSpot would refuse it.
    """
    if raw is None:
        return None
    if isinstance(raw, bool):
        text = "true" if raw else "false"
    elif isinstance(raw, int | float):
        text = repr(raw) if isinstance(raw, float) else str(raw)
    elif isinstance(raw, str):
        text = raw
    else:
        raise ValueProblem("INVALID_TYPE", f"{raw!r} is not a string value")
    if text == "":
        return None  # an empty string clears a property in HubSpot
    kind = prop.type
    if kind in ("string", "phone_number"):
        return text
    # Non-string values with leading/trailing whitespace are refused since April 2025 (developers.hubspot.com/
    # changelog/breaking-change-enhanced-validations-for-non-string-properties-in-hubspots-crmobject-apis).
    if kind == "number":
        if not _NUMBER.match(text) or not math.isfinite(float(text)):
            # Code named by analogy with HubSpot's INVALID_INTEGER / INVALID_LONG ("X was not a valid long.").
            raise ValueProblem("INVALID_DOUBLE", f"{text} was not a valid double.")
        return text
    if kind in ("enumeration", "bool"):
        if prop.field_type == "checkbox":
            values = text.split(";")
            allowed = {o.value for o in prop.options}
            if prop.external_options or all(v in allowed for v in values if v):
                return text
            raise ValueProblem("INVALID_OPTION", f"{text} was not one of the allowed options: {_allowed_options(prop)}")
        if prop.external_options or any(o.value == text for o in prop.options):
            return text
        if kind == "bool" and text in ("true", "false"):
            return text
        raise ValueProblem("INVALID_OPTION", f"{text} was not one of the allowed options: {_allowed_options(prop)}")
    if kind == "datetime":
        ms = parse_time(text) if text == text.strip() else None
        if ms is None:
            raise ValueProblem("INVALID_LONG", f"{text} was not a valid long.")
        return ms
    if kind == "date":
        ms = parse_time(text) if text == text.strip() else None
        if ms is None:
            raise ValueProblem("INVALID_DATE", f"{text} was not a valid date.")
        if ms % _DAY_MS:
            raise _not_midnight(ms)
        return ms
    return text


def render(prop: PropertyDef | None, value: Stored) -> str:
    """A stored value as HubSpot returns it (always a string)."""
    if isinstance(value, int) and prop is not None:
        if prop.type == "date":
            return datetime.fromtimestamp(value // 1000, tz=UTC).strftime("%Y-%m-%d")
        if prop.type == "datetime":
            return iso_ms(value)
    return str(value)


def sort_key(prop: PropertyDef | None, value: Stored) -> float | str:
    """A comparable key for search filters and sorts (numbers and times numerically, text case-folded)."""
    if isinstance(value, int):
        return float(value)
    if prop is not None and prop.type == "number":
        try:
            return float(value)
        except ValueError:
            return math.inf
    return value.casefold()


def plain_number(value: float) -> str:
    """A number as HubSpot shows one we seeded: no exponent, no trailing ``.0``."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.10f}".rstrip("0").rstrip(".")
