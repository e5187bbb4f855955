"""BG/BB: the published donation-data estimates and the values of Fader & Hardie's BG/BB spreadsheet."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import approx_fprime
from scipy.special import betaln, gammaln

from core.clv.bgbb import BgBbParams, _Rows, fit_bgbb
from core.errors import FitError
from tests.core.clv.data import DONATIONS_BGBB, DONATIONS_BGBB_LL

P = BgBbParams(alpha=1.204, beta=0.750, gamma=0.657, delta=2.783)


def _fit(donations: np.ndarray) -> BgBbParams:
    d = donations
    return fit_bgbb(d["frequency"], d["recency"], d["periods"], weights=d["weights"]).params


def test_reproduces_the_published_donation_estimates(donations: np.ndarray) -> None:
    d = donations
    fit = fit_bgbb(d["frequency"], d["recency"], d["periods"], weights=d["weights"])
    print(f"\nBG/BB on the donations: {fit.params}, LL = {fit.log_likelihood:.2f}, {fit.iterations} iterations")
    for name, published in DONATIONS_BGBB.items():
        assert getattr(fit.params, name) == pytest.approx(published, abs=0.001), name
    assert fit.log_likelihood == pytest.approx(DONATIONS_BGBB_LL, abs=0.1)
    assert fit.n_customers == 11104


def test_p_alive_of_the_papers_table(donations: np.ndarray) -> None:
    # P(alive in 2002) for 0 donations, 2 with the last in 1999 (t_x = 4), 6 of 6 (as lifetimes asserts, 2 dp).
    p = _fit(donations)
    assert p.p_alive([0, 2, 6], [0, 4, 6], [6, 6, 6]) == pytest.approx([0.11, 0.59, 0.93], abs=0.005)


def test_matches_the_spreadsheet_totals(donations: np.ndarray) -> None:
    """Fader & Hardie's BG/BB workbook (brucehardie.com/notes/010): expected donations in the next 5 years,
    summed over the customers, 12,884.2 ("Conditional Expectations (II)"); in-sample customers with 0 and with
    6 donations in 6 years, 3,454.9 and 1,253.1 ("In-Sample Fit")."""
    d = donations
    p = _fit(d)
    total = float(np.dot(p.conditional_expected_purchases(5, d["frequency"], d["recency"], d["periods"]), d["weights"]))
    assert total == pytest.approx(12884.2, abs=0.5)
    counts = p.p_purchases(np.arange(7), 6) * d["weights"].sum()
    assert counts[[0, 6]] == pytest.approx([3454.9, 1253.1], abs=0.5)


def test_log_likelihood_is_the_papers_finite_sum() -> None:
    a, b, g, d = P.alpha, P.beta, P.gamma, P.delta
    for x, t_x, n in [(0, 0, 6), (2, 4, 6), (6, 6, 6), (3, 10, 40), (0, 0, 0)]:
        likelihood = np.exp(betaln(a + x, b + n - x) - betaln(a, b) + betaln(g, d + n) - betaln(g, d))
        for i in range(n - t_x):
            died = betaln(a + x, b + t_x - x + i) - betaln(a, b) + betaln(g + 1, d + t_x + i) - betaln(g, d)
            likelihood += np.exp(died)
        assert float(P.log_likelihood(x, t_x, n)) == pytest.approx(np.log(likelihood), rel=1e-12, abs=1e-14)


def test_purchase_distribution_sums_to_one_with_the_expected_mean() -> None:
    for n in (0, 1, 6, 40):
        pmf = P.p_purchases(np.arange(n + 2), n)
        assert pmf.sum() == pytest.approx(1.0, abs=1e-12)
        assert float(np.dot(np.arange(n + 2), pmf)) == pytest.approx(float(P.expected_purchases(n)), rel=1e-10)


def test_expectations_match_the_closed_form_away_from_gamma_one() -> None:
    # The paper's closed form of the conditional expectation, which divides by gamma - 1:
    # B(a+x+1, b+n-x)/B(a, b) / L * d/(g-1) G(g+d)/G(1+d) [G(1+d+n)/G(g+d+n) - G(1+d+n+t)/G(g+d+n+t)].
    a, b, g, d = P.alpha, P.beta, P.gamma, P.delta
    x, t_x, n, t = 3, 5, 6, 10
    likelihood = np.exp(P.log_likelihood(x, t_x, n))
    bracket = np.exp(gammaln(1 + d + n) - gammaln(g + d + n)) - np.exp(gammaln(1 + d + n + t) - gammaln(g + d + n + t))
    closed = (
        np.exp(betaln(a + x + 1, b + n - x) - betaln(a, b)) / likelihood
        * d / (g - 1) * np.exp(gammaln(g + d) - gammaln(1 + d)) * bracket
    )
    assert float(P.conditional_expected_purchases(t, x, t_x, n)) == pytest.approx(closed, rel=1e-10)
    # gamma = 1 exactly, where the closed form is 0/0, and the finite sum is not.
    assert np.isfinite(BgBbParams(1.2, 0.75, 1.0, 2.8).conditional_expected_purchases(t, x, t_x, n))


@pytest.mark.parametrize("point", [[1.2, 0.75, 0.66, 2.8], [3.0, 0.3, 2.0, 0.5]])
def test_gradient_is_the_derivative_of_the_objective(donations: np.ndarray, point: list[float]) -> None:
    d = donations
    rows = _Rows.build(d["frequency"], d["recency"], d["periods"], d["weights"])
    at = np.log(point)
    numeric = approx_fprime(at, lambda v: rows.objective(v)[0], 1e-7)
    np.testing.assert_allclose(rows.objective(at)[1], numeric, atol=2e-7)


def test_weights_are_the_same_as_repeated_rows(donations: np.ndarray) -> None:
    d = donations
    weights = d["weights"].astype(int)
    repeated = fit_bgbb(*(np.repeat(d[c], weights) for c in ("frequency", "recency", "periods"))).params
    weighted = _fit(d)
    for name in ("alpha", "beta", "gamma", "delta"):
        assert getattr(weighted, name) == pytest.approx(getattr(repeated, name), rel=1e-6)


def test_nobody_transacting_cannot_be_fitted() -> None:
    with pytest.raises(FitError, match="nobody transacted"):
        fit_bgbb([0, 0], [0, 0], [6, 6])


@pytest.mark.parametrize(("x", "t_x", "n"), [([2], [1], [6]), ([1], [7], [6]), ([0], [2], [6]), ([1.5], [2], [6])])
def test_impossible_histories_are_rejected(x: list[float], t_x: list[float], n: list[float]) -> None:
    with pytest.raises(ValueError, match="invalid BG/BB data"):
        fit_bgbb(x, t_x, n)
