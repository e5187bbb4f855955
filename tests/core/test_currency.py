"""Deal amounts in one currency (issue 19): three 5,000,000-JPY deals count at their exchange rate and move
nobody else's values; a deal in a currency without any rate is reported by record id and left out; the
``[currency]`` configuration refuses what cannot be a rate table."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from connectors.sandbox.generator import DEAL_PROPERTY_TYPES, PROPERTY_TYPES, generate
from core.config import ClmConfig, CurrencyConfig, DataConfig, ScoringConfig, parse_config
from core.defaults import example_action_rules, example_scoring_rules
from core.engine import OUTPUT_NAMES, EnrichResult, enrich
from core.errors import ConfigError
from core.models import Contact, Deal, DealStatus

JPY_IN_USD = 0.0067
CONFIG = ClmConfig(
    data=DataConfig(contact_properties=dict(PROPERTY_TYPES), deal_properties=dict(DEAL_PROPERTY_TYPES)),
    scoring=ScoringConfig(rules=example_scoring_rules()),
    actions=example_action_rules(),
    currency=CurrencyConfig(base="USD", rates={"JPY": JPY_IN_USD}),
)
DATA = generate(300, seed=19)
AS_OF = DATA.as_of
CONTACTS = DATA.contact_records()
DEALS = DATA.deal_records()


def _won_of_distinct_contacts(count: int) -> list[int]:
    rows: list[int] = []
    owners: set[str] = set()
    for i, deal in enumerate(DEALS):
        if deal.status is DealStatus.WON and deal.closed_at is not None and deal.contact_ids \
                and deal.contact_ids[0] not in owners:
            rows.append(i)
            owners.add(deal.contact_ids[0])
        if len(rows) == count:
            return rows
    raise AssertionError("the generated data has too few customers")


JPY_ROWS = _won_of_distinct_contacts(3)


def run(deals: Sequence[Deal], config: ClmConfig = CONFIG, contacts: Sequence[Contact] = CONTACTS) -> EnrichResult:
    return enrich(list(contacts), list(deals), config, AS_OF)


def replaced(rows: Sequence[int], **changes: object) -> list[Deal]:
    return [d.model_copy(update=changes) if i in rows else d for i, d in enumerate(DEALS)]


def assert_same(a: EnrichResult, b: EnrichResult) -> None:
    assert a.ids.tolist() == b.ids.tolist()
    for name in OUTPUT_NAMES:
        if a.columns[name].dtype == object:
            assert a.columns[name].tolist() == b.columns[name].tolist(), name
        else:
            np.testing.assert_array_equal(a.columns[name], b.columns[name], err_msg=name)


def test_three_5m_jpy_deals_count_at_their_rate_and_move_nobody_else() -> None:
    in_yen = run(replaced(JPY_ROWS, amount=5_000_000.0, currency="JPY"))
    in_dollars = run(replaced(JPY_ROWS, amount=5_000_000.0 * JPY_IN_USD, currency="USD"))
    assert_same(in_yen, in_dollars)
    buyers = {DEALS[i].contact_ids[0] for i in JPY_ROWS}
    index = {c: i for i, c in enumerate(in_yen.ids.tolist())}
    for buyer in buyers:
        # 33,500 USD each, not 5,000,000 (the margin is 1): the yen deal is one of the buyer's won deals.
        assert 33_500.0 <= in_yen.columns["historical_value"][index[buyer]] < 5_000_000.0
    assert "deal.currency" not in in_yen.quality.fields


def test_a_deal_in_a_currency_without_a_rate_is_reported_by_id_and_left_out() -> None:
    row = JPY_ROWS[0]
    hostile = run(replaced([row], amount=5_000_000.0, currency="XAU"))
    findings = hostile.quality.fields["deal.currency"]
    assert findings.unconverted == 1 and findings.examples == [DEALS[row].id]
    line = next(note for note in hostile.diagnostics.data if note.startswith("deal.currency:"))
    assert DEALS[row].id in line and "XAU" in line and "currency.rates.XAU" in line
    assert_same(hostile, run([d for i, d in enumerate(DEALS) if i != row]))


def test_without_a_configured_base_a_minority_currency_is_never_added_raw() -> None:
    config = CONFIG.model_copy(update={"currency": CurrencyConfig()})
    hostile = run(replaced(JPY_ROWS, amount=5_000_000.0, currency="JPY"), config)
    assert hostile.quality.fields["deal.currency"].unconverted == len(JPY_ROWS)
    assert any("set currency.base" in note for note in hostile.diagnostics.data)
    assert_same(hostile, run([d for i, d in enumerate(DEALS) if i not in JPY_ROWS], config))


def test_a_deal_without_a_currency_code_is_in_the_base_currency() -> None:
    assert_same(run(replaced(JPY_ROWS, currency=None)), run(replaced(JPY_ROWS, currency="USD")))


@pytest.mark.parametrize(("currency", "fragment"), [
    ({"rates": {"JPY": 0.0067}}, "need currency.base"),
    ({"base": "usd"}, "ISO 4217"),
    ({"base": "USD", "rates": {"yen": 0.0067}}, "ISO 4217"),
    ({"base": "USD", "rates": {"JPY": 0}}, "above 0"),
    ({"base": "USD", "rates": {"JPY": float("nan")}}, "finite"),
    ({"base": "USD", "rates": {"USD": 2.0}}, "must be 1"),
])
def test_a_rate_table_that_cannot_be_right_is_refused(currency: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"currency": currency})
    assert any(fragment in p.message and p.path.startswith("currency") for p in info.value.problems), \
        info.value.problems
