"""Transaction summary: reproduces the published CDNOW summary and a plain per-customer reference."""

from __future__ import annotations

import math
import random
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.clv import summarize
from core.errors import DataError
from tests.core.clv.data import CALIBRATION_END, Transactions, epoch

DAY = 86_400.0
AS_OF = epoch(CALIBRATION_END)


def test_reproduces_the_published_cdnow_calibration_summary(
    cdnow_transactions: Transactions, cdnow_spend: np.ndarray
) -> None:
    tx = cdnow_transactions
    s = summarize(tx.customer, tx.time, tx.amount, tx.n_customers, AS_OF, unit="weeks")
    np.testing.assert_array_equal(s.frequency, cdnow_spend["x"].astype(np.int64))
    # The published file rounds to 2 decimals.
    np.testing.assert_allclose(s.recency, cdnow_spend["t_x"], atol=0.005)
    np.testing.assert_allclose(s.T, cdnow_spend["T"], atol=0.005)
    np.testing.assert_allclose(s.monetary_value, cdnow_spend["zbar"], atol=0.005 + 1e-9)
    assert s.has_purchase.all()


def test_same_day_purchases_merge_and_monetary_value_is_the_repeat_mean() -> None:
    t0 = 10_000 * DAY
    s = summarize(
        customer=[0, 0, 0, 0, 1],
        time=[t0, t0 + 3600, t0 + 7 * DAY, t0 + 14 * DAY + 60, t0 + 2 * DAY],
        amount=[10.0, 5.0, 20.0, 40.0, 7.0],
        n_customers=3,
        as_of=t0 + 21 * DAY,
        unit="days",
    )
    assert s.frequency.tolist() == [2, 0, 0]
    assert s.recency.tolist() == [14.0, 0.0, 0.0]
    assert s.T.tolist() == [21.0, 19.0, 0.0]
    assert s.monetary_value.tolist() == [30.0, 0.0, 0.0]  # first day's 10 + 5 is not a repeat purchase
    assert s.total_spend.tolist() == [75.0, 7.0, 0.0]
    assert s.purchase_count.tolist() == [3, 1, 0]
    assert s.has_purchase.tolist() == [True, True, False]
    assert s.first_purchase[0] == t0 and s.last_purchase[0] == t0 + 14 * DAY + 60
    assert math.isnan(s.first_purchase[2])


def test_weeks_are_days_over_seven_and_later_purchases_are_ignored() -> None:
    t0 = 20_000 * DAY
    args = ([0, 0, 0], [t0, t0 + 10 * DAY, t0 + 40 * DAY], [1.0, 2.0, 4.0], 1, t0 + 35 * DAY)
    days, weeks = summarize(*args, unit="days"), summarize(*args, unit="weeks")
    assert days.frequency.tolist() == [1] and days.total_spend.tolist() == [3.0]
    assert weeks.T[0] == pytest.approx(35 / 7) and weeks.recency[0] == pytest.approx(10 / 7)


def test_an_explicit_birth_starts_the_clock_and_counts_every_later_purchase_day() -> None:
    t0 = 20_000 * DAY
    s = summarize(
        customer=[0, 0, 1],
        time=[t0 + 5 * DAY, t0 + 9 * DAY, t0 + 3 * DAY],
        amount=[10.0, 30.0, 8.0],
        n_customers=3,
        as_of=t0 + 20 * DAY,
        unit="days",
        birth=[t0, np.nan, t0 + 50 * DAY],
    )
    # Customer 0 was born before buying: both purchases are repeats after birth.
    assert s.frequency.tolist() == [2, 0, 0]
    assert s.recency[0] == 9.0 and s.T[0] == 20.0 and s.monetary_value[0] == 20.0
    assert s.T[1] == 17.0  # NaN birth: first purchase
    assert s.T[2] == 0.0 and not s.has_purchase[2]  # born after as_of: not observed yet


def test_no_purchases_at_all_gives_an_all_zero_summary() -> None:
    s = summarize([], [], [], 4, AS_OF)
    assert len(s) == 4
    assert s.frequency.tolist() == [0] * 4 and s.T.tolist() == [0.0] * 4 and not s.has_purchase.any()


@pytest.mark.parametrize(
    ("customer", "time", "amount", "message"),
    [
        ([0, 5], [0.0, 0.0], [1.0, 1.0], "customer index outside"),
        ([0, 1], [0.0, np.nan], [1.0, 1.0], "without a finite time"),
        ([0, 1], [0.0, 0.0], [1.0, np.nan], "without a finite amount"),
    ],
)
def test_bad_purchases_raise_a_data_error_that_counts_them(
    customer: list[int], time: list[float], amount: list[float], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        summarize(customer, time, amount, 2, AS_OF)


def _reference(
    customer: list[int], days: list[int], amount: list[float], n: int, as_of_day: int
) -> list[tuple[int, float, float, float]]:
    """The definition, one customer at a time."""
    per_day: dict[int, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for c, d, a in zip(customer, days, amount, strict=True):
        if d <= as_of_day:
            per_day[c][d] += a
    rows = []
    for c in range(n):
        if not per_day[c]:
            rows.append((0, 0.0, 0.0, 0.0))
            continue
        ordered = sorted(per_day[c])
        repeats = ordered[1:]
        mean = sum(per_day[c][d] for d in repeats) / len(repeats) if repeats else 0.0
        rows.append((len(repeats), float(ordered[-1] - ordered[0]), float(as_of_day - ordered[0]), mean))
    return rows


purchases = st.lists(
    st.tuples(st.integers(0, 7), st.integers(0, 60), st.integers(0, 86_399), st.integers(1, 500)),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(purchases, st.randoms(use_true_random=False))
def test_matches_the_per_customer_definition_whatever_the_order(
    rows: list[tuple[int, int, int, int]], shuffler: random.Random
) -> None:
    n, as_of_day = 8, 50
    shuffled = list(rows)
    shuffler.shuffle(shuffled)
    customer = [r[0] for r in shuffled]
    time = [r[1] * DAY + r[2] for r in shuffled]
    amount = [float(r[3]) for r in shuffled]
    s = summarize(customer, time, amount, n, (as_of_day + 1) * DAY - 1, unit="days")
    expected = _reference(customer, [r[1] for r in shuffled], amount, n, as_of_day)
    got = list(zip(s.frequency.tolist(), s.recency.tolist(), s.T.tolist(), s.monetary_value.tolist(), strict=True))
    for (f, r, t, m), (ef, er, et, em) in zip(got, expected, strict=True):
        assert (f, r, t) == (ef, er, et)
        assert m == pytest.approx(em)
