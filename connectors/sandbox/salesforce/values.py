"""Field values: parsing what clients send (JSON, Bulk CSV), checking it, and rendering what Salesforce returns.

Two kinds of failure, as Salesforce has them:

* a value whose JSON type cannot be deserialized into the field's type (a word into a number field) fails the
  *whole request* with ``400 JSON_PARSER_ERROR`` "Cannot deserialize instance of <type> from VALUE_STRING ...",
  because the body is rejected before any record is processed (messages such as "Cannot deserialize instance
  of currency" are what integrations report, e.g. the Ninja Forms Salesforce add-on's help table);
* a value of the right JSON type that breaks the field's rules (too long, outside the precision, not a
  picklist value, a fraction for an integer) fails *only that record* with a ``statusCode`` such as
  ``STRING_TOO_LONG`` or ``INVALID_TYPE_ON_FIELD_IN_RECORD`` ("value not of required type").
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from connectors.sandbox.salesforce import ids
from connectors.sandbox.salesforce.errors import RecordError
from connectors.sandbox.salesforce.schema import NUMBER_TYPES, FieldDef

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DATETIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
                       r"(Z|[+-]\d{2}:?\d{2})?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

_JSON_TYPE_NAMES = {"double": "double", "currency": "currency", "percent": "percent", "int": "int",
                    "date": "date", "datetime": "datetime", "boolean": "boolean"}


class JsonValueError(Exception):
    """A JSON value that cannot be deserialized into the field type (fails the whole request)."""

    def __init__(self, field: FieldDef, value: Any) -> None:
        token = ("VALUE_TRUE" if value is True else "VALUE_FALSE" if value is False
                 else "VALUE_STRING" if isinstance(value, str)
                 else "START_OBJECT" if isinstance(value, dict) else "START_ARRAY" if isinstance(value, list)
                 else "VALUE_NUMBER_FLOAT" if isinstance(value, float) else "VALUE_NUMBER_INT")
        kind = _JSON_TYPE_NAMES.get(field.type, "string")
        rendered = str(value).lower() if isinstance(value, bool) else value
        super().__init__(f"Cannot deserialize instance of {kind} from {token} value {rendered} "
                         "or request may be missing a required field")
        self.field = field
        self.value = value


def parse_date(text: str) -> date | None:
    """``YYYY-MM-DD`` or ``None``."""
    match = _DATE.match(text)
    if not match:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def parse_datetime(text: str) -> datetime | None:
    """An ISO-8601 dateTime as Salesforce accepts it (``Z``, ``+hh:mm`` or ``+hhmm``; naive means UTC)."""
    match = _DATETIME.match(text)
    if not match:
        day = parse_date(text)
        return datetime(day.year, day.month, day.day, tzinfo=UTC) if day else None
    try:
        fraction = (match[7] or "0")[:6].ljust(6, "0")
        value = datetime(int(match[1]), int(match[2]), int(match[3]), int(match[4]), int(match[5]),
                         int(match[6] or 0), int(fraction), tzinfo=UTC)
    except ValueError:
        return None
    zone = match[8]
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        value -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return value


def _utc_to_milliseconds(value: datetime) -> str:
    """``2024-01-31T12:00:00.000`` in UTC, the part both renderings share.

    A 50k pull renders millions of timestamps: ``isoformat`` is twice as fast as ``strftime``. It pads years
    below 1000 to four digits where glibc's ``%Y`` does not, so those keep the ``strftime`` rendering they always
    had (``parse_datetime`` accepts such years)."""
    value = value.astimezone(UTC)
    if value.year < 1000:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}"
    # Less the ``+00:00`` every UTC value ends with: each API appends its own zone text.
    return value.isoformat(timespec="milliseconds")[:-6]


def format_datetime(value: datetime) -> str:
    """REST/SOQL rendering, e.g. ``2024-01-31T12:00:00.000+0000``."""
    return _utc_to_milliseconds(value) + "+0000"


def format_datetime_csv(value: datetime) -> str:
    """Bulk API CSV rendering, e.g. ``2024-01-31T12:00:00.000Z``."""
    return _utc_to_milliseconds(value) + "Z"


def truncate_ms(value: datetime) -> datetime:
    """Salesforce stores timestamps with millisecond precision."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def from_json(field: FieldDef, value: Any) -> Any:
    """Deserialize one JSON value for ``field``; raises :class:`JsonValueError` for an impossible type."""
    if value is None:
        return None
    kind = field.type
    if isinstance(value, dict | list):
        if kind == "complexvalue":
            return value
        raise JsonValueError(field, value)
    if kind in NUMBER_TYPES:
        if isinstance(value, bool):
            raise JsonValueError(field, value)
        if isinstance(value, int | float):
            return value
        # Jackson coerces numeric strings ("12.5") into numbers; anything else is a parser error.
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise JsonValueError(field, value) from None
        if math.isnan(number) or math.isinf(number):
            raise JsonValueError(field, value)
        return int(number) if kind == "int" and number.is_integer() and "." not in value else number
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise JsonValueError(field, value)
    if kind == "date":
        parsed_date = parse_date(value) if isinstance(value, str) else None
        if parsed_date is None:
            raise JsonValueError(field, value)
        return parsed_date
    if kind == "datetime":
        parsed = parse_datetime(value) if isinstance(value, str) else None
        if parsed is None:
            raise JsonValueError(field, value)
        return truncate_ms(parsed)
    # Text-like fields accept JSON scalars and keep their textual form.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _bulk_type_error(field: FieldDef, value: str, column: int) -> RecordError:
    soap = field.describe()["soapType"]
    return RecordError("INVALID_FIELD", f"Failed to deserialize field at col {column}. Due to, '{value}' is not a "
                                        f"valid value for the type {soap}", [field.name])


def from_csv(field: FieldDef, text: str, column: int) -> Any:
    """Parse one Bulk API CSV cell (non-empty; ``#N/A`` handled by the caller) for ``field``."""
    kind = field.type
    if kind in NUMBER_TYPES:
        try:
            number = float(text)
        except ValueError:
            raise _bulk_type_error(field, text, column) from None
        if kind == "int":
            if not re.fullmatch(r"[+-]?\d+", text.strip()):
                # "250.0" into an integer field is refused per row (reported by Bulk loaders, e.g. TROCCO).
                raise RecordError("INVALID_TYPE_ON_FIELD_IN_RECORD",
                                  f"{field.label}: value not of required type: {text}", [field.name])
            return int(text)
        return number
    if kind == "boolean":
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise _bulk_type_error(field, text, column)
    if kind == "date":
        parsed_date = parse_date(text.strip())
        if parsed_date is None:
            raise _bulk_type_error(field, text, column)
        return parsed_date
    if kind == "datetime":
        parsed = parse_datetime(text.strip())
        if parsed is None:
            raise _bulk_type_error(field, text, column)
        return truncate_ms(parsed)
    return text


def check(field: FieldDef, value: Any) -> Any:
    """Apply the field's rules to a deserialized value; returns the value as stored or raises RecordError."""
    if value is None:
        if not field.nillable:
            raise RecordError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{field.name}]", [field.name])
        return None
    kind = field.type
    if kind == "int":
        if isinstance(value, float) and not value.is_integer():
            raise RecordError("INVALID_TYPE_ON_FIELD_IN_RECORD",
                              f"{field.label}: value not of required type: {value}", [field.name])
        number = int(value)
        if field.digits and abs(number) >= 10**field.digits:
            raise RecordError("NUMBER_OUTSIDE_VALID_RANGE",
                              f"{field.label}: value outside of valid range on numeric field: {value}",
                              [field.name])
        return number
    if kind in NUMBER_TYPES:
        try:
            rounded = Decimal(str(value)).quantize(Decimal(1).scaleb(-field.scale), rounding=ROUND_HALF_UP)
        except InvalidOperation:
            raise RecordError("NUMBER_OUTSIDE_VALID_RANGE",
                              f"{field.label}: value outside of valid range on numeric field: {value}",
                              [field.name]) from None
        if field.precision and abs(rounded) >= Decimal(10) ** (field.precision - field.scale):
            raise RecordError("NUMBER_OUTSIDE_VALID_RANGE",
                              f"{field.label}: value outside of valid range on numeric field: {value}",
                              [field.name])
        return float(rounded)
    if kind == "reference":
        normalized = ids.normalize(value)
        targets = [ids.KEY_PREFIXES.get(t) for t in field.reference_to]
        if normalized is None or normalized[:3] not in targets:
            label = field.label.replace(" ID", "") + " ID"
            raise RecordError("MALFORMED_ID", f"{label}: id value of incorrect type: {value}", [field.name])
        return normalized
    if isinstance(value, str):
        if kind == "picklist" and field.restricted and value not in field.picklist:
            raise RecordError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                              f"{field.label}: bad value for restricted picklist field: {value}", [field.name])
        if field.length and len(value) > field.length:
            raise RecordError("STRING_TOO_LONG",
                              f"{field.label}: data value too large: {value[:80]} (max length={field.length})",
                              [field.name])
        if kind == "email" and value and not _EMAIL.match(value):
            raise RecordError("INVALID_EMAIL_ADDRESS", f"{field.label}: invalid email address: {value}",
                              [field.name])
        if value == "" and kind != "complexvalue":
            # Salesforce stores empty text as null.
            if not field.nillable:
                raise RecordError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{field.name}]",
                                  [field.name])
            return None
    return value


def to_json(field: FieldDef, value: Any) -> Any:
    """Render a stored value as the REST API returns it."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if field.type in ("double", "currency", "percent"):
        return float(value)
    return value


def to_csv(field: FieldDef, value: Any) -> str:
    """Render a stored value as a Bulk API 2.0 query result cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_datetime_csv(value)
    if isinstance(value, date):
        return value.isoformat()
    if field.type in ("double", "currency", "percent"):
        number = float(value)
        return str(int(number)) if number.is_integer() and field.scale == 0 else repr(number)
    return str(value)


def python_value(value: Any) -> Any:
    """A seed/person value made storable: aware UTC datetimes, plain numbers."""
    if isinstance(value, datetime):
        return truncate_ms(value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    return value
