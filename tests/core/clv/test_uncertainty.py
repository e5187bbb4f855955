"""Parameter uncertainty: standard errors from the inverse Hessian at the optimum, and per-customer CLV
intervals from a fixed-seed draw of the parameters (the Laplace approximation)."""

from __future__ import annotations

import numpy as np
import pytest

from core.clv import ClvResult, TransactionSummary, fit_and_score, fit_purchase_model, summarize
from core.clv.selection import ModelName
from tests.core.clv.data import CALIBRATION_END, Transactions, epoch

# lifetimes' README, BetaGeoFitter on the CDNOW summary: se(coef) of r, alpha, a, b from its numeric Hessian.
LIFETIMES_CDNOW_SE = {"r": 0.012557, "alpha": 0.378221, "a": 0.185719, "b": 0.705345}


def test_bgnbd_standard_errors_match_lifetimes_on_cdnow(cdnow_calibration: TransactionSummary) -> None:
    s = cdnow_calibration
    fit = fit_purchase_model("bgnbd", s.frequency, s.recency, s.T)
    for name, expected in LIFETIMES_CDNOW_SE.items():
        assert fit.standard_errors[name] == pytest.approx(expected, rel=2e-3), name


@pytest.mark.parametrize("model", ["mbgnbd", "pareto_nbd"])
def test_standard_errors_are_the_inverse_hessian_of_the_total_log_likelihood(
    cdnow_calibration: TransactionSummary, model: ModelName
) -> None:
    """An independent check: the natural-scale Hessian of the summed log-likelihood by finite differences of
    the likelihood itself (not of our gradient), inverted."""
    s = cdnow_calibration
    data = (s.frequency[s.has_purchase], s.recency[s.has_purchase], s.T[s.has_purchase])
    fit = fit_purchase_model(model, *data)
    theta = np.array(list(fit.parameters.values()))

    def total(values: np.ndarray) -> float:
        return float(fit.with_parameters(values).log_likelihood(*data).sum())  # type: ignore[attr-defined]

    k, h = len(theta), 1e-4 * theta
    hessian = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            ei, ej = np.eye(k)[i] * h[i], np.eye(k)[j] * h[j]
            hessian[i, j] = (total(theta + ei + ej) - total(theta + ei - ej) - total(theta - ei + ej)
                             + total(theta - ei - ej)) / (4 * h[i] * h[j])
    expected = np.sqrt(np.diag(np.linalg.inv(-hessian)))
    np.testing.assert_allclose(list(fit.standard_errors.values()), expected, rtol=0.02)


def test_clv_intervals_bracket_the_estimate_and_are_reproducible(cdnow_calibration: TransactionSummary) -> None:
    first = fit_and_score(cdnow_calibration, 52.0, 0.1, interval_draws=200)
    again = fit_and_score(cdnow_calibration, 52.0, 0.1, interval_draws=200)
    assert first.clv_low is not None and first.clv_high is not None
    np.testing.assert_array_equal(first.clv_low, again.clv_low)
    np.testing.assert_array_equal(first.clv_high, again.clv_high)
    buyer = first.is_customer
    assert np.all(first.clv_low[buyer] <= first.clv[buyer]) and np.all(first.clv[buyer] <= first.clv_high[buyer])
    assert np.all(first.clv_low[buyer] < first.clv_high[buyer])
    assert np.isnan(first.clv_low[~buyer]).all()
    plain = fit_and_score(cdnow_calibration, 52.0, 0.1)
    assert plain.clv_low is None and plain.clv_high is None
    np.testing.assert_array_equal(plain.clv, first.clv)  # the draw never touches the point estimate


def test_clv_intervals_narrow_like_one_over_root_n(cdnow_transactions: Transactions) -> None:
    """Parameter uncertainty, not purchase noise: four times the customers with the same histories halve the
    intervals (the sampling distribution's spread goes as 1 / sqrt(n))."""
    tx = cdnow_transactions
    as_of = epoch(CALIBRATION_END)
    once = summarize(tx.customer, tx.time, tx.amount, tx.n_customers, as_of, unit="weeks")
    copies = np.concatenate([tx.customer + k * tx.n_customers for k in range(4)])
    four = summarize(copies, np.tile(tx.time, 4), np.tile(tx.amount, 4), 4 * tx.n_customers, as_of, unit="weeks")
    width_once = _relative_width(fit_and_score(once, 52.0, 0.1, interval_draws=200))
    width_four = _relative_width(fit_and_score(four, 52.0, 0.1, interval_draws=200))
    assert width_four / width_once == pytest.approx(0.5, abs=0.08)


def test_no_intervals_when_the_purchases_fall_back(cdnow_calibration: TransactionSummary) -> None:
    result = fit_and_score(cdnow_calibration, 52.0, 0.1, min_repeat_customers=10**9, on_fit_failure="empirical",
                           interval_draws=50)
    assert result.purchase_model == "empirical"
    assert result.clv_low is not None and np.isnan(result.clv_low).all()
    assert any(d.startswith("CLV intervals: none") for d in result.diagnostics)


def _relative_width(result: ClvResult) -> float:
    low, high, clv = result.clv_low, result.clv_high, result.clv
    assert low is not None and high is not None
    buyer = clv > 0
    return float(np.median((high[buyer] - low[buyer]) / clv[buyer]))
