"""Paths, published reference values and helpers for the CLV tests (fixtures live in conftest.py)."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"

# Published estimates: Fader, Hardie & Lee (2005) and Fader & Hardie (2013) on the CDNOW 1/10 sample.
CDNOW_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
CDNOW_BGNBD_LL = -9582.4
CDNOW_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "gamma": 15.44}
# Pareto/NBD on CDNOW, as reported next to BG/NBD by Fader, Hardie & Lee (2005), "Counting Your Customers
# the Easy Way" (and asserted by lifetimes' test_params_out_is_close_to_Hardie_paper).
CDNOW_PARETO_NBD = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
CDNOW_PARETO_NBD_LL = -9595.0
# MBG/NBD on CDNOW: BTYDplus (Platzer), the reference lifetimes' ModifiedBetaGeoFitter is tested against
# (lifetimes tests/test_estimation.py, test_params_out_is_close_to_BTYDplus). No paper value exists.
CDNOW_MBGNBD = {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614}
# BG/BB on the donation data: Fader, Hardie & Shang (2010), Marketing Science 29(6).
DONATIONS_BGBB = {"alpha": 1.204, "beta": 0.750, "gamma": 0.657, "delta": 2.783}
DONATIONS_BGBB_LL = -33225.6


def epoch(yyyymmdd: str) -> float:
    """Midnight UTC of a YYYYMMDD date, in epoch seconds."""
    return float(calendar.timegm((int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]), 0, 0, 0)))


# The paper's split of the CDNOW sample: 39 calibration weeks, then 39 holdout weeks.
CALIBRATION_END = "19970930"
HOLDOUT_END = "19980630"


@dataclass(frozen=True)
class Transactions:
    """Purchases as parallel arrays, the form :func:`core.clv.summarize` takes."""

    customer: npt.NDArray[np.int64]
    time: npt.NDArray[np.float64]
    amount: npt.NDArray[np.float64]
    n_customers: int


