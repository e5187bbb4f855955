"""The real CDNOW purchases, given to the file connector as a deals CSV, reproduce the published BG/NBD fit."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.sandbox.cdnow import default_cdnow_path
from sync.runner import SyncOptions
from tests.connectors.files.conftest import files_config, read_csv, runner, write_csv


def cdnow_deals_csv(source: Path, target: Path) -> Path:
    """One row per transaction of ``CDNOW_sample.txt`` (master id, sample id, YYYYMMDD, CDs, dollars), as a CRM
    would export won deals: deal id, contact id, close date as the file writes it, amount, status."""
    rows, count = [], {}
    for line in source.read_text(encoding="ascii").splitlines():
        if not line.strip():
            continue
        _, sample_id, day, quantity, dollars = line.split()
        count[sample_id] = count.get(sample_id, 0) + 1
        rows.append((f"order-{sample_id}-{count[sample_id]}", f"cust-{int(sample_id)}", day, dollars, "Won", quantity))
    return write_csv(target, ["order_id", "customer", "order_date", "total", "state", "cds"], rows)


def test_cdnow_deals_csv_reproduces_the_published_bgnbd_estimates(tmp_path: Path) -> None:
    source = default_cdnow_path()
    if source is None:
        pytest.skip("../shared/data/CDNOW_sample.txt is absent (a user's clone): the published-values check needs it")
    deals = cdnow_deals_csv(source, tmp_path / "exports" / "orders.csv")
    config = files_config(tmp_path, {
        "deals": str(deals), "date_format": "%Y%m%d",
        "deal_columns": {"id": "order_id", "contact_ids": "customer", "amount": "total", "status": "state",
                         "created": "order_date", "closed": "order_date"},
    })
    # As of the end of the 39-week calibration period (Fader, Hardie & Lee 2005): 1997-01-01 to 1997-09-30.
    summary = runner(config).run(SyncOptions(as_of=datetime(1997, 9, 30, tzinfo=UTC)))
    assert summary.status == "ok", summary.message
    assert summary.pulled_contacts == 2_357 and summary.pulled_deals == 6_919
    # Nothing skipped; what is reported is that a transaction log has none of the contact properties the starter
    # configuration reads (so the scores computed from them are withheld, sync.preflight).
    assert not [p for p in summary.problems if "skipped" in p]
    assert all("the CRM has no" in p for p in summary.problems)
    fit = summary.diagnostics["clv"]["bgnbd"]
    for name, published in (("r", 0.243), ("alpha", 4.414), ("a", 0.793), ("b", 2.426)):
        assert fit[name] == pytest.approx(published, abs=1e-3), name
    assert fit["log_likelihood"] == pytest.approx(-9582.4, abs=0.1)
    # The enrichment landed in the output file, one row per customer keyed by the export's id.
    out = read_csv(tmp_path / "out" / "enrichment.csv")
    assert summary.written_records == len(out) == 2_357
    assert {row["id"] for row in out} == {f"cust-{i}" for i in range(1, 2_358)}
