"""The predictive score: refusals with reasons, determinism, and no look-ahead through date features."""

from __future__ import annotations

import numpy as np
import pytest

from core.aggregates import deal_aggregates
from core.columns import ContactColumns, DealColumns, StatusCode
from core.config import PredictiveConfig
from core.models import FieldType
from core.predictive import PredictiveResult, predict_conversion
from tests.core.builders import AS_OF, DAY

TYPES = {"signal": FieldType.NUMBER, "noise": FieldType.NUMBER, "segment": FieldType.STRING,
         "converted_on": FieldType.DATETIME}


def world(n: int = 3000, seed: int = 0, informative: bool = True) -> tuple[ContactColumns, DealColumns]:
    """Contacts created over two years; the chance to buy after the cut-off rises with ``signal``."""
    rng = np.random.default_rng(seed)
    created = AS_OF - rng.uniform(200, 730, n) * DAY
    signal = rng.normal(size=n)
    logit = -1.5 + (2.5 * signal if informative else 0.0)
    buys = rng.random(n) < 1 / (1 + np.exp(-logit))
    when = AS_OF - rng.uniform(1, 170, n) * DAY
    buyers = np.flatnonzero(buys)
    segment = np.array(["a" if s > 0 else "b" for s in signal], dtype=object)
    segment[rng.random(n) < 0.1] = None
    contacts = ContactColumns(
        ids=np.array([f"c{i}" for i in range(n)], dtype=object), created_at=created,
        properties={"signal": signal, "noise": rng.normal(size=n), "segment": segment,
                    # A date recorded at the purchase: after the cut-off, so it must not be seen in training.
                    "converted_on": np.where(buys, when, np.nan)},
    )
    deals = DealColumns(
        ids=np.array([f"d{i}" for i in range(len(buyers))], dtype=object), contact_index=buyers.astype(np.int64),
        amount=np.full(len(buyers), 100.0), status=np.full(len(buyers), StatusCode.WON, dtype=np.int8),
        created_at=when[buyers] - DAY, closed_at=when[buyers],
    )
    return contacts, deals


def run(config: PredictiveConfig, contacts: ContactColumns, deals: DealColumns) -> PredictiveResult:
    first = deal_aggregates(deals, contacts.created_at, AS_OF)["first_purchase_at"]
    return predict_conversion(config, contacts, deals, TYPES, AS_OF, first)


def test_learns_a_real_signal_and_reports_its_quality() -> None:
    contacts, deals = world()
    result = run(PredictiveConfig(enabled=True, features=["signal", "noise", "segment"]), contacts, deals)
    assert result.status == "ok", result.reason
    assert result.auc is not None and result.auc > 0.8
    assert result.lift_top_decile is not None and result.lift_top_decile > 2
    assert result.probability is not None
    bought = ~np.isnan(deal_aggregates(deals, contacts.created_at, AS_OF)["first_purchase_at"])
    assert np.isnan(result.probability[bought]).all()  # customers get no conversion probability
    p = result.probability[~bought]
    assert ((p > 0) & (p < 1)).all()
    assert result.top_coefficients[0][0] == "signal"
    # Calibrated probabilities beat the constant base-rate forecast on the hold-out.
    base = result.base_rate or 0.0
    assert result.brier is not None and result.brier < base * (1 - base)


def test_the_calibration_curve_and_the_lift_chart_of_the_hold_out() -> None:
    contacts, deals = world()
    result = run(PredictiveConfig(enabled=True, features=["signal", "noise", "segment"]), contacts, deals)
    assert result.status == "ok", result.reason
    bins = result.calibration
    assert len(bins) == 10 and sum(n for _, _, n in bins) == result.holdout
    predicted, observed = np.array([b[0] for b in bins]), np.array([b[1] for b in bins])
    assert np.all(np.diff(predicted) > 0), "bins ordered by probability"
    # Calibrated: each bin's observed rate near its mean probability (binomial noise on ~hold-out/10 contacts).
    size = result.holdout / 10
    assert np.all(np.abs(observed - predicted) < 4 * np.sqrt(predicted * (1 - predicted) / size) + 0.02)
    gains = result.gains
    assert gains[0] == (0.0, 0.0) and gains[-1] == (1.0, 1.0) and len(gains) == 11
    shares = np.array([g[1] for g in gains])
    assert np.all(np.diff(shares) >= 0) and shares[1] > 0.1 * 2, "a real signal: the top tenth holds > 2x its share"
    assert result.lift_top_decile == pytest.approx(shares[1] / 0.1, rel=0.05)
    assert result.to_dict()["gains"] == result.gains


def test_same_input_same_scores() -> None:
    contacts, deals = world(seed=3)
    config = PredictiveConfig(enabled=True, features=["signal", "segment"], seed=5)
    a, b = run(config, contacts, deals), run(config, contacts, deals)
    assert a.probability is not None and b.probability is not None
    np.testing.assert_array_equal(a.probability, b.probability)
    assert a.auc == b.auc


def test_gradient_boosting_is_available() -> None:
    contacts, deals = world(seed=4)
    result = run(PredictiveConfig(enabled=True, model="gradient_boosting", features=["signal", "noise"]),
                 contacts, deals)
    assert result.status == "ok" and result.auc is not None and result.auc > 0.75


def test_refuses_a_model_no_better_than_chance() -> None:
    contacts, deals = world(informative=False)
    result = run(PredictiveConfig(enabled=True, features=["noise"], min_auc=0.65), contacts, deals)
    assert result.status == "refused" and result.probability is None
    assert result.reason is not None and "AUC" in result.reason and result.auc is not None


def test_dates_after_the_cut_off_are_unknown_in_training() -> None:
    """``converted_on`` is set exactly for the buyers; seen at the cut-off it is unknown for everyone, so it
    carries no information (with look-ahead it would give an AUC of 1)."""
    contacts, deals = world(informative=False)
    alone = run(PredictiveConfig(enabled=True, features=["converted_on"], min_auc=0.5), contacts, deals)
    assert alone.status == "refused" and alone.reason is not None and "no known values" in alone.reason
    mixed = run(PredictiveConfig(enabled=True, features=["converted_on", "noise"], min_auc=0.5), contacts, deals)
    assert mixed.features == ("noise",)
    assert mixed.auc is not None and mixed.auc < 0.6


@pytest.mark.parametrize(("config", "reason"), [
    (PredictiveConfig(enabled=True, features=["signal"], min_contacts=10_000), "at least 10000"),
    (PredictiveConfig(enabled=True, features=["signal"], min_positives=5_000), "at least 5000"),
    (PredictiveConfig(enabled=True, features=["nope"]), "unknown feature"),
    (PredictiveConfig(enabled=False), "enabled is false"),
])
def test_refusals_say_why(config: PredictiveConfig, reason: str) -> None:
    contacts, deals = world(n=1000)
    result = run(config, contacts, deals)
    assert result.probability is None
    assert result.reason is not None and reason in result.reason
    assert "probability" not in result.to_dict()


def test_outcome_properties_are_flagged() -> None:
    contacts, deals = world()
    contacts.properties["lifecyclestage"] = np.array(["lead"] * len(contacts), dtype=object)
    first = deal_aggregates(deals, contacts.created_at, AS_OF)["first_purchase_at"]
    result = predict_conversion(PredictiveConfig(enabled=True, features=["signal", "lifecyclestage"]), contacts,
                                deals, {**TYPES, "lifecyclestage": FieldType.STRING}, AS_OF, first)
    assert any("lifecyclestage" in w for w in result.warnings)


def test_degenerate_history_is_refused_not_raised() -> None:
    contacts, deals = world(n=1000)
    config = PredictiveConfig(enabled=True, features=["signal"], min_positives=1, min_contacts=10)
    first = deal_aggregates(deals, contacts.created_at, AS_OF)["first_purchase_at"]
    # One buyer only: the stratified split leaves the training set with one class.
    one = np.where(np.arange(len(first)) == np.flatnonzero(~np.isnan(first))[0], first, np.nan)
    result = predict_conversion(config, contacts, deals, TYPES, AS_OF, one)
    assert result.status == "refused" and result.probability is None
    contacts.properties["empty"] = np.full(len(contacts), None, dtype=object)
    result = predict_conversion(PredictiveConfig(enabled=True, features=["empty"]), contacts, deals,
                                {**TYPES, "empty": FieldType.STRING}, AS_OF, first)
    assert result.status == "refused" and result.reason is not None and "no known values" in result.reason
