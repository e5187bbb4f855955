"""Pareto/NBD: the published CDNOW estimates, R BTYD's reference values, and the likelihood against an
independent quadrature of its defining integral."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import approx_fprime
from scipy.special import gammaln
from scipy.stats import nbinom

from core.clv import TransactionSummary
from core.clv.paretonbd import ParetoNbdParams, _Rows, fit_pareto_nbd
from core.errors import FitError
from tests.core.clv.data import CDNOW_PARETO_NBD, CDNOW_PARETO_NBD_LL

# R BTYD's estimates on CDNOW (cdnowSummary$est.params), used by the BTYD walkthrough's examples.
BTYD = ParetoNbdParams(r=0.5534, alpha=10.5802, s=0.6061, beta=11.6562)
# lifetimes' overflow cases (test_overflow_error): a purchase rate around 1,300 a week.
EXTREME = ParetoNbdParams(r=10.465, alpha=7.98565181e-03, s=3.0516, beta=2.820)


def _by_quadrature(p: ParetoNbdParams, x: float, t_x: float, T: float) -> float:
    """log L from the defining integral over the death time (Fader, Hardie & Lee 2005 note),
    scaled by (alpha + t_x)^(r+x) so that quad sees numbers near 1."""
    m = p.r + x
    scale = m * np.log(p.alpha + t_x)
    alive = np.exp(scale - m * np.log(p.alpha + T) - p.s * np.log(p.beta + T))
    integrand = lambda u: np.exp(scale - m * np.log(p.alpha + u)) * (p.beta + u) ** (-(p.s + 1.0))  # noqa: E731
    dropped = p.s * quad(integrand, t_x, T, epsabs=0.0, epsrel=1e-13, points=[t_x + 1e-3, t_x + 0.1], limit=200)[0]
    common = gammaln(m) - gammaln(p.r) + p.r * np.log(p.alpha) + p.s * np.log(p.beta)
    return float(common - scale + np.log(alive + dropped))


def test_reproduces_the_published_cdnow_estimates_from_the_raw_purchases(cdnow_calibration: TransactionSummary) -> None:
    s = cdnow_calibration
    fit = fit_pareto_nbd(s.frequency, s.recency, s.T)
    print(f"\nPareto/NBD on CDNOW (raw): {fit.params}, LL = {fit.log_likelihood:.2f}, {fit.iterations} iterations")
    for name, published in CDNOW_PARETO_NBD.items():
        assert getattr(fit.params, name) == pytest.approx(published, abs=0.001), name
    assert fit.log_likelihood == pytest.approx(CDNOW_PARETO_NBD_LL, abs=0.1)
    assert fit.n_customers == 2357


def test_the_rounded_summary_file_moves_only_the_flat_beta(cdnow_summary: np.ndarray) -> None:
    """The CSV rounds recency to 2 decimals. beta is the least identified parameter (the likelihood changes by
    1.5e-8 between 11.668 and 11.669), so it lands 0.0011 from the published value; the rest do not move."""
    fit = fit_pareto_nbd(cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"])
    for name, published in CDNOW_PARETO_NBD.items():
        assert getattr(fit.params, name) == pytest.approx(published, abs=0.002 if name == "beta" else 0.001), name
    assert fit.log_likelihood == pytest.approx(CDNOW_PARETO_NBD_LL, abs=0.1)


def test_matches_the_r_btyd_walkthrough() -> None:
    # BTYD walkthrough: the customer with x = 26, t_x = 30.86, T = 31 is alive with 0.9979 and expected to
    # buy 25.46 times in the next 52 weeks (both printed to the digits given).
    assert float(BTYD.p_alive(26, 30.86, 31.0)) == pytest.approx(0.9979, abs=5e-5)
    assert float(BTYD.conditional_expected_purchases(52.0, 26, 30.86, 31.0)) == pytest.approx(25.46, abs=0.01)


@pytest.mark.parametrize("params", [BTYD, EXTREME, ParetoNbdParams(0.5, 30.0, 0.4, 3.0), ParetoNbdParams(1, 5, 2, 5)])
@pytest.mark.parametrize(
    ("x", "t_x", "T"), [(0, 0.0, 38.86), (2, 30.43, 38.86), (50, 20.0, 38.86), (500, 1.0, 37.0), (3, 38.8, 38.86)]
)
def test_log_likelihood_matches_the_defining_integral(params: ParetoNbdParams, x: int, t_x: float, T: float) -> None:
    assert float(params.log_likelihood(x, t_x, T)) == pytest.approx(_by_quadrature(params, x, t_x, T), rel=1e-11)


def test_p_alive_survives_lifetimes_overflow_cases() -> None:
    alive = EXTREME.p_alive([40, 50, 50, 400, 500, 500], [5.0, 1.0, 4.0, 5.0, 1.0, 4.0], [6.0, 37.0, 37.0] * 2)
    assert np.all(np.isfinite(alive)) and np.all((alive >= 0) & (alive <= 1))
    assert np.all(np.isfinite(EXTREME.log_likelihood([400, 500, 500], [5.0, 1.0, 4.0], [6.0, 37.0, 37.0])))


def test_conditional_expectation_has_no_underflow_jump() -> None:
    # lifetimes test_conditional_expectation_underflow: one more purchase after 200 weeks barely moves it.
    p = ParetoNbdParams(r=0.55, alpha=10.58, s=0.61, beta=11.67)
    left, right = p.conditional_expected_purchases(10.0, [132, 133], 200.0, 200.0)
    assert left == pytest.approx(6.2060517889632418, rel=1e-9)
    assert right == pytest.approx(6.2528722475748113, rel=1e-9)


def test_conditional_expectation_matches_the_posterior_mean_by_quadrature() -> None:
    """Alive at T, lambda ~ Gamma(r+x, alpha+T) and mu ~ Gamma(s, beta+T) independently; the expected count in
    (T, T+t] is E[lambda] E[(1 - exp(-mu t)) / mu], integrated numerically over mu."""
    x, T, t = 4, 30.0, 52.0

    def integrand(mu: float, shape: float, rate: float) -> float:
        log_density = shape * np.log(rate) - gammaln(shape) + (shape - 1) * np.log(mu) - rate * mu
        return float(-np.expm1(-mu * t) / mu * np.exp(log_density))

    for s in (0.6061, 1.0, 1.0 + 1e-9, 3.5):
        p = ParetoNbdParams(0.5534, 10.5802, s, 11.6562)
        mean_mu_part = quad(integrand, 0, np.inf, args=(p.s, p.beta + T), epsrel=1e-12, limit=200)[0]
        expected = (p.r + x) / (p.alpha + T) * mean_mu_part
        assert float(p.expected_purchases_if_alive(t, x, T)) == pytest.approx(expected, rel=1e-8), s


def test_expected_purchases_of_a_new_customer() -> None:
    # E[X(t)] = r beta / (alpha (s-1)) [1 - (beta/(beta+t))^(s-1)] (the note), by hand at t = 1 and 52.
    p = BTYD
    for t in (1.0, 52.0):
        closed = p.r * p.beta / (p.alpha * (p.s - 1)) * (1 - (p.beta / (p.beta + t)) ** (p.s - 1))
        assert float(p.expected_purchases(t)) == pytest.approx(closed, rel=1e-12)
    assert float(p.expected_purchases(0.0)) == 0.0


@pytest.mark.parametrize(
    "point", [[0.55, 10.5, 0.6, 11.6], [0.55, 11.6, 0.6, 10.5], [2.0, 3.0, 0.3, 3.0], [1.0, 4.0, 2.0, 4.0]]
)
def test_gradient_is_the_derivative_of_the_objective(cdnow_summary: np.ndarray, point: list[float]) -> None:
    # Both sides of alpha = beta (the note's two forms) and alpha = beta itself.
    rows = _Rows.build(cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"], np.ones(2357))
    at = np.log(point)
    numeric = approx_fprime(at, lambda v: rows.objective(v)[0], 1e-7)
    np.testing.assert_allclose(rows.objective(at)[1], numeric, atol=2e-7)


def test_weights_are_the_same_as_repeated_rows(cdnow_summary: np.ndarray) -> None:
    x, t_x, T = cdnow_summary["frequency"][:600], cdnow_summary["recency"][:600], cdnow_summary["T"][:600]
    weights = np.arange(600) % 3 + 1
    weighted = fit_pareto_nbd(x, t_x, T, weights=weights)
    repeated = fit_pareto_nbd(np.repeat(x, weights), np.repeat(t_x, weights), np.repeat(T, weights))
    for name in ("r", "alpha", "s", "beta"):
        assert getattr(weighted.params, name) == pytest.approx(getattr(repeated.params, name), rel=1e-6)
    assert weighted.log_likelihood == pytest.approx(repeated.log_likelihood, rel=1e-10)


def test_scales_too_far_apart_are_refused_not_truncated() -> None:
    # alpha / beta = 1e5: the series would need millions of terms for a customer seen since yesterday.
    with pytest.raises(FitError, match="purchase and dropout scales differ too much"):
        ParetoNbdParams(0.5, 0.01, 0.6, 1000.0).p_alive(0, 0.0, 1.0)
    # A thousand-fold difference still works, exactly.
    p = ParetoNbdParams(0.5, 1.0, 0.6, 1000.0)
    assert float(p.log_likelihood(0, 0.0, 1.0)) == pytest.approx(_by_quadrature(p, 0, 0.0, 1.0), rel=1e-11)


def test_no_repeat_purchase_at_all_cannot_be_fitted() -> None:
    with pytest.raises(FitError, match="no customer has a repeat purchase"):
        fit_pareto_nbd([0, 0, 0], [0.0, 0.0, 0.0], [10.0, 20.0, 30.0])


@pytest.mark.parametrize(("x", "t_x", "T"), [([1], [5.0], [4.0]), ([-1], [0.0], [4.0]), ([0], [2.0], [4.0])])
def test_impossible_histories_are_rejected(x: list[float], t_x: list[float], T: list[float]) -> None:
    with pytest.raises(ValueError, match="invalid Pareto/NBD data"):
        fit_pareto_nbd(x, t_x, T)


# P(X(t) = k) under parameters on both sides of alpha = beta (the note's two 2F1 forms) and with s > 1.
PMF_PARAMS = [BTYD, ParetoNbdParams(0.5, 30.0, 0.4, 3.0), ParetoNbdParams(2.0, 10.0, 1.5, 20.0)]


def _pmf_by_quadrature(p: ParetoNbdParams, k: int, t: float) -> float:
    """P(X(t) = k) straight from the model: alive at t, k purchases from the NBD (Poisson mixed over lambda), with
    probability (beta/(beta+t))^s; or dead at tau < t, whose density is the Lomax s beta^s / (beta+tau)^(s+1), after
    k purchases in (0, tau]. Written with scipy.stats, independently of the closed form's 2F1 terms."""
    alive = nbinom.pmf(k, p.r, p.alpha / (p.alpha + t)) * (p.beta / (p.beta + t)) ** p.s

    def dead_at(tau: float) -> float:
        return float(nbinom.pmf(k, p.r, p.alpha / (p.alpha + tau)) * p.s * p.beta**p.s / (p.beta + tau) ** (p.s + 1))

    dropped = quad(dead_at, 0.0, t, epsabs=0.0, epsrel=1e-12, limit=400)[0]
    return float(alive + dropped)


@pytest.mark.parametrize("params", PMF_PARAMS)
@pytest.mark.parametrize("t", [0.5, 39.0, 78.0, 260.0])
def test_p_purchases_is_a_distribution_whose_mean_is_the_expected_purchases(params: ParetoNbdParams, t: float) -> None:
    k = np.arange(1500, dtype=np.float64)
    pmf = params.p_purchases(k, t)
    assert np.all(np.isfinite(pmf)) and np.all(pmf >= 0)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-6)
    assert float(np.dot(k, pmf)) == pytest.approx(float(params.expected_purchases(t)), rel=1e-6)


@pytest.mark.parametrize("params", PMF_PARAMS)
@pytest.mark.parametrize(("k", "t"), [(0, 0.5), (0, 39.0), (1, 39.0), (3, 78.0), (10, 39.0), (40, 520.0), (2, 1e-3)])
def test_p_purchases_matches_the_model_by_quadrature(params: ParetoNbdParams, k: int, t: float) -> None:
    # The dropped-out part is a difference of two integrals, exact to ~1e-17 absolutely, not relatively: at
    # t = 0.001 the probability of 2 purchases is 4e-10.
    assert float(params.p_purchases(k, t)) == pytest.approx(_pmf_by_quadrature(params, k, t), rel=1e-8, abs=1e-16)


def test_p_purchases_broadcasts_and_starts_at_no_purchase() -> None:
    grid = BTYD.p_purchases(np.arange(4)[None, :], np.array([0.0, 10.0, 52.0])[:, None])
    assert grid.shape == (3, 4)
    np.testing.assert_array_equal(grid[0], [1.0, 0.0, 0.0, 0.0])  # nothing can happen in no time
    np.testing.assert_allclose(grid[1:], [[float(BTYD.p_purchases(k, t)) for k in range(4)] for t in (10.0, 52.0)],
                               rtol=1e-14)
    with pytest.raises(ValueError, match="non-negative integer"):
        BTYD.p_purchases(1.5, 10.0)
