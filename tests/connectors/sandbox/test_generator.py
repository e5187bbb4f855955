"""The CRM data generator: determinism, invariants, the record path against the columnar path, and the ground
truth it claims (BG/NBD repeat purchasing, a learnable conversion signal, the stage rules)."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import hyp2f1
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from connectors.sandbox.generator import (
    DEAL_PROPERTY_TYPES,
    OPEN_DEAL_STAGES,
    PROPERTY_TYPES,
    TRUE_STAGES,
    WEEK,
    GeneratedData,
    GeneratorParams,
    generate,
)
from core.columns import ContactColumns, DealColumns, StatusCode, from_records
from core.models import FieldType

AS_OF = datetime(2026, 1, 1, tzinfo=UTC)


def assert_contacts_equal(a: ContactColumns, b: ContactColumns) -> None:
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.created_at, b.created_at)
    assert list(a.properties) == list(b.properties)
    for name in a.properties:
        np.testing.assert_array_equal(a.properties[name], b.properties[name], err_msg=name)


def assert_deals_equal(a: DealColumns, b: DealColumns) -> None:
    for name in ("ids", "contact_index", "amount", "status", "created_at", "closed_at"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert list(a.properties) == list(b.properties)
    for name in a.properties:
        np.testing.assert_array_equal(a.properties[name], b.properties[name], err_msg=name)


def assert_same(a: GeneratedData, b: GeneratedData) -> None:
    assert_contacts_equal(a.contacts, b.contacts)
    assert_deals_equal(a.deals, b.deals)
    np.testing.assert_array_equal(a.deal_second_contact, b.deal_second_contact)
    for name, value in vars(a.truth).items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, getattr(b.truth, name), err_msg=name)
    assert a.truth.params == b.truth.params


@pytest.fixture(scope="module")
def medium() -> GeneratedData:
    return generate(20_000, seed=7)


# --- determinism and shapes -----------------------------------------------------------------------------


def test_same_seed_gives_identical_data() -> None:
    assert_same(generate(3_000, seed=5), generate(3_000, seed=5))


def test_different_seeds_give_different_data() -> None:
    a, b = generate(3_000, seed=5), generate(3_000, seed=6)
    assert not np.array_equal(a.contacts.created_at, b.contacts.created_at)
    assert len(a.deals) != len(b.deals) or not np.array_equal(a.deals.amount, b.deals.amount)


def test_columns_have_the_declared_properties_and_types(medium: GeneratedData) -> None:
    n = len(medium.contacts)
    assert list(medium.contacts.properties) == list(PROPERTY_TYPES)
    assert list(medium.deals.properties) == list(DEAL_PROPERTY_TYPES)
    for types, columns, size in ((PROPERTY_TYPES, medium.contacts.properties, n),
                                 (DEAL_PROPERTY_TYPES, medium.deals.properties, len(medium.deals))):
        for name, kind in types.items():
            column = columns[name]
            assert len(column) == size, name
            if kind in (FieldType.STRING, FieldType.ENUM):
                assert column.dtype == object, name
                assert all(v is None or isinstance(v, str) for v in column[:500]), name
            else:
                assert column.dtype == np.float64, name
    for name, value in vars(medium.truth).items():
        if isinstance(value, np.ndarray):
            assert len(value) == n, name
    assert len(medium.deal_second_contact) == len(medium.deals)
    assert set(medium.truth.true_stage.tolist()) <= set(TRUE_STAGES)


def test_volumes_look_like_a_b2b_crm(medium: GeneratedData) -> None:
    truth = medium.truth
    assert 0.2 < truth.converted.mean() < 0.45
    assert 2.0 < len(medium.deals) / len(medium.contacts) < 4.0
    won = medium.deals.status == StatusCode.WON
    assert 0.25 < won.mean() < 0.5  # B2B win rates
    assert 2.0 < truth.n_purchases[truth.converted].mean() < 4.0
    assert 1_000 < np.median(medium.deals.amount[won]) < 10_000
    stages = set(truth.true_stage.tolist())
    assert stages == set(TRUE_STAGES), "every stage should be populated at this size"


# --- invariants -----------------------------------------------------------------------------------------


def check_invariants(data: GeneratedData) -> None:
    contacts, deals, truth = data.contacts, data.deals, data.truth
    now = data.as_of.timestamp()
    n = len(contacts)
    props = contacts.properties

    # ids
    assert len(set(contacts.ids.tolist())) == n
    assert len(set(deals.ids.tolist())) == len(deals)
    assert all(isinstance(i, str) and i for i in contacts.ids.tolist())

    # contacts: created within the history, values known where they must be
    created = contacts.created_at
    assert not np.isnan(created).any()
    assert (created <= now).all() and (created >= now - 3.01 * 365.25 * 86400).all()
    assert (np.diff(created) >= 0).all(), "ids grow with creation time"
    for name in ("hs_email_open", "hs_email_click", "hs_analytics_num_page_views", "num_conversion_events",
                 "hs_email_optout", "hs_email_bounce"):
        column = props[name]
        assert not np.isnan(column).any(), name
        assert (column >= 0).all() and (column == np.round(column)).all(), name
    assert all(v is not None for v in props["hs_analytics_source"].tolist())
    assert all(v is not None for v in props["lifecyclestage"].tolist())
    assert all(v is not None for v in props["firstname"].tolist())

    # engagement consistency
    opens, clicks = props["hs_email_open"], props["hs_email_click"]
    assert (opens >= clicks).all()
    for date, count in (("hs_email_last_open_date", opens),
                        ("hs_analytics_last_visit_timestamp", props["hs_analytics_num_page_views"]),
                        ("recent_conversion_date", props["num_conversion_events"])):
        when = props[date]
        assert (np.isnan(when) == (count == 0)).all(), date
        seen = ~np.isnan(when)
        assert (when[seen] >= created[seen]).all() and (when[seen] <= now).all(), date
    optout = props["hs_email_optout"] == 1
    unsub = props["unsubscribed_at"]
    assert (np.isnan(unsub) == ~optout).all()
    assert (unsub[optout] >= created[optout]).all() and (unsub[optout] <= now).all()
    last_open = props["hs_email_last_open_date"]
    opened_then_left = optout & ~np.isnan(last_open)
    assert (last_open[opened_then_left] <= unsub[opened_then_left]).all(), "no opens after unsubscribing"

    # deals: within the buyer's life, up to as_of
    owner = deals.contact_index
    assert ((owner >= 0) & (owner < n)).all()
    assert not np.isnan(deals.created_at).any()
    assert (deals.created_at >= created[owner]).all()
    assert (deals.created_at <= now).all()
    closed = deals.status != StatusCode.OPEN
    assert (np.isnan(deals.closed_at) == ~closed).all()
    assert (deals.closed_at[closed] >= deals.created_at[closed]).all()
    assert (deals.closed_at[closed] <= now).all()
    assert (np.diff(deals.created_at) >= 0).all(), "deal ids grow with creation time"
    assert np.isfinite(deals.amount).all() and (deals.amount > 0).all()
    stage = deals.properties["dealstage"]
    assert (stage[deals.status == StatusCode.WON] == "closedwon").all()
    assert (stage[deals.status == StatusCode.LOST] == "closedlost").all()
    assert set(stage[~closed].tolist()) <= set(OPEN_DEAL_STAGES)
    for name in DEAL_PROPERTY_TYPES:
        if name.startswith("meddic_"):
            assert all(v is None for v in deals.properties[name][closed].tolist()), name

    # second contacts: a colleague at the buyer's company, known before the deal
    second = data.deal_second_contact
    has = second >= 0
    company = props["company"]
    assert (second[has] != owner[has]).all()
    assert (company[second[has]] == company[owner[has]]).all()
    assert (created[second[has]] <= deals.created_at[has]).all()

    # the ground truth agrees with the deals
    won = deals.status == StatusCode.WON
    np.testing.assert_array_equal(np.bincount(owner[won], minlength=n), truth.n_purchases)
    np.testing.assert_array_equal(np.bincount(owner[deals.status == StatusCode.OPEN], minlength=n), truth.open_deals)
    np.testing.assert_array_equal(np.bincount(owner[deals.status == StatusCode.LOST], minlength=n), truth.lost_deals)
    np.testing.assert_array_equal(truth.converted, truth.n_purchases > 0)
    first = np.full(n, np.inf)
    np.minimum.at(first, owner[won], deals.closed_at[won])
    last = np.full(n, -np.inf)
    np.maximum.at(last, owner[won], deals.closed_at[won])
    c = truth.converted
    np.testing.assert_array_equal(truth.first_purchase_at[c], first[c])
    np.testing.assert_array_equal(truth.last_purchase_at[c], last[c])
    for name in ("first_purchase_at", "last_purchase_at", "lam", "p_drop", "nu"):
        assert (np.isnan(getattr(truth, name)) == ~c).all(), name
    assert not (truth.alive_at_as_of & ~c).any()
    dropped = c & ~truth.alive_at_as_of
    assert (np.isnan(truth.dropped_at) == ~dropped).all()
    np.testing.assert_array_equal(truth.dropped_at[dropped], truth.last_purchase_at[dropped])
    assert (truth.open_deals[dropped] == 0).all(), "customers who dropped out do not negotiate"
    assert ((truth.propensity > 0) & (truth.propensity < 1)).all()

    # the stage rules of the module docstring
    overdue = np.zeros(n, dtype=bool)
    overdue[c] = (now - truth.last_purchase_at[c]) / WEEK > 2.0 / truth.lam[c]
    engaged = ((props["num_conversion_events"] >= 1) | (clicks >= 2)
               | (props["hs_analytics_num_page_views"] >= 15))
    expected = np.where(
        c,
        np.where(~truth.alive_at_as_of, "churned",
                 np.where(overdue, "at_risk", np.where(truth.n_purchases >= 2, "repeat_customer", "customer"))),
        np.where(truth.open_deals > 0, "opportunity", np.where(engaged, "lead", "subscriber")),
    )
    np.testing.assert_array_equal(truth.true_stage.astype(str), expected)


def test_invariants_hold_at_medium_size(medium: GeneratedData) -> None:
    check_invariants(medium)
    assert (medium.deal_second_contact >= 0).any()


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 80), seed=st.integers(0, 2**32 - 1),
       deals_per_customer=st.floats(1.5, 6.0), day=st.integers(0, 3000))
def test_invariants_hold_for_any_seed_and_size(n: int, seed: int, deals_per_customer: float, day: int) -> None:
    # Any as_of, including one with a fraction of a second.
    as_of = datetime.fromtimestamp(datetime(2020, 1, 1, 12, 30, 15, 250_000, tzinfo=UTC).timestamp() + day * 86400, UTC)
    check_invariants(generate(n, seed=seed, as_of=as_of, deals_per_customer=deals_per_customer))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="deals_per_customer"):
        generate(10, deals_per_customer=1.0)
    with pytest.raises(ValueError, match="timezone-aware"):
        generate(10, as_of=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="n_contacts"):
        generate(-1)


# --- records ------------------------------------------------------------------------------------------


def test_records_round_trip_to_the_same_columns() -> None:
    data = generate(600, seed=3)
    contacts, deals = data.contact_records(), data.deal_records()
    assert len(contacts) == len(data.contacts) and len(deals) == len(data.deals)
    back_contacts, back_deals = from_records(contacts, deals, PROPERTY_TYPES, DEAL_PROPERTY_TYPES)
    assert_contacts_equal(back_contacts, data.contacts)
    assert_deals_equal(back_deals, data.deals)


def test_records_look_like_crm_records() -> None:
    data = generate(600, seed=3)
    contacts, deals = data.contact_records(), data.deal_records()
    for contact in contacts:
        assert contact.email is not None
        assert contact.email.split("@")[1] in ("example.com", "example.org", "example.net")
        assert all(value is not None for value in contact.properties.values()), "unknown values are left out"
        assert contact.updated_at is not None and contact.created_at <= contact.updated_at <= data.as_of
        assert isinstance(contact.properties["hs_email_open"], int)
    assert len({c.email for c in contacts}) == len(contacts)
    by_id = {c.id: c for c in contacts}
    pairs = [d for d in deals if len(d.contact_ids) == 2]
    assert pairs, "some deals name a colleague"
    for deal in pairs:
        buyer, colleague = (by_id[i] for i in deal.contact_ids)
        assert buyer.properties["company"] == colleague.properties["company"]
    for deal in deals:
        assert deal.currency == "USD" and deal.pipeline == "default"
        assert deal.stage == deal.properties["dealstage"]
        assert len(deal.contact_ids) in (1, 2)


# --- the ground truth ---------------------------------------------------------------------------------


def expected_repeats(t: np.ndarray, r: float, alpha: float, a: float, b: float) -> np.ndarray:
    """E[X(t)] of the BG/NBD, Fader, Hardie & Lee (2005) eq. 9."""
    return np.asarray((a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r
                                               * hyp2f1(r, b, a + b - 1, t / (alpha + t))))


def test_repeat_purchases_follow_the_bgnbd_closed_form() -> None:
    """Observed mean repeat purchases and the share with none match E[X(T_i)] and P(X(T_i)=0) = (α/(α+T_i))^r
    averaged over the customers' own observation times T_i, within four standard errors."""
    data = generate(300_000, seed=11)
    truth = data.truth
    c = truth.converted
    T = (data.as_of.timestamp() - truth.first_purchase_at[c]) / WEEK
    x = truth.n_purchases[c] - 1
    p = truth.params
    n = int(c.sum())
    assert n > 50_000

    expected_mean = float(expected_repeats(T, p.r, p.alpha, p.a, p.b).mean())
    standard_error = float(x.std() / math.sqrt(n))
    assert abs(x.mean() - expected_mean) < 4 * standard_error, (x.mean(), expected_mean, standard_error)
    assert abs(x.mean() / expected_mean - 1) < 0.04

    expected_zero = float(((p.alpha / (p.alpha + T)) ** p.r).mean())
    zero_error = math.sqrt(expected_zero * (1 - expected_zero) / n)
    assert abs((x == 0).mean() - expected_zero) < 4 * zero_error, ((x == 0).mean(), expected_zero)

    # The per-customer draws are the model's: lambda ~ Gamma(r, alpha), p ~ Beta(a, b).
    assert truth.lam[c].mean() == pytest.approx(p.r / p.alpha, rel=0.03)
    assert truth.p_drop[c].mean() == pytest.approx(p.a / (p.a + p.b), rel=0.02)


def test_spend_follows_the_gamma_gamma_model() -> None:
    data = generate(100_000, seed=12)
    truth, deals = data.truth, data.deals
    p = truth.params
    won = deals.status == StatusCode.WON
    # E[z] = p * gamma / (q - 1) over customers; amounts are rounded to cents.
    assert deals.amount[won].mean() == pytest.approx(p.p * p.gamma / (p.q - 1), rel=0.05)
    c = truth.converted
    assert (1.0 / truth.nu[c]).mean() == pytest.approx(p.gamma / (p.q - 1), rel=0.05)


@pytest.mark.parametrize("deals_per_customer", [2.0, 3.0, 5.0])
def test_deals_per_customer_sets_the_mean_purchases(deals_per_customer: float) -> None:
    truth = generate(60_000, seed=13, deals_per_customer=deals_per_customer).truth
    assert truth.n_purchases[truth.converted].mean() == pytest.approx(deals_per_customer, rel=0.06)
    assert truth.params.r == GeneratorParams().r and truth.params.a == GeneratorParams().a


def observable_features(data: GeneratedData) -> np.ndarray:
    """What a CRM shows: fit fields one-hot (unknown as its own level), company size, engagement, tenure."""
    props = data.contacts.properties
    columns = []
    for name in ("jobtitle", "industry", "country", "hs_analytics_source"):
        values = np.array(["?" if v is None else v for v in props[name].tolist()])
        columns += [(values == level).astype(float) for level in np.unique(values)[1:]]
    employees = props["numemployees"]
    columns += [np.log10(np.nan_to_num(employees, nan=50.0)), np.isnan(employees).astype(float)]
    for name in ("hs_email_open", "hs_email_click", "hs_analytics_num_page_views", "num_conversion_events",
                 "hs_email_bounce", "hs_email_optout"):
        columns.append(np.log1p(props[name]))
    years = (data.as_of.timestamp() - data.contacts.created_at) / (365.25 * 86400)
    columns.append(np.log(years + 0.01))
    return np.column_stack(columns)


def test_conversion_is_learnable_from_observable_fields(medium: GeneratedData) -> None:
    X = observable_features(medium)
    y = medium.truth.converted
    train = np.random.default_rng(0).random(len(y)) < 0.7
    model = LogisticRegression(max_iter=3000).fit(X[train], y[train])
    auc = roc_auc_score(y[~train], model.predict_proba(X[~train])[:, 1])
    assert auc >= 0.75, auc
    assert auc < 0.95, f"the signal should not be trivial, AUC {auc:.3f}"


def test_stage_mix_is_plausible(medium: GeneratedData) -> None:
    stages = medium.truth.true_stage
    share = {s: float((stages == s).mean()) for s in TRUE_STAGES}
    assert share["subscriber"] > 0.1 and share["lead"] > 0.1
    assert 0.01 < share["opportunity"] < 0.1
    assert share["churned"] > 0.02 and share["repeat_customer"] > 0.02


# --- scale ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_one_million_contacts_generate_in_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    start = time.perf_counter()
    data = generate(1_000_000, seed=0)
    elapsed = time.perf_counter() - start
    with capsys.disabled():
        print(f"\ngenerate(1_000_000): {elapsed:.1f} s, {len(data.deals):,} deals")
    assert len(data.contacts) == 1_000_000
    assert 2_500_000 < len(data.deals) < 3_500_000
