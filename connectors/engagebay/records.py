"""EngageBay contacts and deals as the project's records, and its DATE text as datetimes.

Shapes (github.com/engagebay/restapi README §1.1, §3.1, §4.1): a record's values sit in a ``properties`` list of
``{name, value, field_type, type: SYSTEM|CUSTOM}``, values as text; ``created_time``/``updated_time`` and a deal's
``closed_date`` are epoch *seconds*, and a contact never edited has ``updated_time: 0``; a deal names its track
(``track_id``) and milestone (``milestoneLabelName``), whose won/lost meaning is in the track's milestones
(``isWon``/``isLost``); its people are ``contact_ids``. DATE custom fields hold text in the API user's date format
and time zone ("Date Format": ``DD/MM/YYYY`` -> ``31/07/2019 12:00:00``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from connectors.base import Page
from core.errors import DataError
from core.models import Contact, Deal, DealStatus, PropertyValue

#: EngageBay's date format names (Preferences -> Dateformat) as strptime patterns.
DATE_PATTERNS = {"DD/MM/YYYY": "%d/%m/%Y", "MM/DD/YYYY": "%m/%d/%Y", "YYYY-MM-DD": "%Y-%m-%d",
                 "YYYY/MM/DD": "%Y/%m/%d"}


class DateText:
    """Reads and writes DATE values in the account's format and time zone."""

    def __init__(self, date_format: str, timezone: str) -> None:
        self.pattern = DATE_PATTERNS[date_format]
        self.zone = ZoneInfo(timezone)
        # The common shape, day-month-year and the time to the second, read without strptime (3x its speed: a
        # contact has several DATE fields, a pull reads them all).
        separator = self.pattern[2]  # every pattern is "%x<sep>%y<sep>%z"
        order = [part[1] for part in self.pattern.split(separator)]
        groups = {"d": r"(?P<d>\d{1,2})", "m": r"(?P<m>\d{1,2})", "Y": r"(?P<Y>\d{4})"}
        self._fast = re.compile(re.escape(separator).join(groups[p] for p in order)
                                + r" (?P<H>\d{1,2}):(?P<M>\d{2}):(?P<S>\d{2})")

    def format(self, moment: datetime) -> str:
        """A datetime as the account writes it, to the second (``31/07/2019 12:00:00``)."""
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return aware.astimezone(self.zone).strftime(self.pattern + " %H:%M:%S")

    def parse(self, text: str) -> datetime:
        """DATE text (with or without the time) as an aware UTC datetime; :class:`ValueError` when unreadable."""
        text = text.strip()
        match = self._fast.fullmatch(text)
        if match is not None:
            try:
                local = datetime(int(match["Y"]), int(match["m"]), int(match["d"]), int(match["H"]),
                                 int(match["M"]), int(match["S"]))
            except ValueError:
                raise ValueError(f"'{text[:40]}' is not a date in the account's format") from None
            return local.replace(tzinfo=self.zone).astimezone(UTC)
        for pattern in (self.pattern + " %H:%M:%S", self.pattern + " %H:%M", self.pattern):
            try:
                local = datetime.strptime(text, pattern)
            except ValueError:
                continue
            return local.replace(tzinfo=self.zone).astimezone(UTC)
        raise ValueError(f"'{text[:40]}' is not a date in the account's format")


def epoch_seconds(value: Any) -> datetime | None:
    """``created_time``-style epoch seconds as a datetime; 0 or nothing is None. Milliseconds (13 digits) are
    read too, in case an account or endpoint sends them."""
    if value in (None, "", 0, "0"):
        return None
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"'{value}' is not a time")
    if number > 1e11:
        number /= 1000
    try:
        return datetime.fromtimestamp(number, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"'{str(value)[:40]}' is not a readable time") from None


def seconds(raw: Mapping[str, Any], key: str) -> int:
    """A record's ``created_time``/``updated_time`` as whole epoch seconds (0 when absent or unreadable)."""
    try:
        moment = epoch_seconds(raw.get(key))
    except (TypeError, ValueError):
        return 0
    return int(moment.timestamp()) if moment else 0


def properties(raw: Mapping[str, Any], dates: DateText, kind: str) -> dict[str, PropertyValue]:
    """A record's ``properties`` list as name -> value (DATE fields as datetimes, empty values left out)."""
    out: dict[str, PropertyValue] = {}
    for item in raw.get("properties") or []:
        if not isinstance(item, Mapping) or not item.get("name"):
            continue
        value = item.get("value")
        if value is None or value == "":
            continue
        name = str(item["name"])
        if str(item.get("field_type", "")).upper() == "DATE" and isinstance(value, str):
            try:
                out[name] = dates.parse(value)
            except ValueError as exc:
                raise DataError(f"{kind} {raw.get('id')}, field {name}: {exc}; the {kind} is skipped") from None
            continue
        out[name] = value if isinstance(value, str | int | float | bool) else str(value)
    return out


def add_contact(raw: Mapping[str, Any], page: Page, dates: DateText) -> None:
    """Append one contact to a page, or a problem naming the record when it cannot be read."""
    contact_id = raw.get("id")
    try:
        props = properties(raw, dates, "contact")
        email = raw.get("email") or props.pop("email", None)
        props.pop("email", None)
        if raw.get("score") not in (None, ""):
            props.setdefault("score", raw["score"])
        created = _time(raw, "created_time", "contact")
        page.contacts.append(Contact(
            id=str(contact_id), email=str(email) if email else None,
            created_at=created or datetime.fromtimestamp(0, tz=UTC),
            updated_at=_time(raw, "updated_time", "contact") or created, properties=props))
    except DataError as exc:
        page.problems.append(exc.message)
    except (ValueError, TypeError) as exc:
        page.problems.append(f"contact {contact_id}: unreadable record ({exc.__class__.__name__})")


class Tracks:
    """The account's deal tracks and what each milestone means (won, lost or open)."""

    def __init__(self, tracks: Sequence[Mapping[str, Any]], won: Sequence[str], lost: Sequence[str]) -> None:
        self.names: dict[str, str] = {}
        self.status: dict[tuple[str, str], DealStatus] = {}
        won_names, lost_names = {w.lower() for w in won}, {x.lower() for x in lost}
        for track in tracks:
            track_id = str(track.get("id"))
            self.names[track_id] = str(track.get("name") or track_id)
            for milestone in track.get("milestones") or []:
                label = str(milestone.get("labelName") or "")
                # The README's own example flags no milestone, not even "Won": the name decides when no flag does.
                if milestone.get("isWon") is True or label.lower() in won_names:
                    status = DealStatus.WON
                elif milestone.get("isLost") is True or label.lower() in lost_names:
                    status = DealStatus.LOST
                else:
                    status = DealStatus.OPEN
                self.status[(track_id, label)] = status
        self.ids = list(self.names)

    def deal_status(self, track_id: str, milestone: str) -> DealStatus:
        """Won, lost or open for a deal's milestone (open when the track does not know it)."""
        return self.status.get((track_id, milestone), DealStatus.OPEN)


def add_deal(raw: Mapping[str, Any], page: Page, dates: DateText, tracks: Tracks) -> None:
    """Append one deal (with its contacts in EngageBay's order) to a page, or a named problem."""
    deal_id = str(raw.get("id"))
    try:
        props = properties(raw, dates, "deal")
        if raw.get("name"):
            props.setdefault("dealname", str(raw["name"]))
        track_id = str(raw.get("track_id") or "")
        milestone = str(raw.get("milestoneLabelName") or "")
        # "Currency Code (Ex: USD-$)" (README "System Fields", Deal).
        currency = str(raw.get("currency_type") or "").partition("-")[0].strip() or None
        created = _time(raw, "created_time", "deal")
        page.deals.append(Deal(
            id=deal_id, amount=_amount(raw.get("amount"), deal_id), currency=currency,
            pipeline=tracks.names.get(track_id, track_id or None), stage=milestone or None,
            status=tracks.deal_status(track_id, milestone),
            created_at=created or datetime.fromtimestamp(0, tz=UTC),
            closed_at=_time(raw, "closed_date", "deal"), updated_at=_time(raw, "updated_time", "deal") or created,
            contact_ids=tuple(dict.fromkeys(str(c) for c in raw.get("contact_ids") or [])), properties=props))
    except DataError as exc:
        page.problems.append(exc.message)
    except (ValueError, TypeError) as exc:
        page.problems.append(f"deal {deal_id}: unreadable record ({exc.__class__.__name__})")


def _time(raw: Mapping[str, Any], key: str, kind: str) -> datetime | None:
    try:
        return epoch_seconds(raw.get(key))
    except (TypeError, ValueError) as exc:
        raise DataError(f"{kind} {raw.get('id')}, field {key}: {exc}; the {kind} is skipped") from None


def _amount(value: Any, deal_id: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"deal {deal_id}, field amount: '{value}' is not a number; the deal is skipped") from None
    if not math.isfinite(number):
        raise DataError(f"deal {deal_id}, field amount: '{value}' is not a finite number; the deal is skipped")
    return number
