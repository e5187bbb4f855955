"""Fixtures: the public CDNOW data, skipped with a reason when ../shared/data is absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from core.clv import TransactionSummary, summarize
from tests.core.clv.data import CALIBRATION_END, DATA, Transactions, epoch


def _require(name: str) -> Path:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"public test data not found: {path} (shared/data next to the repository)")
    return path


@pytest.fixture(scope="session")
def cdnow_summary() -> npt.NDArray[np.void]:
    """cdnow_customers_summary.csv: ID, frequency, recency, T (weeks)."""
    return np.genfromtxt(_require("cdnow_customers_summary.csv"), delimiter=",", names=True)


@pytest.fixture(scope="session")
def cdnow_spend() -> npt.NDArray[np.void]:
    """cdnow_customers_summary_with_transactions.csv: ID, x, t_x, T, zbar."""
    return np.genfromtxt(_require("cdnow_customers_summary_with_transactions.csv"), delimiter=",", names=True)


@pytest.fixture(scope="session")
def donations() -> npt.NDArray[np.void]:
    """donations.csv: frequency, recency, periods (6 yearly opportunities), weights (customers per row)."""
    return np.genfromtxt(_require("donations.csv"), delimiter=",", names=True)


@pytest.fixture(scope="session")
def cdnow_transactions() -> Transactions:
    """Every purchase in CDNOW_sample.txt (master id, sample id, date, CDs, dollars); sample ids are 1..2357."""
    raw = np.loadtxt(_require("CDNOW_sample.txt"), dtype=str)
    customer = raw[:, 1].astype(np.int64) - 1
    time = np.array([epoch(d) for d in raw[:, 2]])
    return Transactions(customer, time, raw[:, 4].astype(np.float64), int(customer.max()) + 1)


@pytest.fixture(scope="session")
def cdnow_calibration(cdnow_transactions: Transactions) -> TransactionSummary:
    """Our own weekly summary of the 39 calibration weeks, from the raw purchases."""
    tx = cdnow_transactions
    return summarize(tx.customer, tx.time, tx.amount, tx.n_customers, epoch(CALIBRATION_END), unit="weeks")
