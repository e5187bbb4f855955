"""The CDNOW loader: every customer and every transaction of the published sample, as contacts and won deals."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from connectors.sandbox.cdnow import CDNOW_DEAL_PROPERTY_TYPES, default_cdnow_path, load_cdnow, load_cdnow_columns
from core.columns import StatusCode, from_records
from core.errors import UsageError
from core.models import DealStatus


@pytest.fixture(scope="module")
def cdnow_path() -> Path:
    path = default_cdnow_path()
    if path is None:
        pytest.skip("CDNOW_sample.txt not found in ../shared/data next to the repository (shared test data)")
    return path


def file_rows(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def test_every_customer_and_transaction_is_loaded(cdnow_path: Path) -> None:
    contacts, deals = load_cdnow(cdnow_path)
    rows = file_rows(cdnow_path)
    assert len(contacts) == 2_357
    assert len(deals) == 6_919 == len(rows)
    assert sum(Decimal(str(d.amount)) for d in deals) == sum(Decimal(r[4]) for r in rows)
    assert len({c.id for c in contacts}) == len(contacts)
    assert len({d.id for d in deals}) == len(deals)
    assert all(d.status is DealStatus.WON and d.amount is not None and d.amount >= 0 for d in deals)


def test_contacts_and_deals_carry_the_file_values(cdnow_path: Path) -> None:
    contacts, deals = load_cdnow(cdnow_path)
    by_id = {c.id: c for c in contacts}
    assert by_id["cdnow-1"].email == "cdnow-1@example.com"
    first = deals[0]
    assert first.contact_ids == ("cdnow-1",)
    assert first.closed_at == first.created_at == datetime(1997, 1, 1, tzinfo=UTC)
    assert first.amount == pytest.approx(29.33)
    assert first.properties["quantity"] == 2
    for deal in deals:
        contact = by_id[deal.contact_ids[0]]
        assert deal.closed_at is not None and deal.closed_at >= contact.created_at
        assert (deal.closed_at.hour, deal.closed_at.minute, deal.closed_at.tzinfo) == (0, 0, UTC)
    # Each contact is created on its first purchase day.
    first_day: dict[str, datetime] = {}
    for deal in deals:
        assert deal.closed_at is not None
        cid = deal.contact_ids[0]
        first_day[cid] = min(first_day.get(cid, deal.closed_at), deal.closed_at)
    assert all(c.created_at == first_day[c.id] for c in contacts)


def test_same_day_purchases_stay_separate_deals(cdnow_path: Path) -> None:
    rows = file_rows(cdnow_path)
    per_day = Counter((r[1], r[2]) for r in rows)
    assert max(per_day.values()) > 1, "the sample has same-day purchases"
    _, deals = load_cdnow(cdnow_path)
    loaded = Counter((d.contact_ids[0], d.closed_at) for d in deals)
    assert sorted(loaded.values()) == sorted(per_day.values())


def test_columns_equal_the_record_path(cdnow_path: Path) -> None:
    contacts, deals = load_cdnow_columns(cdnow_path)
    want_contacts, want_deals = from_records(*load_cdnow(cdnow_path), {}, CDNOW_DEAL_PROPERTY_TYPES)
    np.testing.assert_array_equal(contacts.ids, want_contacts.ids)
    np.testing.assert_array_equal(contacts.created_at, want_contacts.created_at)
    assert contacts.properties == want_contacts.properties == {}
    for name in ("ids", "contact_index", "amount", "status", "created_at", "closed_at"):
        np.testing.assert_array_equal(getattr(deals, name), getattr(want_deals, name), err_msg=name)
    np.testing.assert_array_equal(deals.properties["quantity"], want_deals.properties["quantity"])
    assert (deals.status == StatusCode.WON).all()
    assert deals.amount.sum() == pytest.approx(244_091.94, abs=0.005)


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        load_cdnow(tmp_path / "CDNOW_sample.txt")


def test_a_malformed_line_is_reported_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "CDNOW_sample.txt"
    path.write_text(" 00004 0001 19970101  2   29.33\n 00004 0001 1997-01-18  2   29.73\n")
    with pytest.raises(UsageError, match="line 2"):
        load_cdnow(path)
    path.write_text(" 00004 0001 19970101  2\n")
    with pytest.raises(UsageError, match="expected 5 fields"):
        load_cdnow_columns(path)


def test_a_small_file_loads_without_the_shared_data(tmp_path: Path) -> None:
    path = tmp_path / "sample.txt"
    path.write_text(" 00009 0002 19970105  1   10.00\n 00004 0001 19970101  2   29.33\n"
                    " 00009 0002 19970105  3   30.50\n")
    contacts, deals = load_cdnow(path)
    assert [c.id for c in contacts] == ["cdnow-1", "cdnow-2"]
    assert [d.id for d in deals] == ["cdnow-2-1", "cdnow-1-1", "cdnow-2-2"]
    columns, deal_columns = load_cdnow_columns(path)
    assert deal_columns.contact_index.tolist() == [1, 0, 1]
    assert columns.created_at.tolist() == [datetime(1997, 1, 1, tzinfo=UTC).timestamp(),
                                           datetime(1997, 1, 5, tzinfo=UTC).timestamp()]
