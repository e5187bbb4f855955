"""The emulator's search index stays correct and cheap under a sync's interleaved writes and searches: a settle
of a few changes is not a re-sort of the portal (at 1M records that would be what a benchmark measures)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

import connectors.sandbox.hubspot.store as store_module
from connectors.sandbox.hubspot.store import Record, Store, Table


def expected(table: Table) -> list[tuple[int, int]]:
    view = table.search
    # Records merged away within the lag are still searchable as they were (pending snapshots).
    shown = (view.view(table, i) for i in set(table.records) | set(view.pending))
    return sorted((r.updated, r.id) for r in shown if r is not None and r.archived_at is None)


def indexed(table: Table) -> list[tuple[int, int]]:
    return list(zip(table.search.mods.tolist(), table.search.ids.tolist(), strict=True))


@pytest.mark.parametrize("lag_ms", [0, 40])
def test_the_index_matches_a_fresh_sort_through_random_edits_archives_and_merges(lag_ms: int) -> None:
    now = [1_000.0]
    store = Store(clock=lambda: now[0], search_lag_ms=lag_ms)
    table = store.tables["contacts"]
    records: list[Record] = [store.create("contacts", {"email": f"p{i}@example.com"}) for i in range(1500)]
    rng = random.Random(lag_ms)
    for step in range(2500):
        now[0] += rng.random() * 0.005
        record = rng.choice(records)
        draw = rng.random()
        if record.id not in table.records:
            continue  # merged away: the API resolves its id to the new record
        if record.archived_at is not None:
            store.restore("contacts", record)
        elif draw < 0.8:
            store.update("contacts", record, {"firstname": f"n{step}"})
        elif draw < 0.9:
            store.archive("contacts", record)
        else:
            other = rng.choice(records)
            if other is not record and other.archived_at is None and other.id in table.records:
                records.append(store.merge("contacts", record, other))
        if step % 5 == 0:
            table.search.settle(table, store.now_ms())
            assert indexed(table) == expected(table), f"step {step}"


def test_a_settle_of_a_few_changes_does_not_resort_the_index(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_000.0]
    store = Store(clock=lambda: now[0], search_lag_ms=0)
    table = store.tables["contacts"]
    records = [store.create("contacts", {"email": f"p{i}@example.com"}) for i in range(5000)]
    table.search.settle(table, store.now_ms())
    sorts = [0]
    real = np.lexsort

    def counting(*args: Any, **kwargs: Any) -> Any:
        sorts[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(store_module.np, "lexsort", counting)
    for step in range(200):  # a write of 100 records, a search page, and so on
        now[0] += 0.01
        for record in records[step * 25:step * 25 + 25]:
            store.update("contacts", record, {"jobtitle": "Written"})
        table.search.settle(table, store.now_ms())
    assert sorts[0] == 0
    assert indexed(table) == expected(table)
