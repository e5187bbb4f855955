"""CLV on real CRM data: an outlying amount is kept out of the spend model and named, the small-base fallback
does not call a regular customer churned, and a fit that cannot converge falls back visibly."""

from __future__ import annotations

import numpy as np
import pytest

from core.clv import fit_and_score, summarize
from core.columns import DealColumns, StatusCode
from core.config import ClmConfig, ClvConfig, SyncConfig
from core.engine import enrich
from core.lifetime import customer_value
from tests.core.builders import AS_OF, DAY, contacts, deals
from tests.core.clv.data import CALIBRATION_END, Transactions, epoch


def _won(customer: np.ndarray, time: np.ndarray, amount: np.ndarray) -> DealColumns:
    n = len(customer)
    return DealColumns(ids=np.array([f"deal-{i}" for i in range(n)], dtype=object), contact_index=customer,
                       amount=amount, status=np.full(n, StatusCode.WON, dtype=np.int8), created_at=time,
                       closed_at=time)


def _with_one_typo(tx: Transactions) -> tuple[np.ndarray, int, int]:
    """CDNOW with one repeat purchase of a customer with two repeats typed as 1e9 dollars (below the 1e12 that
    core.quality calls impossible, so only the spend model can catch it): amounts, that row, that customer."""
    end = epoch(CALIBRATION_END)
    calibration = summarize(tx.customer, tx.time, tx.amount, tx.n_customers, end, unit="weeks")
    who = int(np.flatnonzero(calibration.frequency == 2)[0])
    row = int(np.flatnonzero((tx.customer == who) & (tx.time <= end))[-1])
    amount = tx.amount.copy()
    amount[row] = 1e9
    return amount, row, who


def test_an_outlying_amount_moves_nobody_else_and_is_named(cdnow_transactions: Transactions) -> None:
    tx = cdnow_transactions
    end = epoch(CALIBRATION_END)
    amount, row, who = _with_one_typo(tx)
    clean = fit_and_score(summarize(tx.customer, tx.time, tx.amount, tx.n_customers, end), 52.0, 0.1)
    typo = fit_and_score(summarize(tx.customer, tx.time, amount, tx.n_customers, end), 52.0, 0.1)
    assert typo.spend_model == "gamma_gamma" and typo.spend_outliers is not None
    assert np.flatnonzero(typo.spend_outliers).tolist() == [who]
    others = np.arange(tx.n_customers) != who
    moved = np.abs(typo.clv - clean.clv)[others] > 0.05 * clean.clv[others]
    assert moved.sum() == 0  # before: 1,820 of the other 2,356 customers' CLV moved by more than 5%
    assert any("1 customer(s) whose mean purchase is an outlier" in d for d in typo.diagnostics)

    outcome = customer_value(_won(tx.customer, tx.time, amount), tx.n_customers, end, ClvConfig())
    assert outcome.diagnostics["spend_outliers"] == {"contacts": 1, "deals": [f"deal-{row}"]}
    assert any(f"left out the outlying deal(s) deal-{row}" in note for note in outcome.diagnostics["notes"])


def test_cdnow_has_no_outlier(cdnow_calibration: object) -> None:
    result = fit_and_score(cdnow_calibration, 52.0, 0.1)  # type: ignore[arg-type]
    assert result.spend_outliers is not None and not result.spend_outliers.any()


def test_the_only_customer_buying_at_its_usual_interval_is_not_churned() -> None:
    """Issue 17: the only customer, 500 purchases a day apart, the last 1.1 days ago, was written P(alive) 0.40
    by the small-base fallback; a silence of about one usual gap is no sign of dropout."""
    purchases = [(0, "won", 25.0, 500.1 - k, 500.1 - k) for k in range(500)]
    result = enrich(contacts([600]), deals(purchases), ClmConfig(), AS_OF)
    clv = result.diagnostics.clv
    assert clv["fallback"] is True and clv["purchase_model"] == "empirical"
    assert any("only 1 customer(s) with a repeat purchase" in n for n in clv["notes"])
    assert result.columns["p_alive"][0] > 0.9
    assert result.table["recency_ratio"][0] == pytest.approx(1.1, rel=0.05)
    assert result.columns["stage"][0] not in ("churned", "at_risk")


def test_a_fit_that_cannot_converge_says_why_and_falls_back_visibly() -> None:
    # 25 identical heavy buyers: no heterogeneity, so BG/NBD's r and alpha run off to infinity.
    n, k = 25, 60
    customer = np.repeat(np.arange(n), k)
    time = AS_OF - np.tile(np.arange(k, 0, -1), n) * DAY
    outcome = customer_value(_won(customer, time, np.full(n * k, 20.0)), n, AS_OF,
                             ClvConfig(time_unit="days", min_repeat_customers=5))
    d = outcome.diagnostics
    assert d["fallback"] is True and d["purchase_model"] == "empirical"
    why = [note for note in d["notes"] if note.startswith("purchases:")]
    assert why and ("did not converge" in why[0] or "degenerate" in why[0]) and "empirical fallback" in why[0]
    assert np.all(np.isfinite(outcome.columns["clv"]))


def test_intervals_are_written_only_when_asked_for(cdnow_transactions: Transactions) -> None:
    tx = cdnow_transactions
    mask = tx.customer < 400
    people = contacts([600] * 400)
    book = _won(tx.customer[mask], tx.time[mask], tx.amount[mask])
    as_of = epoch(CALIBRATION_END)
    plain = enrich(people, book, ClmConfig(), as_of)
    assert "clv_low" not in plain.columns and next(plain.records()).clv_low is None
    wanted = ClmConfig(sync=SyncConfig(write_fields=["clv", "clv_low", "clv_high"]))
    bounded = enrich(people, book, wanted, as_of)
    low, high, clv = bounded.columns["clv_low"], bounded.columns["clv_high"], bounded.columns["clv"]
    buyer = np.isfinite(low)
    assert buyer.sum() > 100 and np.all(low[buyer] <= clv[buyer]) and np.all(clv[buyer] <= high[buyer])
    record = next(r for r in bounded.records() if r.clv_low is not None)
    assert record.clv_low is not None and record.clv_high is not None and record.clv_low <= record.clv_high
    assert "standard_errors" in bounded.diagnostics.clv["bgnbd"]
