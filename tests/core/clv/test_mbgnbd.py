"""MBG/NBD: the CDNOW reference estimates, the likelihood and expectations against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import approx_fprime
from scipy.special import betaln, gammaln

from core.clv import TransactionSummary
from core.clv.mbgnbd import MbgNbdParams, _Rows, fit_mbgnbd
from core.errors import FitError
from tests.core.clv.data import CDNOW_MBGNBD

P = MbgNbdParams(r=0.525, alpha=6.183, a=0.891, b=1.614)


def _beta_pdf(a: float, b: float, p: float) -> float:
    return float(np.exp((a - 1) * np.log(p) + (b - 1) * np.log1p(-p) - betaln(a, b)))


def test_reproduces_the_btydplus_cdnow_estimates(cdnow_summary: np.ndarray) -> None:
    fit = fit_mbgnbd(cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"])
    print(f"\nMBG/NBD on CDNOW: {fit.params}, LL = {fit.log_likelihood:.2f}, {fit.iterations} iterations")
    for name, reference in CDNOW_MBGNBD.items():
        assert getattr(fit.params, name) == pytest.approx(reference, abs=0.001), name
    assert fit.n_customers == 2357


def test_our_own_summary_of_the_raw_purchases_gives_the_same_fit(cdnow_calibration: TransactionSummary) -> None:
    s = cdnow_calibration
    fit = fit_mbgnbd(s.frequency, s.recency, s.T)
    for name, reference in CDNOW_MBGNBD.items():
        assert getattr(fit.params, name) == pytest.approx(reference, abs=0.001), name


@pytest.mark.parametrize(("x", "t_x", "T"), [(0, 0.0, 38.86), (2, 30.43, 38.86), (10, 35.0, 38.86), (3000, 38.0, 39.0)])
def test_log_likelihood_is_the_papers_sum_of_two_terms(x: int, t_x: float, T: float) -> None:
    r, alpha, a, b = P.r, P.alpha, P.a, P.b
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    alive = betaln(a, b + x + 1) - betaln(a, b) - (r + x) * np.log(alpha + T)
    dead = betaln(a + 1, b + x) - betaln(a, b) - (r + x) * np.log(alpha + t_x)
    assert float(P.log_likelihood(x, t_x, T)) == pytest.approx(common + np.logaddexp(alive, dead), rel=1e-12)


def test_a_customer_without_repeat_purchases_may_be_dead() -> None:
    # The difference from BG/NBD: p_alive(0, 0, T) = 1 / (1 + a/b ((alpha+T)/alpha)^r) < 1, falling with T.
    alive = P.p_alive([0, 0, 0], [0.0, 0.0, 0.0], [0.0, 10.0, 38.86])
    expected = 1.0 / (1.0 + P.a / P.b * ((P.alpha + np.array([0.0, 10.0, 38.86])) / P.alpha) ** P.r)
    np.testing.assert_allclose(alive, expected, rtol=1e-12)
    assert alive[0] > alive[1] > alive[2]


@pytest.mark.parametrize(("x", "T", "t"), [(0, 38.86, 39.0), (2, 38.86, 39.0), (25, 38.86, 78.0), (1, 5.0, 520.0)])
def test_expected_purchases_while_alive_match_the_posterior_integral(x: int, T: float, t: float) -> None:
    """Alive at T: lambda ~ Gamma(r+x, alpha+T), p ~ Beta(a, b+x+1); a living customer buys
    (1 - exp(-lambda p t)) / p times in t on average; lambda integrates in closed form, p by quadrature."""
    r, alpha = P.r + x, P.alpha + T
    integrand = lambda p: -np.expm1(-r * np.log1p(p * t / alpha)) / p * _beta_pdf(P.a, P.b + x + 1, p)  # noqa: E731
    expected = quad(integrand, 0.0, 1.0, epsrel=1e-11, limit=200)[0]
    assert float(P.expected_purchases_if_alive(t, x, T)) == pytest.approx(expected, rel=1e-7)


def test_expected_purchases_of_a_new_customer_match_the_integral() -> None:
    # Survive time 0 with 1 - p, then buy (1 - exp(-lambda p t)) / p on average.
    for t in (1.0, 39.0, 78.0):
        integrand = lambda p: (1 - p) * -np.expm1(-P.r * np.log1p(p * t / P.alpha)) / p * _beta_pdf(P.a, P.b, p)  # noqa: B023, E731
        expected = quad(integrand, 0.0, 1.0, epsrel=1e-11, limit=200)[0]
        assert float(P.expected_purchases(t)) == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize("point", [[0.5, 6.0, 0.9, 1.6], [2.0, 3.0, 0.3, 3.0], [0.3, 20.0, 5.0, 0.5]])
def test_gradient_is_the_derivative_of_the_objective(cdnow_summary: np.ndarray, point: list[float]) -> None:
    rows = _Rows.build(cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"], np.ones(2357))
    at = np.log(point)
    numeric = approx_fprime(at, lambda v: rows.objective(v)[0], 1e-7)
    np.testing.assert_allclose(rows.objective(at)[1], numeric, atol=2e-7)


def test_weights_are_the_same_as_repeated_rows(cdnow_summary: np.ndarray) -> None:
    x, t_x, T = cdnow_summary["frequency"][:600], cdnow_summary["recency"][:600], cdnow_summary["T"][:600]
    weights = np.arange(600) % 3 + 1
    weighted = fit_mbgnbd(x, t_x, T, weights=weights)
    repeated = fit_mbgnbd(np.repeat(x, weights), np.repeat(t_x, weights), np.repeat(T, weights))
    for name in ("r", "alpha", "a", "b"):
        assert getattr(weighted.params, name) == pytest.approx(getattr(repeated.params, name), rel=1e-6)


def test_no_repeat_purchase_at_all_cannot_be_fitted() -> None:
    with pytest.raises(FitError, match="no customer has a repeat purchase"):
        fit_mbgnbd([0, 0, 0], [0.0, 0.0, 0.0], [10.0, 20.0, 30.0])


def test_impossible_histories_are_rejected() -> None:
    with pytest.raises(ValueError, match="invalid MBG/NBD data: recency must satisfy"):
        fit_mbgnbd([1], [5.0], [4.0])
