"""Per-contact aggregates of the deals attributed to each contact, and values derived from contact properties.

Everything is computed *as of* a time, so the same code gives today's values and the values at a past
cut-off (the predictive score trains on the latter): a deal exists once created, is won/lost once closed,
and is open in between. One ``np.bincount`` per count, no loop over contacts or deals.
"""

from __future__ import annotations

import numpy as np

from core.columns import ContactColumns, DealColumns, FloatArray, StatusCode
from core.fields import UNSUBSCRIBE_DATE_PROPERTY

DAY = 86_400.0


def deal_aggregates(deals: DealColumns, contact_created: FloatArray, at: float) -> dict[str, FloatArray]:
    """The :data:`core.fields.DEAL_AGGREGATES` of every contact as of ``at`` (epoch seconds).

    A deal counts from its creation (an unknown creation time counts as always); a won or lost deal is
    closed from its close time (unknown: closed already). ``total_won_amount`` sums won amounts, unknown
    amounts counting 0; purchase times are the won deals' close times. Deals without a contact are ignored.
    """
    n = len(contact_created)
    owner = deals.contact_index
    exists = (owner >= 0) & ~(deals.created_at > at)
    closed = ~(deals.closed_at > at)
    won = exists & (deals.status == StatusCode.WON) & closed
    lost = exists & (deals.status == StatusCode.LOST) & closed
    open_ = exists & ~won & ~lost

    def count(mask: np.ndarray) -> FloatArray:
        return np.bincount(owner[mask], minlength=n).astype(np.float64)

    won_owner = owner[won]
    won_time = deals.closed_at[won]
    amount = np.nan_to_num(deals.amount[won], nan=0.0)
    total = np.bincount(won_owner, weights=amount, minlength=n).astype(np.float64)
    first, last = _first_last(won_owner, won_time, n)
    with np.errstate(invalid="ignore"):
        return {
            "open_deals": count(open_),
            "won_deals": count(won),
            "lost_deals": count(lost),
            "total_won_amount": total,
            "first_purchase_at": first,
            "last_purchase_at": last,
            "days_since_last_purchase": (at - last) / DAY,
            "days_since_created": (at - contact_created) / DAY,
            "created_at": contact_created,
        }


def _first_last(owner: np.ndarray, time: FloatArray, n: int) -> tuple[FloatArray, FloatArray]:
    """Earliest and latest known time per owner (NaN when none)."""
    known = ~np.isnan(time)
    owner, time = owner[known], time[known]
    first = np.full(n, np.inf)
    last = np.full(n, -np.inf)
    np.minimum.at(first, owner, time)
    np.maximum.at(last, owner, time)
    first[np.isinf(first)] = np.nan
    last[np.isinf(last)] = np.nan
    return first, last


def contact_derived(contacts: ContactColumns, at: float) -> dict[str, FloatArray]:
    """The :data:`core.fields.CONTACT_DERIVED` values as of ``at``.

    ``days_to_unsubscribe`` = days from creation to the ``unsubscribed_at`` property; unknown when the
    property is absent, unset, or later than ``at`` (not yet known then).
    """
    n = len(contacts)
    column = contacts.properties.get(UNSUBSCRIBE_DATE_PROPERTY)
    if column is None or column.dtype == object:
        return {"days_to_unsubscribe": np.full(n, np.nan)}
    when = np.where(column <= at, column, np.nan)
    return {"days_to_unsubscribe": (when - contacts.created_at) / DAY}


def purchases_since(deals: DealColumns, since: FloatArray, at: float) -> FloatArray:
    """Won deals per contact closed after ``since[contact]`` and by ``at`` (NaN where ``since`` is unknown)."""
    n = len(since)
    owner = deals.contact_index
    won = (owner >= 0) & (deals.status == StatusCode.WON) & ~(deals.closed_at > at)
    owner = owner[won]
    after = deals.closed_at[won] > since[owner]
    counts = np.bincount(owner[after], minlength=n).astype(np.float64)
    counts[np.isnan(since)] = np.nan
    return counts
