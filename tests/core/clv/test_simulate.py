"""The Pareto/NBD simulator (used by the benchmark) draws bases whose fit recovers the parameters."""

from __future__ import annotations

import numpy as np
import pytest

from core.clv import ParetoNbdParams, fit_pareto_nbd
from core.clv.simulate import simulate_pareto_nbd


def test_a_simulated_pareto_nbd_base_is_fitted_back_to_its_parameters() -> None:
    truth = ParetoNbdParams(r=0.553, alpha=10.578, s=0.606, beta=11.669)  # CDNOW's estimates
    rng = np.random.default_rng(7)
    T = rng.integers(0, 2 * 365, size=20_000) / 7.0
    x, t_x = simulate_pareto_nbd(truth, T, rng)
    assert np.all((t_x >= 0) & (t_x <= T)) and np.all(t_x[x == 0] == 0)
    fit = fit_pareto_nbd(x, t_x, T)
    se = fit.covariance.diagonal() ** 0.5  # log scale: relative standard errors
    for (name, value), rel in zip({"r": truth.r, "alpha": truth.alpha, "s": truth.s, "beta": truth.beta}.items(),
                                  se, strict=True):
        assert getattr(fit.params, name) == pytest.approx(value, rel=4 * rel), name
