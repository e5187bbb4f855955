"""The shared transport policy: pacing, retries, daily limits, header corrections."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from connectors.transport import THROTTLED_PATIENCE, Budget, Limits, RateLimiter, Transient, Transport
from core.errors import DailyLimitReached


class FakeClock:
    """A clock whose sleep advances time, so pacing is tested exactly and instantly."""

    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def limiter(clock: FakeClock, **kw: object) -> RateLimiter:
    limits = Limits(window_requests=10, window_seconds=1.0, **kw)  # type: ignore[arg-type]
    return RateLimiter(limits, safety=0.0, clock=clock.time, sleep=clock.sleep,
                       daily_resets_at=lambda: datetime(2030, 1, 2, tzinfo=UTC))


def test_limiter_never_exceeds_the_window_and_uses_it_fully() -> None:
    clock = FakeClock()
    rl = limiter(clock)
    stamps = []
    for _ in range(55):
        rl.acquire()
        stamps.append(clock.now)
    for i in range(len(stamps) - 10):
        assert stamps[i + 10] - stamps[i] >= 1.0 - 1e-9, "11 requests inside one window"
    # 55 requests at 10/s need 4.5 windows of waiting, not more: the limiter sets the pace, not slack.
    assert clock.now == pytest.approx(5.0)


def test_daily_budget_stops_cleanly_keeping_the_reserve() -> None:
    clock = FakeClock()
    rl = limiter(clock, daily_requests=25, daily_reserve=5)
    for _ in range(20):
        rl.acquire()
    with pytest.raises(DailyLimitReached) as info:
        rl.acquire()
    assert info.value.resets_at == datetime(2030, 1, 2, tzinfo=UTC)
    assert "2030-01-02" in (info.value.hint or "")


def test_headers_correct_the_local_view() -> None:
    clock = FakeClock()
    rl = limiter(clock)
    rl.acquire()
    # Another integration used 8 of the 10: only 1 more fits before the window rolls.
    rl.observe(Budget(window_remaining=1, window_max=10))
    rl.acquire()
    t = clock.now
    rl.acquire()
    assert clock.now > t, "the limiter waited because the CRM said the window was full"
    rl.observe(Budget(window_max=500))
    assert rl._max == 10, "a larger advertised limit never raises the configured ceiling"
    rl.observe(Budget(daily_remaining=0))
    with pytest.raises(DailyLimitReached):
        rl.acquire()


def test_transient_failures_are_retried_honouring_retry_after() -> None:
    clock = FakeClock()
    transport = Transport(limiter(clock), attempts=4, sleep=clock.sleep)
    outcomes: list[Exception | str] = [Transient("429", retry_after=2.0, throttled=True), Transient("503"), "ok"]

    def request() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert transport.call(request) == "ok"
    assert transport.stats.calls == 3 and transport.stats.retries == 2 and transport.stats.throttled == 1
    assert clock.now >= 2.0, "Retry-After was honoured"


def test_a_429_storm_longer_than_the_attempts_is_waited_out_but_not_forever() -> None:
    clock = FakeClock()
    transport = Transport(limiter(clock), attempts=3, sleep=clock.sleep)
    storm = [Transient("429", retry_after=1.0, throttled=True)] * 7

    def request() -> str:
        if storm:
            raise storm.pop()
        return "ok"

    # Seven 429s in a row outlast three attempts: a throttled call gets THROTTLED_PATIENCE times as many.
    assert transport.call(request) == "ok" and transport.stats.throttled == 7

    def always_throttled() -> None:
        raise Transient("429", retry_after=1.0, throttled=True)

    with pytest.raises(Transient):
        transport.call(always_throttled)
    assert transport.stats.calls == 8 + 3 * THROTTLED_PATIENCE


def test_retries_are_bounded_and_other_errors_are_not_retried() -> None:
    clock = FakeClock()
    transport = Transport(limiter(clock), attempts=3, sleep=clock.sleep)
    calls = 0

    def always_503() -> None:
        nonlocal calls
        calls += 1
        raise Transient("503")

    with pytest.raises(Transient):
        transport.call(always_503)
    assert calls == 3

    def validation() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("400 VALIDATION_ERROR")

    calls = 0
    with pytest.raises(ValueError):
        transport.call(validation)
    assert calls == 1


def test_map_keeps_order_and_bounds_concurrency() -> None:
    clock = FakeClock()
    transport = Transport(limiter(clock), concurrency=3)
    in_flight = 0
    peak = 0
    lock = threading.Lock()
    gate = threading.Event()

    def work(i: int) -> int:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        gate.wait(0.01)
        with lock:
            in_flight -= 1
        return i * i

    assert list(transport.map(work, range(20))) == [i * i for i in range(20)]
    assert peak <= 3


def test_map_hands_over_work_that_succeeded_after_the_one_that_failed() -> None:
    # The first batch meets the daily limit (its request arrived last); the three sent with it were applied by the
    # CRM and must still reach the caller to be checkpointed.
    release = threading.Event()

    def send(item: int) -> int:
        if item == 0:
            release.wait(5)
            raise DailyLimitReached("daily limit", resets_at=None)
        if item == 3:
            release.set()
        return item

    transport = Transport(RateLimiter(Limits(1000, 10.0)), concurrency=4)
    got: list[int] = []
    with pytest.raises(DailyLimitReached):
        for result in transport.map(send, range(4)):
            got.append(result)
    assert sorted(got) == [1, 2, 3]


def test_the_limiter_does_not_wait_past_the_runs_time_budget() -> None:
    # --max-runtime: a full window would hold the call back for a second, past a budget ending in half of one.
    from core.errors import TimeBudgetReached

    clock = FakeClock()
    rl = limiter(clock)
    for _ in range(10):
        rl.acquire(time.monotonic() + 0.5)  # free slots go, whatever the budget
    with pytest.raises(TimeBudgetReached):
        rl.acquire(time.monotonic() + 0.5)
    assert clock.now == 0.0, "it stopped instead of waiting"
    rl.acquire(time.monotonic() + 5.0)  # a budget the wait fits in: it waits, then goes
    assert clock.now == pytest.approx(1.0)
