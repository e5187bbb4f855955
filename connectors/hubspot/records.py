"""HubSpot JSON records as our typed records: one contact or deal as it arrives, checked at the edge."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from connectors.base import Page, parse_time
from core.errors import DataError
from core.models import Contact, Deal, DealStatus

#: The modified-time property of each object type (HubSpot names it differently on deals).
MODIFIED = {"contacts": "lastmodifieddate", "deals": "hs_lastmodifieddate"}


def modified_ms(raw: Mapping[str, Any], object_type: str) -> int:
    """A record's modified time in epoch milliseconds (0 when HubSpot sent none)."""
    props = raw.get("properties") or {}
    moment = parse_time(props.get(MODIFIED[object_type]) or raw.get("updatedAt"))
    return int(moment.timestamp() * 1000) if moment else 0


def merged_ids(raw: Mapping[str, Any]) -> list[str]:
    """The ids a record absorbed by merges (``hs_merged_object_ids``, ``;``-separated), without its own."""
    text = (raw.get("properties") or {}).get("hs_merged_object_ids")
    own = str(raw.get("id"))
    return [i for i in str(text or "").split(";") if i and i != own]


def add_contact(raw: Mapping[str, Any], page: Page) -> None:
    """Append one contact to a page, or a problem naming the record when it cannot be read.

    Since HubSpot's merge change a merge creates a *new* record that lists the old ids in
    ``hs_merged_object_ids`` (developers.hubspot.com/changelog, "merging records creates a new record ID");
    those ids are reported as merged into this one so the sync moves what it knows of them here.
    """
    props = dict(raw.get("properties") or {})
    try:
        contact = Contact(
            id=str(raw["id"]),
            email=props.pop("email", None) or None,
            created_at=record_time(raw, "createdAt", "createdate", "contact") or datetime.now(UTC),
            updated_at=record_time(raw, "updatedAt", "lastmodifieddate", "contact"),
            properties={k: v for k, v in props.items() if v is not None},
        )
    except DataError as exc:
        page.problems.append(exc.message)
        return
    except (ValueError, TypeError, OverflowError) as exc:
        page.problems.append(f"contact {raw.get('id')}: unreadable record ({exc.__class__.__name__})")
        return
    page.contacts.append(contact)
    for old in merged_ids(raw):
        page.merged_contacts[old] = contact.id


def add_deal(raw: Mapping[str, Any], contact_ids: Sequence[str], page: Page,
             company_currency: str | None = None) -> None:
    """Append one deal (with its associated contacts, in HubSpot's order) to a page, or a named problem.

    A deal with a ``deal_currency_code`` counts at HubSpot's own ``amount_in_home_currency`` (the amount at the
    portal's exchange rate of its close date, in ``company_currency``); without one (a currency the portal has
    no rate for) it keeps its own amount and code, and the engine reports and excludes it (:mod:`core.currency`).
    A deal without a currency is in the company currency (HubSpot's "Get the company currency": it is "the
    default currency for new deals").
    """
    props = dict(raw.get("properties") or {})
    deal_id = str(raw["id"])
    value, currency = props.get("amount"), props.get("deal_currency_code") or None
    home = props.get("amount_in_home_currency")
    if currency is None or (value not in (None, "") and home not in (None, "")):
        value, currency = (home if currency is not None else value), company_currency
    try:
        page.deals.append(Deal(
            id=deal_id,
            amount=amount(value, deal_id),
            currency=currency,
            pipeline=props.get("pipeline") or None,
            stage=props.get("dealstage") or None,
            status=deal_status(props),
            created_at=record_time(raw, "createdAt", "createdate", "deal") or datetime.now(UTC),
            closed_at=record_time(raw, None, "closedate", "deal"),
            updated_at=record_time(raw, "updatedAt", "hs_lastmodifieddate", "deal"),
            contact_ids=tuple(contact_ids),
            properties={k: v for k, v in props.items() if v is not None},
        ))
    except DataError as exc:
        page.problems.append(exc.message)
        return
    except (ValueError, TypeError, OverflowError) as exc:
        page.problems.append(f"deal {deal_id}: unreadable record ({exc.__class__.__name__})")
        return
    # Merged deals also get a new id listing the old ones; without this the old deals would count twice.
    for old in merged_ids(raw):
        page.deleted_deal_ids.append(old)


def inline_contacts(raw: Mapping[str, Any]) -> tuple[list[str], bool]:
    """Contact ids a list result carries inline (``?associations=contacts``), and whether more pages exist.

    HubSpot returns one entry per association type (unlabeled and labelled), so ids are de-duplicated in order.
    """
    block = ((raw.get("associations") or {}).get("contacts") or {})
    ids: list[str] = []
    for item in block.get("results") or []:
        target = str(item.get("id") or item.get("toObjectId"))
        if target not in ids:
            ids.append(target)
    return ids, bool((block.get("paging") or {}).get("next"))


def deal_status(props: Mapping[str, Any]) -> DealStatus:
    """Won, lost or open, from HubSpot's calculated flags (or the default pipeline's stage names)."""
    won = props.get("hs_is_closed_won")
    closed = props.get("hs_is_closed")
    if won is not None and closed is not None:
        if str(won).lower() == "true":
            return DealStatus.WON
        return DealStatus.LOST if str(closed).lower() == "true" else DealStatus.OPEN
    stage = str(props.get("dealstage") or "")
    return {"closedwon": DealStatus.WON, "closedlost": DealStatus.LOST}.get(stage, DealStatus.OPEN)


def record_time(raw: Mapping[str, Any], top: str | None, prop: str, kind: str) -> datetime | None:
    """A record's time from its top-level key (``createdAt``) or else its property, or a :class:`DataError`
    naming the record and field when it is not a readable date (e.g. ``99999999999999999999``, issue 14)."""
    props = raw.get("properties") or {}
    name, value = (top, raw.get(top)) if top is not None and raw.get(top) else (prop, props.get(prop))
    try:
        return parse_time(value)
    except ValueError as exc:
        raise DataError(f"{kind} {raw.get('id')}, field {name}: {exc}; the {kind} is skipped") from None


def amount(value: Any, deal_id: str) -> float | None:
    """A deal amount as a finite number, or a :class:`DataError` naming the deal and field."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"deal {deal_id}, field amount: '{value}' is not a number; the deal is skipped") from None
    if not math.isfinite(number):
        raise DataError(f"deal {deal_id}, field amount: '{value}' is not a finite number; the deal is skipped")
    return number
