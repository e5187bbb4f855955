"""Model selection by holdout: the CDNOW comparison of BG/NBD, MBG/NBD and Pareto/NBD over weeks 40-78."""

from __future__ import annotations

import numpy as np
import pytest

from core.clv import TransactionSummary
from core.clv.selection import HoldoutReport, compare_by_holdout, fit_purchase_model, score_holdout
from tests.core.clv.data import CALIBRATION_END, HOLDOUT_END, Transactions, epoch


@pytest.fixture(scope="module")
def cdnow_holdout(cdnow_transactions: Transactions) -> HoldoutReport:
    tx = cdnow_transactions
    return compare_by_holdout(
        tx.customer, tx.time, tx.amount, tx.n_customers, epoch(CALIBRATION_END), epoch(HOLDOUT_END), unit="weeks"
    )


def test_cdnow_holdout_comparison(cdnow_holdout: HoldoutReport) -> None:
    """Weeks 1-39 calibrate, weeks 40-78 are predicted. Actual: 1,882 repeat transactions (one per customer and
    day, the calibration summary's definition). BG/NBD and Pareto/NBD under-forecast it by about 12% and agree
    with each other within 1%, as Fader, Hardie & Lee (2005) report the two models' forecasts to be very close;
    MBG/NBD, which lets one-time buyers die, forecasts fewer still."""
    report = cdnow_holdout
    print("\n" + report.table())
    assert report.n_customers == 2357
    assert report.holdout_length == 39.0
    assert report.actual_total == 1882
    bg, mbg, pareto = (report.score(m) for m in ("bgnbd", "mbgnbd", "pareto_nbd"))
    assert bg.fit is not None and pareto.fit is not None and mbg.fit is not None
    # The calibration fits are the published ones (see test_bgnbd / test_paretonbd).
    assert bg.fit.parameters["r"] == pytest.approx(0.243, abs=0.001)
    assert pareto.fit.parameters["beta"] == pytest.approx(11.669, abs=0.001)
    assert bg.fit.log_likelihood == pytest.approx(-9582.4, abs=0.1)
    assert pareto.fit.log_likelihood == pytest.approx(-9595.0, abs=0.1)
    for score in (bg, pareto):
        assert score.predicted_total == pytest.approx(report.actual_total, rel=0.15)
    assert pareto.predicted_total == pytest.approx(bg.predicted_total, rel=0.01)
    assert mbg.predicted_total < bg.predicted_total
    for score in (bg, mbg, pareto):
        assert 0 < score.mae < 1.0 and score.rmse < 1.7
        assert score.total_error == pytest.approx(score.predicted_total - report.actual_total)
    assert report.chosen == min((bg, mbg, pareto), key=lambda s: s.mae).model == "pareto_nbd"


def test_conditional_expectations_by_calibration_frequency(cdnow_holdout: HoldoutReport) -> None:
    rows = {row.label: row for row in cdnow_holdout.by_frequency}
    assert list(rows) == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert sum(row.customers for row in rows.values()) == 2357
    assert rows["0"].customers == 1411  # CDNOW: 1,411 of the 2,357 made no repeat purchase in weeks 1-39
    actual = [row.actual for row in rows.values()]
    assert actual[0] == pytest.approx(0.237, abs=0.001) and actual[-1] > 6
    # Every model's predicted mean grows with the calibration frequency, like the actual means.
    for model in ("bgnbd", "mbgnbd", "pareto_nbd"):
        predicted = [row.predicted[model] for row in rows.values()]
        assert np.all(np.diff(predicted) > 0), model
        # ... and stays within 45% of the actual mean in every row; the worst is Pareto/NBD on the customers
        # without repeats (0.14 for 0.24), as in the BTYD walkthrough's conditional-expectation plot.
        np.testing.assert_allclose(predicted, actual, rtol=0.45)


def test_the_criterion_picks_the_smallest_error(
    cdnow_calibration: TransactionSummary, cdnow_transactions: Transactions
) -> None:
    tx = cdnow_transactions
    later_count = np.bincount(tx.customer[tx.time > epoch(CALIBRATION_END)], minlength=tx.n_customers)
    for criterion in ("mae", "rmse", "total"):
        report = score_holdout(cdnow_calibration, later_count, 39.0, models=("mbgnbd", "bgnbd"), criterion=criterion)
        best = min(report.scores, key=lambda s: s.criterion_value(criterion))
        assert report.chosen == best.model


def test_a_model_that_cannot_be_fitted_is_reported_and_not_chosen() -> None:
    # Identical customers: no heterogeneity, so every model's parameters run off to infinity.
    summary = TransactionSummary.from_arrays([2] * 50, [10.0] * 50, [20.0] * 50, [5.0] * 50)
    report = score_holdout(summary, np.ones(50), 10.0, models=("bgnbd", "pareto_nbd"))
    assert report.chosen is None
    assert all(s.fit is None and s.error and np.isnan(s.mae) for s in report.scores)
    assert "BG/NBD      not fitted: BG/NBD fit did not converge" in report.table()


def test_bad_arguments_are_refused(cdnow_calibration: TransactionSummary) -> None:
    with pytest.raises(ValueError, match="criterion"):
        score_holdout(cdnow_calibration, np.zeros(2357), 39.0, criterion="aic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown purchase model"):
        fit_purchase_model("bgbb", [1], [1.0], [2.0])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="holdout_end must be after"):
        compare_by_holdout([0], [0.0], [1.0], 1, 100.0, 100.0)


def test_cdnow_tracking_curve_counts_every_repeat_transaction_and_each_model_tracks_it(
        cdnow_holdout: HoldoutReport, cdnow_calibration: TransactionSummary) -> None:
    """The tracking plot of Fader, Hardie & Lee (2005, figure 3): cumulative repeat transactions of the 2,357
    customers, weekly from 1997-01-01 to 1998-06-30. The actual curve reaches the calibration summary's total at
    the calibration end and that plus the holdout's 1,882 at the end; each fitted model follows the calibration
    period closely (in sample) and under-forecasts the holdout, as its conditional total does."""
    curve = cdnow_holdout.tracking
    assert curve is not None and curve.unit == "weeks"
    assert curve.t[0] == 0.0 and curve.t[-1] * 7 == 545  # 1997-01-01 .. 1998-06-30
    at_calibration_end = curve.t.index(curve.calibration_end)
    assert curve.actual[at_calibration_end] == cdnow_calibration.frequency.sum() == 2457
    assert curve.actual[-1] == 2457 + cdnow_holdout.actual_total == 4339
    assert np.all(np.diff(curve.actual) >= 0)
    assert set(curve.predicted) == {"bgnbd", "mbgnbd", "pareto_nbd"}
    for model, values in curve.predicted.items():
        assert values[0] == 0.0 and np.all(np.diff(values) >= -1e-9), model
        assert values[at_calibration_end] == pytest.approx(2457, rel=0.03), model
        assert 0.9 * 4339 < values[-1] < 4339, model
    assert curve.to_dict()["predicted"]["bgnbd"][-1] == curve.predicted["bgnbd"][-1]


def test_the_tracking_curve_does_not_depend_on_the_order_of_the_purchases(
        cdnow_transactions: Transactions, cdnow_holdout: HoldoutReport) -> None:
    from core.clv.selection import tracking_curve

    tx = cdnow_transactions
    fits = {s.model: s.fit for s in cdnow_holdout.scores if s.fit is not None}
    order = np.random.default_rng(3).permutation(len(tx.time))
    shuffled = tracking_curve(tx.customer[order], tx.time[order], epoch(CALIBRATION_END), epoch(HOLDOUT_END), fits)
    assert shuffled == cdnow_holdout.tracking


def test_cdnow_frequency_histogram_of_the_calibration_fit(cdnow_calibration: TransactionSummary) -> None:
    """Fader, Hardie & Lee (2005, figure 2): customers by repeat transactions in the 39 calibration weeks,
    actual (1,411 with none ... 64 with seven or more) against the sum of each customer's P(X(T) = x) under the
    fitted BG/NBD, MBG/NBD and Pareto/NBD."""
    from core.clv.selection import frequency_histogram

    s = cdnow_calibration
    for model in ("bgnbd", "mbgnbd", "pareto_nbd"):
        fit = fit_purchase_model(model, s.frequency, s.recency, s.T)
        histogram = frequency_histogram(fit.params, s.frequency, s.T)
        assert histogram is not None
        assert histogram.labels == ("0", "1", "2", "3", "4", "5", "6", "7+")
        assert histogram.actual == (1411, 439, 214, 100, 62, 38, 29, 64)
        assert sum(histogram.expected) == pytest.approx(2357, abs=1e-6) and min(histogram.expected) > 0
        for actual, expected in zip(histogram.actual, histogram.expected, strict=True):
            # A good in-sample fit: within 3 standard deviations of a Poisson count, bucket by bucket.
            assert abs(expected - actual) < 3 * np.sqrt(actual), (model, actual, expected)


@pytest.mark.parametrize("model", ["bgnbd", "mbgnbd"])
def test_p_purchases_is_a_distribution_whose_mean_is_the_expected_purchases(model: str) -> None:
    from core.clv.bgnbd import BgNbdParams
    from core.clv.mbgnbd import MbgNbdParams

    params: BgNbdParams | MbgNbdParams = (
        BgNbdParams(0.243, 4.414, 0.793, 2.426) if model == "bgnbd" else MbgNbdParams(0.525, 6.183, 0.891, 1.614))
    k = np.arange(5000, dtype=np.float64)
    for t in (0.0, 0.5, 10.0, 78.0, 520.0):
        p = params.p_purchases(k, t)
        assert np.all(p >= 0) and p.sum() == pytest.approx(1.0, abs=1e-12)
        assert (k * p).sum() == pytest.approx(float(params.expected_purchases(t)), rel=1e-9, abs=1e-12)
