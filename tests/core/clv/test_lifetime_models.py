"""clv.model end to end through core.lifetime: a fixed model, and "auto" choosing by holdout on CDNOW."""

from __future__ import annotations

import numpy as np
import pytest

from core.columns import DealColumns, StatusCode
from core.config import ClvConfig
from core.lifetime import customer_value
from tests.core.clv.data import HOLDOUT_END, Transactions, epoch


def _won_deals(tx: Transactions) -> DealColumns:
    n = len(tx.customer)
    return DealColumns(
        ids=np.array([f"deal-{i}" for i in range(n)], dtype=object),
        contact_index=tx.customer,
        amount=tx.amount,
        status=np.full(n, StatusCode.WON, dtype=np.int8),
        created_at=tx.time,
        closed_at=tx.time,
    )


def test_auto_chooses_by_holdout_and_refits_on_the_whole_history(cdnow_transactions: Transactions) -> None:
    """As of 1998-06-30 the history (from 1997-01-01) splits in half at 1997-09-30, the papers' CDNOW split:
    Pareto/NBD has the lowest holdout MAE (test_selection) and scores everyone from all 78 weeks."""
    tx = cdnow_transactions
    outcome = customer_value(_won_deals(tx), tx.n_customers, epoch(HOLDOUT_END), ClvConfig(model="auto"))
    d = outcome.diagnostics
    print("\n" + d["holdout"]["table"])
    assert d["holdout"]["calibration_end"] == epoch("19970930")
    assert d["holdout"]["holdout_length"] == 39.0 and d["holdout"]["actual"] == 1882
    assert d["holdout"]["chosen"] == "pareto_nbd" and outcome.model == "pareto_nbd"
    # The tracking curve for the report's calibration picture, JSON-ready in the run's diagnostics.
    tracking = d["holdout"]["tracking"]
    assert tracking["actual"][-1] == 4339 and set(tracking["predicted"]) == {"bgnbd", "mbgnbd", "pareto_nbd"}
    assert len(tracking["t"]) == len(tracking["actual"]) == len(tracking["predicted"]["pareto_nbd"])
    assert d["purchase_model"] == "pareto_nbd" and d["fallback"] is False
    assert any("pareto_nbd chosen by holdout MAE" in note for note in d["notes"])
    # The refit uses all 78 weeks: its estimates are not the calibration ones.
    assert d["pareto_nbd"]["beta"] != pytest.approx(11.669, abs=0.01)
    assert np.all(np.isfinite(outcome.columns["clv"])) and np.all(outcome.columns["clv"] >= 0)


@pytest.mark.parametrize("model", ["mbgnbd", "pareto_nbd"])
def test_a_fixed_model_is_used_and_reported(cdnow_transactions: Transactions, model: str) -> None:
    tx = cdnow_transactions
    outcome = customer_value(_won_deals(tx), tx.n_customers, epoch("19970930"), ClvConfig(model=model))  # type: ignore[arg-type]
    d = outcome.diagnostics
    assert d["model"] == model and d["purchase_model"] == model and "holdout" not in d
    # Pareto/NBD's is the published one; MBG/NBD's (BTYDplus reports no likelihood) is our fit's (test_mbgnbd).
    expected_ll = -9595.0 if model == "pareto_nbd" else -9582.1
    assert "bgnbd" not in d and d[model]["log_likelihood"] == pytest.approx(expected_ll, abs=0.1)
    gaps = outcome.columns["usual_gap_days"]
    assert np.all(np.isfinite(gaps[outcome.is_customer])) and np.all(gaps[outcome.is_customer] > 0)


def test_a_run_s_diagnostics_carry_the_fit_s_frequency_histogram(cdnow_transactions: Transactions) -> None:
    tx = cdnow_transactions
    outcome = customer_value(_won_deals(tx), tx.n_customers, epoch(HOLDOUT_END), ClvConfig(model="bgnbd"))
    histogram = outcome.diagnostics["frequency_histogram"]
    assert histogram["model"] == "bgnbd" and histogram["labels"][-1] == "7+"
    assert sum(histogram["actual"]) == 2357 and sum(histogram["expected"]) == pytest.approx(2357)
