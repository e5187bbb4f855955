"""The guarded 2F1 against 50-digit values where scipy's own hyp2f1 returns inf/NaN or loses digits."""

from __future__ import annotations

import pytest
from scipy.special import hyp2f1

from core.clv._special import hyp2f1_real

# (a, b, c, z, 2F1 by mpmath at 50 digits); c - a - b is an integer or within 1e-12 of one, z > 0.9.
CASES = [
    (1.0, 39.0, 119.0, 0.941, 1.45091649406075),
    (1.0, 39.0, 119.0, 0.9999, 1.493596206411101),
    (0.3, 2.5, 3.800000000001, 0.9999, 1.5728888158151277),
    (0.2, 0.5, 1.7, 0.9999, 1.1165633527129175),
    (2.5, 1.3, 4.8, 0.9999, 4.589479691524711),
    (0.9, 0.1, 1.0, 0.9999, 1.8919841907461512),
]


@pytest.mark.parametrize(("a", "b", "c", "z", "expected"), CASES)
def test_integer_c_minus_a_minus_b_near_one(a: float, b: float, c: float, z: float, expected: float) -> None:
    assert float(hyp2f1_real(a, b, c, z)) == pytest.approx(expected, rel=1e-9)


def test_scipy_alone_fails_on_these_cases() -> None:
    # Documents why the guard exists; if scipy is fixed this fails and the guard can go.
    assert any(float(hyp2f1(a, b, c, z)) != pytest.approx(v, rel=1e-9) for a, b, c, z, v in CASES)
