"""Invariants that must hold for any parameters and any customer base (hypothesis)."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from core.clv import BgNbdParams, ClvResult, GammaGammaParams, TransactionSummary, fit_and_score
from core.clv.simulate import simulate_bgnbd, simulate_mean_spend
from tests.core.clv.data import CDNOW_BGNBD, CDNOW_GAMMA_GAMMA

# Wider than any fitted customer base (CDNOW: r = 0.24, alpha = 4.4 weeks, a = 0.79, b = 2.4).
params = st.builds(
    BgNbdParams,
    r=st.floats(0.01, 50.0),
    alpha=st.floats(0.1, 1000.0),
    a=st.floats(0.01, 50.0),
    b=st.floats(0.01, 1000.0),
)


@st.composite
def histories(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Customers from brand new (T = 0) to 10,000 repeat purchases, with valid recencies."""
    n = draw(st.integers(1, 12))
    x = np.array(draw(st.lists(st.sampled_from([0, 0, 1, 2, 5, 40, 1000, 10_000]), min_size=n, max_size=n)))
    T = np.array(draw(st.lists(st.floats(0.0, 1000.0), min_size=n, max_size=n)))
    share = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n)))
    return x, np.where(x > 0, share * T, 0.0), T


@settings(max_examples=300, deadline=None)
@given(params, histories())
def test_p_alive_is_a_probability(p: BgNbdParams, history: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    alive = p.p_alive(*history)
    assert np.all(np.isfinite(alive)) and np.all((alive >= 0) & (alive <= 1))
    assert np.all(alive[history[0] == 0] == 1)


@settings(max_examples=300, deadline=None)
@given(params, histories(), st.lists(st.floats(0.0, 520.0), min_size=2, max_size=6))
def test_expected_purchases_are_finite_non_negative_and_grow_with_the_horizon(
    p: BgNbdParams, history: tuple[np.ndarray, np.ndarray, np.ndarray], horizons: list[float]
) -> None:
    t = np.sort(np.array(horizons))[:, None]
    expected = p.conditional_expected_purchases(t, *history)
    assert np.all(np.isfinite(expected)) and np.all(expected >= 0)
    # Non-decreasing up to the closed form's accuracy (about 1e-8 relative at worst).
    assert np.all(np.diff(expected, axis=0) >= -1e-7 * (1.0 + expected[1:]))
    assert np.all(np.isfinite(p.log_likelihood(*history)))


@st.composite
def bases(draw: st.DrawFn) -> tuple[np.ndarray, ...]:
    """Small simulated bases (often too small to fit) plus degenerate rows: T = 0, huge x, duplicates."""
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(1, 400))
    rng = np.random.default_rng(seed)
    T = rng.integers(0, 60, size=n).astype(float)
    x, t_x = simulate_bgnbd(BgNbdParams(**CDNOW_BGNBD), T, rng)
    zbar = np.where(x > 0, simulate_mean_spend(GammaGammaParams(**CDNOW_GAMMA_GAMMA), x, rng), 0.0)
    if draw(st.booleans()):
        extra = draw(st.integers(1, 30))
        x = np.r_[x, np.full(extra, 10_000)]
        t_x, T, zbar = np.r_[t_x, np.full(extra, 30.0)], np.r_[T, np.full(extra, 39.0)], np.r_[zbar, np.ones(extra)]
    if draw(st.booleans()):
        x, t_x, T, zbar = np.r_[x, 0], np.r_[t_x, 0.0], np.r_[T, 0.0], np.r_[zbar, 0.0]
    return x, t_x, T, zbar


@settings(max_examples=60, deadline=None)
@given(bases(), st.randoms(use_true_random=False))
def test_clv_is_finite_non_negative_and_does_not_depend_on_customer_order(
    base: tuple[np.ndarray, ...], shuffler: random.Random
) -> None:
    x, t_x, T, zbar = base
    order = np.arange(len(x))
    shuffler.shuffle(order)  # type: ignore[arg-type]

    def score(summary: TransactionSummary) -> ClvResult:
        return fit_and_score(summary, horizon=52.0, annual_discount_rate=0.1, margin=0.4, on_fit_failure="empirical")

    result = score(TransactionSummary.from_arrays(x, t_x, T, zbar))
    shuffled = score(TransactionSummary.from_arrays(x[order], t_x[order], T[order], zbar[order]))
    for values in (result.clv, result.expected_purchases, result.expected_spend, result.p_alive):
        assert np.all(np.isfinite(values)) and np.all(values >= 0)
    assert np.all(result.p_alive <= 1)
    assert (result.purchase_model, result.spend_model) == (shuffled.purchase_model, shuffled.spend_model)
    np.testing.assert_allclose(shuffled.clv, result.clv[order], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(shuffled.p_alive, result.p_alive[order], rtol=1e-9, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 200), st.integers(0, 10_000), st.floats(0.0, 100.0), st.floats(0.01, 1000.0))
def test_identical_customers_still_get_finite_values(n: int, x: int, T: float, spend: float) -> None:
    t_x = T / 2 if x > 0 else 0.0
    summary = TransactionSummary.from_arrays([x] * n, [t_x] * n, [T] * n, [spend if x > 0 else 0.0] * n)
    result = fit_and_score(summary, horizon=52.0, annual_discount_rate=0.1, on_fit_failure="empirical")
    for values in (result.clv, result.expected_purchases, result.expected_spend, result.p_alive):
        assert np.all(np.isfinite(values)) and np.all(values >= 0)
    assert np.ptp(result.clv) == 0  # identical customers, identical values
