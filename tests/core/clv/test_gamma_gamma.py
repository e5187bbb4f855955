"""Gamma-Gamma: the note's published CDNOW estimates, the reference implementation, and the model checks."""

from __future__ import annotations

import numpy as np
import pytest

from core.clv import GammaGammaParams, check_independence, fit_gamma_gamma
from core.clv.simulate import simulate_mean_spend
from core.errors import FitError
from tests.core.clv.data import CDNOW_GAMMA_GAMMA

# Computed with lifetimes 0.11.3's GammaGammaFitter.conditional_expected_average_profit at these parameters
# for the first five CDNOW customers (x, zbar) = (2, 22.35), (1, 11.77), (0, 0), (0, 0), (0, 0).
LIFETIMES_PARAMS = GammaGammaParams(p=6.248802, q=3.744588, gamma=15.447748)
LIFETIMES_SPEND = [24.65861656, 18.91148034, 35.17100512, 35.17100512, 35.17100512]


def test_reproduces_the_published_cdnow_estimates(cdnow_spend: np.ndarray) -> None:
    fit = fit_gamma_gamma(cdnow_spend["x"], cdnow_spend["zbar"])
    corr = fit.independence.correlation
    print(f"\nGamma-Gamma on CDNOW: {fit.params}, LL = {fit.log_likelihood:.2f}, corr(x, zbar) = {corr:.3f}")
    for name, published in CDNOW_GAMMA_GAMMA.items():
        assert getattr(fit.params, name) == pytest.approx(published, abs=0.01), name
    assert fit.n_customers == 946  # customers with at least one repeat purchase
    assert fit.independence.warning is None  # the note finds frequency and spend nearly uncorrelated


def test_expected_spend_matches_the_reference_implementation() -> None:
    got = LIFETIMES_PARAMS.conditional_expected_spend([2, 1, 0, 0, 0], [22.35, 11.77, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(got, LIFETIMES_SPEND, rtol=1e-7)


def test_expected_spend_shrinks_towards_the_population_mean_with_fewer_purchases() -> None:
    params = GammaGammaParams(p=6.25, q=3.74, gamma=15.44)
    few, many = params.conditional_expected_spend([1, 100], [100.0, 100.0])
    assert params.population_mean < few < many < 100.0
    assert params.conditional_expected_spend(0, 0.0) == pytest.approx(params.population_mean)


def test_recovers_the_parameters_of_simulated_spend() -> None:
    truth = GammaGammaParams(**CDNOW_GAMMA_GAMMA)
    rng = np.random.default_rng(2013)
    x = rng.integers(1, 20, size=100_000)
    fit = fit_gamma_gamma(x, simulate_mean_spend(truth, x, rng))
    for name in ("p", "q", "gamma"):
        assert getattr(fit.params, name) == pytest.approx(getattr(truth, name), rel=0.05), name


def test_a_strong_frequency_spend_correlation_is_flagged() -> None:
    x = np.arange(1, 101)
    check = check_independence(x, 10.0 + 2.0 * x)
    assert check.correlation == pytest.approx(1.0)
    assert check.warning is not None and "independence" in check.warning
    assert check_independence([1, 2], [3.0, 4.0]).correlation == 0.0  # too few to say


def test_nobody_with_a_repeat_purchase_cannot_be_fitted() -> None:
    with pytest.raises(FitError, match="no customer has a repeat purchase"):
        fit_gamma_gamma([0, 0, 1], [0.0, 0.0, 0.0])


def test_identical_spend_does_not_identify_the_model() -> None:
    with pytest.raises(FitError, match="drifted towards 0 or infinity"):
        fit_gamma_gamma([2] * 50, [10.0] * 50)


def test_a_spend_distribution_without_a_finite_mean_is_refused() -> None:
    # With q < 1 the population mean gamma p / (q - 1) does not exist: customers without repeat purchases
    # could not be valued, so the fit is refused rather than returned.
    rng = np.random.default_rng(7)
    x = rng.integers(1, 10, size=5000)
    spend = simulate_mean_spend(GammaGammaParams(p=6.0, q=0.8, gamma=15.0), x, rng)
    with pytest.raises(FitError, match="no finite population mean"):
        fit_gamma_gamma(x, spend)
