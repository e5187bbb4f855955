"""CLV scoring: the models end to end on CDNOW, discounting, units, and the fallbacks for small bases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from core.clv import TransactionSummary, empirical_rates, fit_and_score, summarize
from core.errors import FitError
from tests.core.clv.data import CALIBRATION_END, CDNOW_BGNBD, CDNOW_GAMMA_GAMMA, Transactions, epoch


def test_scores_cdnow_with_the_published_models(cdnow_calibration: TransactionSummary) -> None:
    result = fit_and_score(cdnow_calibration, horizon=52.0, annual_discount_rate=0.1, margin=0.3)
    assert result.purchase_model == "bgnbd" and result.spend_model == "gamma_gamma"
    assert result.bgnbd is not None and result.gamma_gamma is not None
    assert result.bgnbd.params.r == pytest.approx(CDNOW_BGNBD["r"], abs=0.001)
    assert result.gamma_gamma.params.p == pytest.approx(CDNOW_GAMMA_GAMMA["p"], abs=0.01)
    assert result.diagnostics == ()
    for values in (result.clv, result.expected_purchases, result.expected_spend, result.p_alive):
        assert np.all(np.isfinite(values)) and np.all(values >= 0)
    np.testing.assert_allclose(result.historical_value, 0.3 * cdnow_calibration.total_spend)
    np.testing.assert_allclose(
        result.p_alive,
        result.bgnbd.params.p_alive(cdnow_calibration.frequency, cdnow_calibration.recency, cdnow_calibration.T),
    )
    print(f"\nCDNOW 52-week CLV at 10%/year, margin 30%: total {result.clv.sum():,.0f}, top {result.clv.max():,.2f}")


def test_without_discounting_clv_is_margin_times_spend_times_purchases(cdnow_calibration: TransactionSummary) -> None:
    result = fit_and_score(cdnow_calibration, horizon=39.0, annual_discount_rate=0.0, margin=0.5)
    np.testing.assert_allclose(result.clv, 0.5 * result.expected_spend * result.expected_purchases, rtol=1e-12)
    assert result.bgnbd is not None
    s = cdnow_calibration
    np.testing.assert_allclose(
        result.expected_purchases, result.bgnbd.params.conditional_expected_purchases(39.0, s.frequency, s.recency, s.T)
    )


@pytest.mark.parametrize("model", ["mbgnbd", "pareto_nbd"])
def test_scores_with_the_other_purchase_models(cdnow_calibration: TransactionSummary, model: str) -> None:
    s = cdnow_calibration
    result = fit_and_score(s, horizon=39.0, annual_discount_rate=0.0, purchase_model=model)  # type: ignore[arg-type]
    assert result.purchase_model == model and result.bgnbd is None
    assert result.purchase_fit is not None and result.purchase_fit.model == model
    params = result.purchase_fit.params
    np.testing.assert_allclose(result.p_alive, params.p_alive(s.frequency, s.recency, s.T))
    np.testing.assert_allclose(
        result.expected_purchases, params.conditional_expected_purchases(39.0, s.frequency, s.recency, s.T), rtol=1e-12
    )
    np.testing.assert_allclose(result.clv, result.expected_spend * result.expected_purchases, rtol=1e-12)


def test_the_default_purchase_model_is_described_too(cdnow_calibration: TransactionSummary) -> None:
    result = fit_and_score(cdnow_calibration, horizon=39.0, annual_discount_rate=0.1)
    assert result.purchase_fit is not None and result.purchase_fit.model == "bgnbd"
    assert result.purchase_fit.parameters["b"] == pytest.approx(CDNOW_BGNBD["b"], abs=0.001)


def test_monthly_midpoint_discounting_matches_a_fine_grid(cdnow_calibration: TransactionSummary) -> None:
    monthly = fit_and_score(cdnow_calibration, horizon=156.0, annual_discount_rate=0.15)
    fine = fit_and_score(cdnow_calibration, horizon=156.0, annual_discount_rate=0.15, steps_per_year=2000)
    np.testing.assert_allclose(monthly.clv, fine.clv, rtol=1e-4)
    undiscounted = fit_and_score(cdnow_calibration, horizon=156.0, annual_discount_rate=0.0)
    assert np.all(monthly.clv < undiscounted.clv)


def test_clv_grows_with_the_horizon(cdnow_calibration: TransactionSummary) -> None:
    totals = [fit_and_score(cdnow_calibration, h, 0.1).clv for h in (4.0, 26.0, 52.0, 260.0)]
    for shorter, longer in itertools.pairwise(totals):
        assert np.all(longer >= shorter)


def test_days_and_weeks_give_the_same_values(cdnow_transactions: Transactions) -> None:
    tx = cdnow_transactions
    as_of = epoch(CALIBRATION_END)
    days = summarize(tx.customer, tx.time, tx.amount, tx.n_customers, as_of, unit="days")
    weeks = summarize(tx.customer, tx.time, tx.amount, tx.n_customers, as_of, unit="weeks")
    in_days = fit_and_score(days, horizon=364.0, annual_discount_rate=0.1)
    in_weeks = fit_and_score(weeks, horizon=52.0, annual_discount_rate=0.1)
    assert in_days.bgnbd is not None and in_weeks.bgnbd is not None
    assert in_days.bgnbd.params.alpha == pytest.approx(7 * in_weeks.bgnbd.params.alpha, rel=1e-5)
    np.testing.assert_allclose(in_days.clv, in_weeks.clv, rtol=1e-5)


def test_customers_without_purchases_get_zero_value_and_no_p_alive(cdnow_transactions: Transactions) -> None:
    tx = cdnow_transactions
    s = summarize(tx.customer, tx.time, tx.amount, tx.n_customers + 3, epoch(CALIBRATION_END))
    result = fit_and_score(s, horizon=52.0, annual_discount_rate=0.1)
    assert result.is_customer.tolist()[-4:] == [True, False, False, False]
    assert np.all(result.clv[-3:] == 0) and np.all(result.expected_purchases[-3:] == 0)
    assert np.all(np.isnan(result.p_alive[-3:])) and not np.isnan(result.p_alive[:-3]).any()


def _tiny_base() -> TransactionSummary:
    return TransactionSummary.from_arrays(
        frequency=[0, 1, 3, 0, 2],
        recency=[0.0, 5.0, 30.0, 0.0, 12.0],
        T=[40.0, 38.0, 35.0, 2.0, 20.0],
        monetary_value=[20.0, 15.0, 30.0, 12.0, 25.0],
    )


def test_a_tiny_base_raises_a_fit_error_by_default() -> None:
    with pytest.raises(FitError, match="only 3 customer"):
        fit_and_score(_tiny_base(), horizon=52.0, annual_discount_rate=0.1)


def test_a_tiny_base_falls_back_to_finite_empirical_values() -> None:
    result = fit_and_score(_tiny_base(), horizon=52.0, annual_discount_rate=0.1, on_fit_failure="empirical")
    assert result.purchase_model == "empirical" and result.spend_model == "empirical"
    assert result.bgnbd is None and result.gamma_gamma is None
    assert any("empirical fallback" in d for d in result.diagnostics)
    for values in (result.clv, result.expected_purchases, result.expected_spend, result.p_alive):
        assert np.all(np.isfinite(values)) and np.all(values >= 0)
    assert np.all(result.p_alive <= 1)


def test_spend_can_fall_back_alone(cdnow_calibration: TransactionSummary) -> None:
    s = cdnow_calibration
    flat = TransactionSummary.from_arrays(s.frequency, s.recency, s.T, np.where(s.frequency > 0, 20.0, 0.0))
    result = fit_and_score(flat, horizon=52.0, annual_discount_rate=0.1, on_fit_failure="empirical")
    assert result.purchase_model == "bgnbd" and result.spend_model == "empirical"
    assert [d for d in result.diagnostics if d.startswith("spend:")]


def test_empirical_rates_shrink_and_score_silence() -> None:
    s = TransactionSummary.from_arrays([4, 4, 0], [10.0, 40.0, 0.0], [40.0, 40.0, 40.0], [10.0, 10.0, 30.0])
    rates = empirical_rates(s)
    rho, tau = 8 / 120, 40.0
    np.testing.assert_allclose(rates.rate, (np.array([4, 4, 0]) + rho * tau) / (40.0 + tau))
    assert rates.p_alive[1] == 1.0 and rates.p_alive[0] < rates.p_alive[1]  # a 30-week silence counts
    mu = (50.0 + 50.0 + 30.0) / 11
    np.testing.assert_allclose(rates.spend, (np.array([50.0, 50.0, 30.0]) + mu) / np.array([6, 6, 2]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"horizon": 0.0, "annual_discount_rate": 0.1}, "horizon"),
        ({"horizon": 52.0, "annual_discount_rate": 1.5}, "discount"),
        ({"horizon": 52.0, "annual_discount_rate": 0.1, "margin": 0.0}, "margin"),
    ],
)
def test_invalid_settings_are_rejected(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_and_score(_tiny_base(), **kwargs)  # type: ignore[arg-type]


def test_a_degenerate_fit_that_cannot_score_falls_back_too() -> None:
    # 20 identical heavy buyers: the fit drifts to r ~ 1e4 where eq. (10) cannot be evaluated.
    same = TransactionSummary.from_arrays([2256] * 20, [0.5] * 20, [1.0] * 20, [1.0] * 20)
    with pytest.raises(FitError):
        fit_and_score(same, horizon=52.0, annual_discount_rate=0.1)
    result = fit_and_score(same, horizon=52.0, annual_discount_rate=0.1, on_fit_failure="empirical")
    assert result.purchase_model == "empirical"
    assert np.all(np.isfinite(result.clv)) and np.ptp(result.clv) == 0
