"""sBG: the published estimates of Fader & Hardie (2007) and the DERL of Fader & Hardie (2010)."""

from __future__ import annotations

import numpy as np
import pytest

from core.clv import SbgParams, fit_sbg, fit_sbg_durations
from core.errors import FitError

# Customers still active at the start of years 0..12 of two cohorts of 1,000 (Fader & Hardie 2007, from
# Berry & Linoff). The paper fits years 0..7 and projects years 8..12.
REGULAR = [1000, 631, 468, 382, 326, 289, 262, 241, 223, 207, 194, 183, 173]
HIGH_END = [1000, 869, 743, 653, 593, 551, 517, 491, 468, 445, 427, 409, 394]
PUBLISHED = {"regular": (REGULAR, 0.704, 1.182), "high end": (HIGH_END, 0.668, 3.806)}


@pytest.mark.parametrize("cohort", PUBLISHED)
def test_reproduces_the_published_estimates_on_seven_years(cohort: str) -> None:
    survivors, alpha, beta = PUBLISHED[cohort]
    fit = fit_sbg(survivors[:8])
    estimate = fit.params
    print(f"\nsBG {cohort}: alpha = {estimate.alpha:.4f}, beta = {estimate.beta:.4f}, LL = {fit.log_likelihood:.2f}")
    assert fit.params.alpha == pytest.approx(alpha, abs=0.001)
    assert fit.params.beta == pytest.approx(beta, abs=0.001)
    assert fit.n_customers == 1000


@pytest.mark.parametrize("cohort", PUBLISHED)
def test_projects_the_five_holdout_years_within_five_percent(cohort: str) -> None:
    survivors = PUBLISHED[cohort][0]
    params = fit_sbg(survivors[:8]).params
    projected = 1000 * params.survival(np.arange(8, 13))
    np.testing.assert_allclose(projected, survivors[8:], rtol=0.05)


def test_proportions_give_the_same_fit_as_counts() -> None:
    counts = fit_sbg(HIGH_END[:8]).params
    shares = fit_sbg(np.array(HIGH_END[:8]) / 1000).params
    assert shares.alpha == pytest.approx(counts.alpha, rel=1e-6)
    assert shares.beta == pytest.approx(counts.beta, rel=1e-6)


def test_survival_churn_and_retention_agree() -> None:
    params = SbgParams(alpha=0.704, beta=1.182)
    t = np.arange(1, 30)
    survival = params.survival(np.arange(0, 30))
    np.testing.assert_allclose(survival[:-1] - survival[1:], params.churn_probability(t), rtol=1e-12)
    np.testing.assert_allclose(survival[1:] / survival[:-1], params.retention_rate(t), rtol=1e-12)
    assert np.all(np.diff(params.retention_rate(t)) > 0)  # heterogeneity: retention rises with tenure


def _derl_by_summation(params: SbgParams, n: int, d: float, terms: int = 20_000) -> float:
    k = np.arange(terms)
    survive = params.survival(n + 1 + k) / params.survival(n)
    return float(np.sum(survive * np.exp(-k * np.log1p(d))))


# alpha = 1 and 2 make c - a - b of the 2F1 an integer, where scipy's hyp2f1 alone fails near z = 1.
@pytest.mark.parametrize("params", [SbgParams(0.668, 3.806), SbgParams(1.0, 2.0), SbgParams(2.0, 0.5)])
@pytest.mark.parametrize("n", [0, 1, 5, 50, 1000])
@pytest.mark.parametrize("d", [0.01, 0.1, 0.5])
def test_derl_is_the_discounted_sum_of_survival(params: SbgParams, n: int, d: float) -> None:
    assert float(params.derl(n, d)) == pytest.approx(_derl_by_summation(params, n, d), rel=1e-9)


def test_derl_grows_with_tenure_and_is_vectorised() -> None:
    params = SbgParams(alpha=0.704, beta=1.182)
    renewals = np.array([[0, 1], [5, 0]])
    derl = params.derl(renewals, 0.1)
    assert derl.shape == (2, 2) and derl[0, 0] == derl[1, 1]
    assert np.all(np.diff(params.derl(np.arange(20), 0.1)) > 0)
    with pytest.raises(ValueError, match="discount rate > 0"):
        params.derl(0, 0.0)


def test_expected_renewals_approach_the_closed_form_mean() -> None:
    params = SbgParams(alpha=2.5, beta=3.0)  # alpha > 1: finite mean remaining lifetime (beta + n)/(alpha - 1)
    assert float(params.expected_renewals(4, 200_000)) == pytest.approx((3.0 + 4) / 1.5, rel=1e-4)
    assert float(params.expected_renewals(4, 1)) == pytest.approx(float(params.retention_rate(5)))
    assert float(params.expected_renewals(4, 0)) == 0.0


def test_individual_durations_give_the_cohort_fit() -> None:
    survivors = np.array(REGULAR[:8])
    churned_at = np.repeat(np.arange(1, 8), -np.diff(survivors))
    periods = np.r_[churned_at, np.full(survivors[-1], 7)]
    churned = np.r_[np.ones(len(churned_at), bool), np.zeros(survivors[-1], bool)]
    individual = fit_sbg_durations(periods, churned).params
    cohort = fit_sbg(survivors).params
    assert individual.alpha == pytest.approx(cohort.alpha, rel=1e-6)
    assert individual.beta == pytest.approx(cohort.beta, rel=1e-6)


def test_cohorts_of_different_ages_combine() -> None:
    # Two cohorts observed for 7 and 4 years: both shapes feed one likelihood.
    older, younger = np.array(HIGH_END[:8]), np.array(HIGH_END[:5])
    periods = np.r_[np.arange(1, 8), 7, np.arange(1, 5), 4]
    churned = np.r_[np.ones(7, bool), False, np.ones(4, bool), False]
    weights = np.r_[-np.diff(older), older[-1], -np.diff(younger), younger[-1]]
    fit = fit_sbg_durations(periods, churned, weights)
    assert fit.n_customers == 2000
    assert fit.params.alpha == pytest.approx(0.668, rel=0.2) and fit.params.beta == pytest.approx(3.806, rel=0.2)


def test_data_without_churn_or_with_only_first_period_churn_cannot_be_fitted() -> None:
    with pytest.raises(FitError, match="nobody churned"):
        fit_sbg([100, 100, 100])
    with pytest.raises(FitError, match="first opportunity"):
        fit_sbg([100, 0])
    with pytest.raises(ValueError, match="non-increasing"):
        fit_sbg([100, 120])
