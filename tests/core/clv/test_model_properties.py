"""Invariants of Pareto/NBD, MBG/NBD and BG/BB for any parameters and customer base (hypothesis)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from core.clv import BgNbdParams
from core.clv.bgbb import BgBbParams, fit_bgbb
from core.clv.mbgnbd import MbgNbdParams, fit_mbgnbd
from core.clv.paretonbd import ParetoNbdParams, fit_pareto_nbd
from core.clv.simulate import simulate_bgnbd
from core.errors import FitError
from tests.core.clv.data import CDNOW_BGNBD

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]

positive = st.floats(0.01, 50.0)
# alpha and beta up to a factor 1,000 apart: beyond ~1,500 the model refuses (test_paretonbd).
pareto_params = st.builds(
    lambda r, alpha, s, log_ratio: ParetoNbdParams(r, alpha, s, alpha * 10.0**log_ratio),
    positive,
    st.floats(0.01, 1000.0),
    positive,
    st.floats(-3.0, 3.0),
)
mbg_params = st.builds(MbgNbdParams, r=positive, alpha=st.floats(0.1, 1000.0), a=positive, b=st.floats(0.01, 1000.0))
bgbb_params = st.builds(BgBbParams, alpha=positive, beta=positive, gamma=positive, delta=positive)


@st.composite
def histories(draw: st.DrawFn) -> Arrays:
    """Continuous-time customers from brand new (T = 0) to 10,000 repeat purchases, valid recencies."""
    n = draw(st.integers(1, 12))
    x = np.array(draw(st.lists(st.sampled_from([0, 0, 1, 2, 5, 40, 1000, 10_000]), min_size=n, max_size=n)))
    T = np.array(draw(st.lists(st.floats(0.0, 1000.0), min_size=n, max_size=n)))
    share = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n)))
    return x, np.where(x > 0, share * T, 0.0), T


@st.composite
def discrete_histories(draw: st.DrawFn) -> Arrays:
    """Discrete-time customers: x transactions, the last at opportunity t_x, over n <= 60 opportunities."""
    size = draw(st.integers(1, 12))
    n = np.array(draw(st.lists(st.integers(0, 60), min_size=size, max_size=size)))
    t_x = np.array([draw(st.integers(0, int(v))) for v in n])
    x = np.array([draw(st.integers(1, int(t))) if t > 0 else 0 for t in t_x])
    return x, t_x, n


def _check_predictions(p: Any, history: Arrays, horizons: list[float]) -> None:
    alive = p.p_alive(*history)
    assert np.all(np.isfinite(alive)) and np.all((alive >= 0) & (alive <= 1))
    t = np.sort(np.array(horizons))[:, None]
    expected = p.conditional_expected_purchases(t, *history)
    assert np.all(np.isfinite(expected)) and np.all(expected >= 0)
    # Non-decreasing up to the closed forms' accuracy.
    assert np.all(np.diff(expected, axis=0) >= -1e-7 * (1.0 + expected[1:]))
    fresh = p.expected_purchases(t[:, 0])
    assert np.all(np.isfinite(fresh)) and np.all(fresh >= 0) and np.all(np.diff(fresh) >= -1e-9 * (1.0 + fresh[1:]))
    assert np.all(np.isfinite(p.log_likelihood(*history)))


@settings(max_examples=100, deadline=None)
@given(pareto_params, histories(), st.lists(st.floats(0.0, 520.0), min_size=2, max_size=6))
def test_pareto_nbd_predictions(p: ParetoNbdParams, history: Arrays, horizons: list[float]) -> None:
    _check_predictions(p, history, horizons)


@settings(max_examples=100, deadline=None)
@given(mbg_params, histories(), st.lists(st.floats(0.0, 520.0), min_size=2, max_size=6))
def test_mbgnbd_predictions(p: MbgNbdParams, history: Arrays, horizons: list[float]) -> None:
    _check_predictions(p, history, horizons)
    x, t_x, T = history
    # Unlike BG/NBD, a customer without repeats may be dead: the odds of death are at least a / b.
    assert np.all(p.p_alive(x, t_x, T)[x == 0] < 1.0)


@settings(max_examples=100, deadline=None)
@given(bgbb_params, discrete_histories(), st.lists(st.integers(0, 200), min_size=2, max_size=6))
def test_bgbb_predictions(p: BgBbParams, history: Arrays, horizons: list[int]) -> None:
    _check_predictions(p, history, [float(h) for h in horizons])


@st.composite
def bases(draw: st.DrawFn) -> tuple[Arrays, np.ndarray]:
    """A simulated continuous-time base (CDNOW-like) with a random multiplicity per row; large enough that the
    models are usually identified (on a few dozen customers Pareto/NBD's s and beta often run off to infinity,
    which is refused, slowly, after tens of thousands of series terms)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(400, 700))
    T = rng.integers(1, 78, size=n).astype(float)
    x, t_x = simulate_bgnbd(BgNbdParams(**CDNOW_BGNBD), T, rng)
    return (x.astype(float), np.round(t_x, 2), T), rng.integers(1, 4, size=n)


@st.composite
def discrete_bases(draw: st.DrawFn) -> tuple[Arrays, np.ndarray]:
    """A simulated BG/BB base over 6-10 opportunities, with a random multiplicity per row."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    size = draw(st.integers(30, 150))
    n = rng.integers(6, 11, size=size)
    p, theta = rng.beta(1.2, 0.75, size=size), rng.beta(0.66, 2.8, size=size)
    lifetime = rng.geometric(theta) - 1  # opportunities survived
    buys = (rng.random((size, 10)) < p[:, None]) & (np.arange(1, 11) <= np.minimum(lifetime, n)[:, None])
    x = buys.sum(axis=1)
    t_x = np.where(x > 0, 10 - np.argmax(buys[:, ::-1], axis=1), 0)
    return (x.astype(float), t_x.astype(float), n.astype(float)), rng.integers(1, 4, size=size)


def _same_fit(
    fit: Callable[..., Any], names: tuple[str, ...], data: Arrays, weights: np.ndarray, shuffler: random.Random
) -> None:
    """Fitting rows in another order, or with weights instead of repeated rows, changes nothing."""
    order = list(range(len(weights)))
    shuffler.shuffle(order)
    try:
        reference = fit(*data, weights=weights).params
    except FitError:
        reference = None
    for variant in (
        lambda: fit(*(a[order] for a in data), weights=weights[order]),
        lambda: fit(*(np.repeat(a, weights) for a in data)),
    ):
        try:
            got = variant().params
        except FitError:
            assert reference is None
            continue
        assert reference is not None
        for name in names:
            assert getattr(got, name) == getattr(reference, name) or np.isclose(
                getattr(got, name), getattr(reference, name), rtol=1e-6
            ), name


@settings(max_examples=4, deadline=None)
@given(bases(), st.randoms(use_true_random=False))
def test_pareto_nbd_fit_ignores_row_order_and_weights_equal_repeats(
    base: tuple[Arrays, np.ndarray], shuffler: random.Random
) -> None:
    _same_fit(fit_pareto_nbd, ("r", "alpha", "s", "beta"), *base, shuffler)


@settings(max_examples=5, deadline=None)
@given(bases(), st.randoms(use_true_random=False))
def test_mbgnbd_fit_ignores_row_order_and_weights_equal_repeats(
    base: tuple[Arrays, np.ndarray], shuffler: random.Random
) -> None:
    _same_fit(fit_mbgnbd, ("r", "alpha", "a", "b"), *base, shuffler)


@settings(max_examples=5, deadline=None)
@given(discrete_bases(), st.randoms(use_true_random=False))
def test_bgbb_fit_ignores_row_order_and_weights_equal_repeats(
    base: tuple[Arrays, np.ndarray], shuffler: random.Random
) -> None:
    _same_fit(fit_bgbb, ("alpha", "beta", "gamma", "delta"), *base, shuffler)
