"""Deal aggregates per contact, as of a time, and contact-derived values."""

from __future__ import annotations

import numpy as np

from core.aggregates import contact_derived, deal_aggregates, purchases_since
from tests.core.builders import AS_OF, DAY, contacts, days_ago, deals


def test_counts_amounts_and_purchase_times() -> None:
    people = contacts([500, 400, 300])
    book = deals([
        (0, "won", 100.0, 300, 250),
        (0, "won", None, 200, 100),  # unknown amount counts 0, still a purchase
        (0, "lost", 50.0, 90, 80),
        (0, "open", 70.0, 10, None),
        (1, "open", 10.0, 5, None),
        (-1, "won", 999.0, 5, 1),  # no contact: ignored
    ])
    agg = deal_aggregates(book, people.created_at, AS_OF)
    assert agg["won_deals"].tolist() == [2, 0, 0]
    assert agg["lost_deals"].tolist() == [1, 0, 0]
    assert agg["open_deals"].tolist() == [1, 1, 0]
    assert agg["total_won_amount"].tolist() == [100.0, 0.0, 0.0]
    assert agg["first_purchase_at"][0] == days_ago(250)
    assert agg["last_purchase_at"][0] == days_ago(100)
    assert np.isnan(agg["last_purchase_at"][1:]).all()
    assert agg["days_since_last_purchase"][0] == 100
    assert np.isnan(agg["days_since_last_purchase"][1])
    assert agg["days_since_created"].tolist() == [500, 400, 300]


def test_as_of_a_past_time_deals_are_seen_as_they_were() -> None:
    people = contacts([500])
    book = deals([(0, "won", 100.0, 300, 250), (0, "won", 100.0, 120, 100), (0, "lost", 1.0, 60, 50),
                  (0, "open", 1.0, 5, None)])
    agg = deal_aggregates(book, people.created_at, days_ago(110))
    # The second won deal existed but was not closed yet: open then. The lost and open ones did not exist.
    assert agg["won_deals"].tolist() == [1]
    assert agg["open_deals"].tolist() == [1]
    assert agg["lost_deals"].tolist() == [0]
    assert agg["days_since_last_purchase"].tolist() == [140]
    assert agg["days_since_created"].tolist() == [390]


def test_days_to_unsubscribe_from_the_opt_out_date() -> None:
    people = contacts([100, 100, 100, 100], unsubscribed_at=[days_ago(95), days_ago(10), None, days_ago(-5)])
    derived = contact_derived(people, AS_OF)["days_to_unsubscribe"]
    assert derived[:2].tolist() == [5, 90]
    assert np.isnan(derived[2]) and np.isnan(derived[3])  # not set; set in the future (unknown as of now)
    assert np.isnan(contact_derived(contacts([1]), AS_OF)["days_to_unsubscribe"]).all()


def test_purchases_since_a_time_per_contact() -> None:
    book = deals([(0, "won", 1.0, 50, 40), (0, "won", 1.0, 20, 10), (1, "won", 1.0, 50, 40), (1, "open", 1.0, 5, None)])
    since = np.array([days_ago(30), days_ago(30), np.nan])
    assert purchases_since(book, since, AS_OF).tolist()[:2] == [1, 0]
    assert np.isnan(purchases_since(book, since, AS_OF)[2])
    assert purchases_since(book, since, AS_OF - 20 * DAY).tolist()[:2] == [0, 0]
