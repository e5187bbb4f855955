"""Growth checks for the emulators' seeding: linear, not quadratic, measured as a ratio so that a loaded CI machine
(which slows both sizes alike) does not fail them, as a fixed bound in seconds did."""

from __future__ import annotations

import time
from collections.abc import Callable


def seconds(work: Callable[[], object], repeat: int = 1) -> float:
    """The fastest of ``repeat`` timings of ``work`` (each call gets fresh state from ``work`` itself)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def assert_linear(small: Callable[[], object], large_seconds: float, factor: int) -> None:
    """Work ``factor`` times that of ``small`` took ``large_seconds``: it must be well under ``factor**2 / 3``
    times as long (a quadratic path takes ``factor**2``; a linear one ``factor``, give or take the machine's
    noise)."""
    little = seconds(small, repeat=2)
    ratio = large_seconds / little
    assert ratio < factor * factor / 3, f"{factor}x the records took {ratio:.0f}x as long ({large_seconds:.2f} s " \
                                        f"vs {little:.3f} s): not linear"
