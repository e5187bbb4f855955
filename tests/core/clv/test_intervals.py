"""Per-customer intervals of every output (P(alive), expected purchases, CLV) from the fixed-seed parameter draw:
they bracket the point estimate, are reproducible, and do not depend on the order of the customers; the
batched Pareto/NBD P(alive) equals the per-draw closed form."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.clv import ClvResult, ParetoNbdParams, TransactionSummary, fit_and_score, paretonbd
from core.clv.paretonbd import expected_while_alive_under_draws, p_alive_under_draws
from core.clv.selection import ModelName
from core.clv.value import INTERVAL_SEED

OUTPUTS = ("p_alive", "expected_purchases", "clv")


def _bounds(result: ClvResult, name: str) -> tuple[np.ndarray, np.ndarray]:
    low, high = getattr(result, f"{name}_low"), getattr(result, f"{name}_high")
    assert low is not None and high is not None
    return low, high


@pytest.mark.parametrize("model", ["bgnbd", "mbgnbd", "pareto_nbd"])
def test_every_output_has_bounds_around_its_estimate(cdnow_calibration: TransactionSummary, model: ModelName) -> None:
    result = fit_and_score(cdnow_calibration, 52.0, 0.1, purchase_model=model, interval_draws=200)
    buyer = result.is_customer
    for name in OUTPUTS:
        low, high = _bounds(result, name)
        point = getattr(result, name)
        assert np.all(np.isfinite(low[buyer])) and np.all(np.isnan(low[~buyer])), name
        # A rounding step of slack: where every draw gives the same value (P(alive) = 1 for x = 0 under BG/NBD).
        tol = 1e-9 * np.maximum(1.0, np.abs(point[buyer]))
        assert np.all(low[buyer] <= point[buyer] + tol) and np.all(point[buyer] <= high[buyer] + tol), name
    p_low, p_high = _bounds(result, "p_alive")
    assert np.all(p_low[buyer] >= 0.0) and np.all(p_high[buyer] <= 1.0)
    # Parameter uncertainty is real: most customers' CLV bounds differ.
    clv_low, clv_high = _bounds(result, "clv")
    assert np.mean(clv_low[buyer] < clv_high[buyer]) > 0.9


def test_bounds_are_deterministic_and_invariant_to_customer_order(cdnow_calibration: TransactionSummary) -> None:
    s = cdnow_calibration
    first = fit_and_score(s, 52.0, 0.1, purchase_model="pareto_nbd", interval_draws=200)
    again = fit_and_score(s, 52.0, 0.1, purchase_model="pareto_nbd", interval_draws=200)
    order = np.random.default_rng(3).permutation(len(s.frequency))
    shuffled = TransactionSummary.from_arrays(s.frequency[order], s.recency[order], s.T[order],
                                              s.monetary_value[order], unit=s.unit)
    moved = fit_and_score(shuffled, 52.0, 0.1, purchase_model="pareto_nbd", interval_draws=200)
    buyer = first.is_customer
    for name in OUTPUTS:
        low, high = _bounds(first, name)
        np.testing.assert_array_equal(low, _bounds(again, name)[0])
        np.testing.assert_array_equal(high, _bounds(again, name)[1])
        m_low, m_high = _bounds(moved, name)
        # Same draws, same distinct histories: equal up to the optimiser's last digits on the permuted data.
        np.testing.assert_allclose(m_low[buyer[order]], low[order][buyer[order]], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(m_high[buyer[order]], high[order][buyer[order]], rtol=1e-6, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    draws=st.lists(st.tuples(*(st.floats(0.05, 20.0) for _ in range(4))), min_size=1, max_size=6),
    rows=st.lists(st.tuples(st.integers(0, 60), st.floats(0.0, 1.0), st.floats(0.1, 80.0)), min_size=1, max_size=30),
)
def test_batched_pareto_p_alive_is_the_closed_form_per_draw(
    draws: list[tuple[float, float, float, float]], rows: list[tuple[int, float, float]]
) -> None:
    x = np.array([r[0] for r in rows], dtype=np.float64)
    T = np.array([r[2] for r in rows])
    t_x = np.where(x > 0, np.array([r[1] for r in rows]) * T, 0.0)
    matrix = np.array(draws)
    batched = p_alive_under_draws(matrix, x, t_x, T)
    for k, row in enumerate(matrix):
        expected = ParetoNbdParams(*row).p_alive(x, t_x, T)
        np.testing.assert_allclose(batched[k], expected, rtol=1e-10, atol=1e-13)


@settings(max_examples=40, deadline=None)
@given(
    draws=st.lists(st.tuples(*(st.floats(0.05, 20.0) for _ in range(4))), min_size=1, max_size=6),
    windows=st.lists(st.tuples(st.integers(0, 60), st.floats(0.1, 80.0)), min_size=1, max_size=30),
    horizon=st.floats(0.5, 200.0),
)
def test_batched_pareto_expectations_while_alive_are_the_closed_form_per_draw(
    draws: list[tuple[float, float, float, float]], windows: list[tuple[int, float]], horizon: float
) -> None:
    x = np.array([w[0] for w in windows], dtype=np.float64)
    T = np.array([w[1] for w in windows])
    grid = np.linspace(0.0, horizon, 7)
    discount = 0.99 ** np.arange(1, 7)
    total, discounted = expected_while_alive_under_draws(np.array(draws), x, T, grid, discount)
    for k, row in enumerate(draws):
        cumulative = ParetoNbdParams(*row).expected_purchases_if_alive(grid[1:, None], x, T)
        np.testing.assert_allclose(total[k], cumulative[-1], rtol=1e-12)
        np.testing.assert_allclose(discounted[k], discount @ np.diff(cumulative, axis=0, prepend=0.0), rtol=1e-12)


def test_bounds_are_the_quantiles_of_each_customers_draws(cdnow_calibration: TransactionSummary) -> None:
    """The per-customer bounds are np.quantile of that customer's values over the same draws, computed here one
    customer at a time from the per-draw closed form."""
    s = cdnow_calibration
    result = fit_and_score(s, 52.0, 0.1, purchase_model="pareto_nbd", interval_draws=50, interval_level=0.8)
    fit = result.purchase_fit
    assert fit is not None
    rng = np.random.default_rng(INTERVAL_SEED)
    estimate = np.log(list(fit.parameters.values()))
    draws = np.exp(rng.multivariate_normal(estimate, fit.covariance, size=50))
    some = np.flatnonzero(result.is_customer)[::97]
    x, t_x, T = s.frequency[some].astype(np.float64), s.recency[some], s.T[some]
    alive = np.stack([ParetoNbdParams(*row).p_alive(x, t_x, T) for row in draws])
    expected = np.stack([ParetoNbdParams(*row).conditional_expected_purchases(52.0, x, t_x, T) for row in draws])
    for values, name in ((alive, "p_alive"), (expected, "expected_purchases")):
        low, high = _bounds(result, name)
        np.testing.assert_allclose(low[some], np.quantile(values, 0.1, axis=0), rtol=1e-9)
        np.testing.assert_allclose(high[some], np.quantile(values, 0.9, axis=0), rtol=1e-9)


def test_draws_scored_in_small_blocks_give_the_same_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scoring splits the draws into blocks of about _DRAW_BLOCK elements; the split must not change a digit."""
    rng = np.random.default_rng(5)
    draws = np.exp(rng.normal(np.log([0.55, 10.6, 0.6, 11.7]), 0.3, size=(9, 4)))
    x = rng.integers(0, 30, size=40).astype(np.float64)
    T = rng.integers(1, 400, size=40) / 7.0
    t_x = np.where(x > 0, np.floor(rng.uniform(0, 1, size=40) * T * 7.0) / 7.0, 0.0)
    grid, discount = np.linspace(0.0, 52.0, 13), 0.99 ** np.arange(1, 13)
    whole = (p_alive_under_draws(draws, x, t_x, T), *expected_while_alive_under_draws(draws, x, T, grid, discount))
    monkeypatch.setattr(paretonbd, "_DRAW_BLOCK", 16)
    split = (p_alive_under_draws(draws, x, t_x, T), *expected_while_alive_under_draws(draws, x, T, grid, discount))
    for one, other in zip(whole, split, strict=True):
        np.testing.assert_array_equal(one, other)
