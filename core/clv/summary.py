"""Per-customer transaction summary (frequency, recency, T, monetary value) from raw purchases.

The summary is the sufficient statistic of the BG/NBD model (Fader, Hardie & Lee 2005, "Counting Your
Customers the Easy Way") and of the Gamma-Gamma spend model (Fader & Hardie 2013, "The Gamma-Gamma Model
of Monetary Value"). It follows the conventions of the published CDNOW summaries and of lifetimes'
``summary_data_from_transaction_data``:

* purchases are grouped by calendar day (UTC); several purchases on one day are one transaction whose
  amount is their sum;
* ``frequency`` is the number of *repeat* transactions: transaction days after the customer's birth day
  (by default the first purchase day, so ``frequency = distinct purchase days - 1``);
* ``recency`` is the time from birth to the last repeat transaction (0 without repeats) and ``T`` the time
  from birth to ``as_of``, both counted in whole days and expressed in the chosen unit (weeks = days / 7);
* ``monetary_value`` is the mean amount of the repeat transactions (0 without repeats), the literature's
  definition, which leaves the first purchase out because it often differs from later ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from core.errors import DataError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
TimeUnit = Literal["days", "weeks"]

SECONDS_PER_DAY = 86_400.0
DAYS_PER_UNIT: dict[str, float] = {"days": 1.0, "weeks": 7.0}


@dataclass(frozen=True)
class TransactionSummary:
    """One row per customer (index ``i`` = customer ``i``); times in ``unit``.

    ``has_purchase`` is False for customers without any purchase up to ``as_of``; their frequency,
    recency and T are 0 unless an explicit birth time gave them an observation window. ``purchase_count``
    counts distinct purchase days (the first one included); ``total_spend`` sums every purchase up to
    ``as_of``. ``first_purchase`` / ``last_purchase`` and ``as_of`` are epoch seconds, NaN when unknown
    (no purchase, or a summary built with :meth:`from_arrays`).
    """

    frequency: IntArray
    recency: FloatArray
    T: FloatArray
    monetary_value: FloatArray
    total_spend: FloatArray
    purchase_count: IntArray
    has_purchase: BoolArray
    first_purchase: FloatArray
    last_purchase: FloatArray
    unit: TimeUnit
    as_of: float

    def __len__(self) -> int:
        return len(self.frequency)

    @property
    def days_per_unit(self) -> float:
        """Length of one time unit in days (1 or 7)."""
        return DAYS_PER_UNIT[self.unit]

    @classmethod
    def from_arrays(
        cls,
        frequency: npt.ArrayLike,
        recency: npt.ArrayLike,
        T: npt.ArrayLike,
        monetary_value: npt.ArrayLike,
        unit: TimeUnit = "weeks",
    ) -> TransactionSummary:
        """A summary of customers already summarised elsewhere (x, t_x, T, mean repeat spend).

        Every row is a customer; total spend is taken as (x + 1) * monetary value, i.e. the first purchase
        is assumed to cost the same as the repeat ones, and purchase times are unknown (NaN).
        """
        x = np.asarray(frequency, dtype=np.int64).ravel()
        spend = np.asarray(monetary_value, dtype=np.float64).ravel()
        n = len(x)
        return cls(
            frequency=x,
            recency=np.asarray(recency, dtype=np.float64).ravel(),
            T=np.asarray(T, dtype=np.float64).ravel(),
            monetary_value=spend,
            total_spend=spend * (x + 1),
            purchase_count=x + 1,
            has_purchase=np.ones(n, dtype=np.bool_),
            first_purchase=np.full(n, np.nan),
            last_purchase=np.full(n, np.nan),
            unit=unit,
            as_of=float("nan"),
        )


def summarize(
    customer: npt.ArrayLike,
    time: npt.ArrayLike,
    amount: npt.ArrayLike,
    n_customers: int,
    as_of: float,
    unit: TimeUnit = "weeks",
    birth: npt.ArrayLike | None = None,
) -> TransactionSummary:
    """Summarise purchases given as parallel arrays into a :class:`TransactionSummary`.

    ``customer`` holds each purchase's customer index in ``[0, n_customers)``, ``time`` its epoch seconds
    (UTC) and ``amount`` its value. Purchases after ``as_of`` are ignored (they belong to a later period).
    ``birth`` optionally gives each customer's start of observation in epoch seconds (NaN = first
    purchase); purchases on or before the birth day are not repeat transactions, and a birth after
    ``as_of`` counts as ``as_of``. Vectorised: one sort of the purchases, no loop over customers.

    Raises :class:`~core.errors.DataError` for a customer index out of range or a non-finite time/amount.
    """
    if unit not in DAYS_PER_UNIT:
        raise ValueError(f"unit must be 'days' or 'weeks', not {unit!r}")
    cust = np.asarray(customer, dtype=np.int64).ravel()
    t = np.asarray(time, dtype=np.float64).ravel()
    amt = np.asarray(amount, dtype=np.float64).ravel()
    if not (len(cust) == len(t) == len(amt)):
        raise ValueError(f"customer, time and amount differ in length ({len(cust)}, {len(t)}, {len(amt)})")
    _check_purchases(cust, t, amt, n_customers)
    as_of_day = np.floor(as_of / SECONDS_PER_DAY)

    keep = t <= as_of
    if not keep.all():
        cust, t, amt = cust[keep], t[keep], amt[keep]
    day = np.floor(t / SECONDS_PER_DAY).astype(np.int64)
    # One sort on a combined (customer, day) key makes each customer's days contiguous and ascending;
    # argsort of one int64 key is several times faster than lexsort on two.
    # The key is cust * span + day: day varies over less than span, so customers never overlap.
    key = cust * (int(day.max() - day.min()) + 1 if len(day) else 1)
    key += day
    order = np.argsort(key)
    del key
    cust, t, amt, day = cust[order], t[order], amt[order], day[order]
    del order

    new_customer = _changes(cust)
    starts = np.flatnonzero(new_customer)
    ends = np.append(starts[1:], len(cust))[: len(starts)] - 1
    owners = cust[starts]
    first_purchase = np.full(n_customers, np.nan)
    last_purchase = np.full(n_customers, np.nan)
    first_day = np.full(n_customers, np.nan)
    last_day = np.full(n_customers, np.nan)
    first_purchase[owners] = np.minimum.reduceat(t, starts)
    last_purchase[owners] = np.maximum.reduceat(t, starts)
    first_day[owners] = day[starts]
    last_day[owners] = day[ends]

    # Same-day purchases merge into one transaction whose amount is their sum.
    tx_start = np.flatnonzero(new_customer | _changes(day))
    tx_cust = cust[tx_start]
    tx_day = day[tx_start]
    tx_amount = np.add.reduceat(amt, tx_start)

    birth_day = first_day if birth is None else _birth_days(birth, first_day, n_customers)
    birth_day = np.minimum(birth_day, as_of_day)
    born = np.isfinite(birth_day)
    repeat = tx_day > birth_day[tx_cust]
    frequency = np.bincount(tx_cust, weights=repeat, minlength=n_customers).astype(np.int64)
    repeat_spend = np.bincount(tx_cust, weights=np.where(repeat, tx_amount, 0.0), minlength=n_customers)

    days_per_unit = DAYS_PER_UNIT[unit]
    safe_birth = np.where(born, birth_day, 0.0)
    T = np.where(born, (as_of_day - safe_birth) / days_per_unit, 0.0)
    # Days ascend within a customer, so with any repeat the last purchase day is the last repeat day.
    recency = np.where(frequency > 0, (last_day - safe_birth) / days_per_unit, 0.0)
    monetary = np.divide(repeat_spend, frequency, out=np.zeros(n_customers), where=frequency > 0)
    return TransactionSummary(
        frequency=frequency,
        recency=recency,
        T=T,
        monetary_value=monetary,
        total_spend=np.asarray(np.bincount(cust, weights=amt, minlength=n_customers), dtype=np.float64),
        purchase_count=np.bincount(tx_cust, minlength=n_customers).astype(np.int64),
        has_purchase=np.isfinite(first_day),
        first_purchase=first_purchase,
        last_purchase=last_purchase,
        unit=unit,
        as_of=float(as_of),
    )


def _changes(sorted_keys: npt.NDArray[np.int64]) -> BoolArray:
    """True where a sorted key differs from the one before (and at the first element)."""
    flags = np.empty(len(sorted_keys), dtype=np.bool_)
    flags[:1] = True
    flags[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return flags


def _check_purchases(cust: IntArray, t: FloatArray, amt: FloatArray, n_customers: int) -> None:
    problems = []
    out_of_range = int(np.count_nonzero((cust < 0) | (cust >= n_customers)))
    if out_of_range:
        problems.append(f"{out_of_range} purchase(s) with a customer index outside [0, {n_customers})")
    bad_time = int(np.count_nonzero(~np.isfinite(t)))
    if bad_time:
        problems.append(f"{bad_time} purchase(s) without a finite time")
    bad_amount = int(np.count_nonzero(~np.isfinite(amt)))
    if bad_amount:
        problems.append(f"{bad_amount} purchase(s) without a finite amount")
    if problems:
        raise DataError(
            "cannot summarise purchases: " + "; ".join(problems),
            hint="drop or fill won deals without a close date or amount before computing CLV",
        )


def _birth_days(birth: npt.ArrayLike, first_day: FloatArray, n_customers: int) -> FloatArray:
    b = np.asarray(birth, dtype=np.float64).ravel()
    if len(b) != n_customers:
        raise ValueError(f"birth has {len(b)} entries for {n_customers} customers")
    return np.where(np.isfinite(b), np.floor(b / SECONDS_PER_DAY), first_day)
