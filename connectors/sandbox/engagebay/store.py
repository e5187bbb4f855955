"""An EngageBay account's data as the REST API shows it, and the ways people change it between runs.

Shapes follow github.com/engagebay/restapi (README; "§" numbers are its sections): a contact is ``{id, email,
created_time, updated_time, status, score, properties: [{name, value, field_type, is_searchable, type}], tags,
...}`` with times in epoch *seconds* and ``updated_time: 0`` until the contact is first edited (§1.1's example
response); a deal is ``{id, name, amount, currency_type: "USD-$", closed_date, track_id, milestoneLabelName,
contact_ids, properties, created_time, updated_time}`` (§3.1, §3.3); tracks carry milestones with
``labelName``/``isWon``/``isLost`` (§4.1, whose example flags none, not even "Won": the default track here is that
example, a second track flags its milestones); custom fields per scope are ``{id, field_name, field_label,
field_type, scope, ...}`` (§12.1). Ids are 16-digit numbers (§1.1 ``4997280348241920``); seeded records keep the
numeric ids they are given, so tests can compare with the generator's data.

Timestamps are whole seconds of the account's clock, so a person editing 50 contacts in a burst stamps many
with one ``updated_time``: the ties an incremental pull must not lose.
"""

from __future__ import annotations

import functools
import json
import math
import threading
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from core.models import Contact, Deal, DealStatus

DEFAULT_KEY = "eb-sandbox-rest-api-key-4f1c9a"
#: README "Custom Fields": the field types a custom field may have.
FIELD_TYPES = ("TEXT", "DATE", "LIST", "CHECKBOX", "TEXTAREA", "NUMBER", "FORMULA", "MULTICHECKBOX", "URL",
               "CURRENCY", "PHONE", "FILE")
SCOPES = ("CONTACT", "DEAL", "COMPANY", "TICKET")
DATE_PATTERNS = {"DD/MM/YYYY": "%d/%m/%Y", "MM/DD/YYYY": "%m/%d/%Y", "YYYY-MM-DD": "%Y-%m-%d",
                 "YYYY/MM/DD": "%Y/%m/%d"}
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹"}
#: The generator's (HubSpot-named) contact properties that are EngageBay system fields (README "System Fields").
_SEED_SYSTEM = {"firstname": "name", "lastname": "last_name", "jobtitle": "role"}
#: The system fields of a contact's ``properties`` list (README "System Fields", Contact).
SYSTEM_CONTACT_FIELDS = frozenset({"name", "last_name", "email", "role", "phone", "website", "address"})
_OPEN_MILESTONES = ("New", "Prospect", "Proposal")
_ID_STEP = 7_919


@functools.cache
def seed_name(name: str) -> str:
    """What an EngageBay account calls one of the generator's HubSpot-named properties: a system field's name
    (``jobtitle`` -> ``role``), else a custom field named without HubSpot's prefixes (``hs_email_click`` ->
    ``email_click``, ``hs_analytics_source`` -> ``source``). The EngageBay starter configuration uses these names.
    """
    return _SEED_SYSTEM.get(name) or name.removeprefix("hs_").removeprefix("analytics_")


def default_tracks() -> list[dict[str, Any]]:
    """The README §4.1 example track (no milestone flagged) and a renewals track that flags its won/lost ones."""
    def milestone(label: str, probability: float, won: bool = False, lost: bool = False) -> dict[str, Any]:
        return {"labelName": label, "labelActualName": f"{label}_Actual", "isWon": won, "isLost": lost,
                "color": "#e2e0e0", "probability": probability}

    return [
        {"id": 5697266736168960, "name": "Default", "isDefault": True, "created_time": 1531995775,
         "updated_time": 1540792886,
         "milestones": [milestone("New", 0.1), milestone("Prospect", 0.2), milestone("Proposal", 0.3),
                        milestone("Won", 1.0), milestone("Lost", 0.0)]},
        {"id": 5151135505580032, "name": "Renewals", "isDefault": False, "created_time": 1542604315,
         "updated_time": 1542604315,
         "milestones": [milestone("Renewal due", 0.5), milestone("Renewed", 1.0, won=True),
                        milestone("Churned", 0.0, lost=True)]},
    ]


class Account:
    """One account's contacts, deals, tracks and custom fields; thread-safe (hold :attr:`lock` to read)."""

    def __init__(self, *, clock: Callable[[], float] = time.time, date_format: str = "DD/MM/YYYY",
                 timezone: str = "UTC") -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.date_pattern = DATE_PATTERNS[date_format] + " %H:%M:%S"
        self.date_format = date_format
        self.zone = ZoneInfo(timezone)
        self.records: dict[str, dict[str, dict[str, Any]]] = {"contacts": {}, "deals": {}}
        self.tracks = default_tracks()
        self.fields: dict[str, list[dict[str, Any]]] = {scope: [] for scope in SCOPES}
        self._field_index: dict[str, dict[str, dict[str, Any]]] = {scope: {} for scope in SCOPES}
        self.writes: Counter[str] = Counter()
        self.version = 0
        self._next_id = 6_218_728_647_688_192
        self._orders: dict[tuple[str, str, bool], tuple[int, list[tuple[int, int]]]] = {}

    # --- time and text -----------------------------------------------------------------------------------

    def now(self) -> int:
        """The account's clock in whole epoch seconds (what ``created_time``/``updated_time`` hold)."""
        return int(self.clock())

    def date_text(self, moment: datetime) -> str:
        """A datetime as a DATE field holds it: the API user's format and time zone (README "Date Format")."""
        return moment.astimezone(self.zone).strftime(self.date_pattern)

    def parse_date(self, text: str) -> datetime | None:
        """DATE text back to a datetime (with or without the time), None when it is not in the account's format."""
        base = DATE_PATTERNS[self.date_format]
        for pattern in (base + " %H:%M:%S", base + " %H:%M", base):
            try:
                return datetime.strptime(text.strip(), pattern).replace(tzinfo=self.zone)
            except ValueError:
                continue
        return None

    def new_id(self) -> int:
        """A fresh 16-digit id."""
        with self.lock:
            self._next_id += _ID_STEP
            return self._next_id

    # --- custom fields -----------------------------------------------------------------------------------

    def field(self, scope: str, name: str) -> dict[str, Any] | None:
        """A custom field of a scope by ``field_name`` or ``field_label`` (hold the lock)."""
        return self._field_index[scope].get(name)

    def add_field(self, scope: str, label: str, field_type: str, description: str = "") -> dict[str, Any]:
        """Create a custom field as §12.2 does; its ``field_name`` is the label with spaces as underscores."""
        with self.lock:
            now = self.now()
            item = {"id": self.new_id(), "field_type": field_type, "version": "v2", "field_label": label,
                    "field_label_case_sensitive": label.lower(), "saveSilent": False,
                    "field_description": description, "field_data": "", "is_required": False,
                    "is_searchable": False, "showInFilter": False, "created_time": now, "updated_time": now,
                    "scope": scope, "position": len(self.fields[scope]), "field_name": label.replace(" ", "_")}
            self._add_field_item(scope, item)
            return item

    def _add_field_item(self, scope: str, item: dict[str, Any]) -> None:
        """List a field and index it by name and label (the first of a name wins, as lookups expect)."""
        self.fields[scope].append(item)
        index = self._field_index[scope]
        index.setdefault(str(item["field_name"]), item)
        index.setdefault(str(item["field_label"]), item)

    # --- a sandbox a user comes back to ------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the account's data to ``path`` as JSON (replacing it atomically): ``clm sandbox serve --state``
        restores it on the next start, so a project pointed at the sandbox keeps its records across restarts."""
        with self.lock:
            document = {"version": 1, "date_format": self.date_format, "timezone": self.zone.key,
                        "next_id": self._next_id, "records": self.records, "tracks": self.tracks,
                        "fields": self.fields}
            text = json.dumps(document, separators=(",", ":"))
        path = Path(path)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(text, encoding="utf-8")
        partial.chmod(0o600)  # the file holds personal data: private, as the design's state files are
        partial.replace(path)

    @classmethod
    def load(cls, path: Path, *, clock: Callable[[], float] = time.time) -> Account:
        """An account as :meth:`save` wrote it."""
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        account = cls(clock=clock, date_format=document["date_format"], timezone=document["timezone"])
        account._next_id = int(document["next_id"])
        account.records = document["records"]
        account.tracks = document["tracks"]
        for scope, items in document["fields"].items():
            for item in items:
                account._add_field_item(scope, item)
        return account

    # --- records -----------------------------------------------------------------------------------------

    def touch(self) -> None:
        """Note a change (hold the lock): the sorted orders are rebuilt on the next list."""
        self.version += 1

    def order(self, kind: str, key: str, descending: bool = False) -> list[tuple[int, int]]:
        """``(sort value, id)`` of every record in ascending order, or ``(-value, id)`` for descending (hold the
        lock); cached until the next change."""
        cached = self._orders.get((kind, key, descending))
        if cached is not None and cached[0] == self.version:
            return cached[1]
        sign = -1 if descending else 1
        rows = sorted((sign * int(r.get(key) or 0), int(r["id"])) for r in self.records[kind].values())
        self._orders[(kind, key, descending)] = (self.version, rows)
        return rows

    @staticmethod
    def after(rows: list[tuple[int, int]], position: tuple[int, int]) -> int:
        """Index of the first row strictly after ``position`` in ascending order."""
        return bisect_right(rows, position)

    def property_list(self, scope: str, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Values as a ``properties`` list, SYSTEM or CUSTOM; custom fields are created on first sight
        (the seed's and a person's, as the account's admin would have)."""
        out = []
        for name, value in values.items():
            if value is None:
                continue
            system = scope == "CONTACT" and name in SYSTEM_CONTACT_FIELDS
            field_type = "TEXT"
            if not system:
                field = self.field(scope, name) or self.add_field(scope, name, _field_type(value))
                field_type = str(field["field_type"])
            out.append({"name": name, "value": self.text(value), "field_type": field_type,
                        "is_searchable": False, "type": "SYSTEM" if system else "CUSTOM"})
        return out

    def text(self, value: Any) -> str:
        """A value as the API's text."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, datetime):
            return self.date_text(value)
        if isinstance(value, float):
            return str(int(value)) if value.is_integer() else repr(value)
        return str(value)

    def seed(self, contacts: Iterable[Contact], deals: Iterable[Deal]) -> None:
        """Load records as they would be after an import: a contact never edited has ``updated_time`` 0, and the
        generator's property names become the account's (:func:`seed_name`)."""
        with self.lock:
            for contact in contacts:
                created = int(contact.created_at.timestamp())
                updated = int(contact.updated_at.timestamp()) if contact.updated_at else 0
                record_id = int(contact.id) if contact.id.isdigit() else self.new_id()
                props = self.property_list("CONTACT", {seed_name(k): v for k, v in contact.properties.items()})
                if contact.email:
                    props.insert(0, {"name": "email", "value": contact.email, "field_type": "TEXT",
                                     "is_searchable": False, "type": "SYSTEM"})
                self.records["contacts"][str(record_id)] = {
                    "id": record_id, "owner_id": 6192449487634432, "email": contact.email or "",
                    "score": 0, "created_time": created, "updated_time": updated if updated > created else 0,
                    "status": "CONFIRMED", "companyIds": [], "properties": props, "listIds": [], "tags": [],
                    "emailBounceStatus": []}
            for deal in deals:
                self.records["deals"][deal.id] = self._deal(deal)
            self.touch()

    def _deal(self, deal: Deal) -> dict[str, Any]:
        name = str(deal.properties.get("dealname") or f"Deal {deal.id}")
        renewal = name.lower().startswith("renewal")
        track = self.tracks[1] if renewal else self.tracks[0]
        if deal.status is DealStatus.WON:
            milestone = "Renewed" if renewal else "Won"
        elif deal.status is DealStatus.LOST:
            milestone = "Churned" if renewal else "Lost"
        else:
            milestone = "Renewal due" if renewal else _OPEN_MILESTONES[int(deal.id) % 3 if deal.id.isdigit() else 0]
        custom = {seed_name(k): v for k, v in deal.properties.items()
                  if k not in ("dealname", "pipeline", "dealstage", "deal_currency_code")}
        created = int(deal.created_at.timestamp())
        updated = int(deal.updated_at.timestamp()) if deal.updated_at else 0
        currency = deal.currency or "USD"
        record: dict[str, Any] = {
            "id": int(deal.id) if deal.id.isdigit() else self.new_id(), "name": name, "name_sort": name.lower(),
            "amount": deal.amount if deal.amount is not None and math.isfinite(deal.amount) else 0.0,
            "track_id": track["id"], "contact_ids": [int(c) if c.isdigit() else c for c in deal.contact_ids],
            "company_ids": [], "deal_ids": [], "entiy_group_name": "deal", "milestoneLabelName": milestone,
            "milestoneActualName": f"{milestone}_Actual", "tags": [],
            "properties": self.property_list("DEAL", custom), "created_time": created,
            "updated_time": updated if updated > created else 0, "probability": 0.1,
            "currency_type": f"{currency}-{_SYMBOLS.get(currency, currency)}", "owner_id": 5676618345349120}
        if deal.closed_at is not None:
            record["closed_date"] = int(deal.closed_at.timestamp())
        return record

    def edit(self, kind: str, record_id: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """A person's edit in the app: values set (by property name), ``updated_time`` now."""
        with self.lock:
            record = self.records[kind][record_id]
            scope = "CONTACT" if kind == "contacts" else "DEAL"
            self.set_properties(record, self.property_list(scope, values))
            record["updated_time"] = self.now()
            self.touch()
            return record

    @staticmethod
    def set_properties(record: dict[str, Any], props: Iterable[Mapping[str, Any]]) -> None:
        """Add or replace properties by name (and e-mail subtype), as update-partial does (§1.4)."""
        current: list[dict[str, Any]] = record.setdefault("properties", [])
        for prop in props:
            same = next((p for p in current if p.get("name") == prop.get("name")
                         and p.get("subtype") == prop.get("subtype")), None)
            if same is None:
                current.append(dict(prop))
            else:
                same.update(prop)
            if prop.get("name") == "email" and prop.get("subtype") in (None, "primary"):
                record["email"] = prop.get("value", "")

    def create_contact(self, values: Mapping[str, Any], email: str | None = None) -> str:
        """A contact added in the app now: ``updated_time`` 0 until it is edited (§1.1's example)."""
        with self.lock:
            record_id = self.new_id()
            props = self.property_list("CONTACT", values)
            if email:
                props.insert(0, {"name": "email", "value": email, "field_type": "TEXT", "is_searchable": False,
                                 "type": "SYSTEM"})
            self.records["contacts"][str(record_id)] = {
                "id": record_id, "owner_id": 6192449487634432, "email": email or "", "score": 0,
                "created_time": self.now(), "updated_time": 0, "status": "CONFIRMED", "companyIds": [],
                "properties": props, "listIds": [], "tags": [], "emailBounceStatus": []}
            self.touch()
            return str(record_id)

    def delete(self, kind: str, record_id: str) -> bool:
        """A hard delete (§1.5, §3.4): nothing in the API remembers the record."""
        with self.lock:
            gone = self.records[kind].pop(record_id, None) is not None
            if gone:
                self.touch()
            return gone

    def value(self, record_id: str, name: str) -> str | None:
        """A contact's property value by name (None when absent or empty)."""
        with self.lock:
            record = self.records["contacts"].get(record_id) or {}
            for prop in record.get("properties") or []:
                if prop.get("name") == name:
                    return str(prop.get("value")) if prop.get("value") not in (None, "") else None
            return None


def _field_type(value: Any) -> str:
    if isinstance(value, bool):
        return "CHECKBOX"
    if isinstance(value, int | float):
        return "NUMBER"
    if isinstance(value, datetime):
        return "DATE"
    return "TEXT"

