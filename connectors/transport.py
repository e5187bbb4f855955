"""The one transport policy every connector uses: rate limiting, retries and bounded concurrency.

Connectors do not sleep or retry on their own. They describe their CRM (published limits, how to read
rate-limit headers, how to classify an error) and call through :class:`Transport`, which

- paces requests with a rolling-window limiter plus a daily budget, corrected live from response headers,
  so that the limiter, not 429 answers, sets the pace;
- retries transient failures (429, 5xx, timeouts, dropped connections) with exponential backoff and jitter,
  honouring ``Retry-After`` and the window, a bounded number of times (tenacity);
- stops the run cleanly on a daily limit (:class:`core.errors.DailyLimitReached`), never retrying into it;
- never retries validation errors (4xx other than 429).
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type

from core.errors import ConnectorError, DailyLimitReached, TimeBudgetReached

T = TypeVar("T")
U = TypeVar("U")
#: How many times more attempts a throttled (429) call gets than one failing otherwise.
THROTTLED_PATIENCE = 3


class Transient(Exception):
    """Raised by a connector's classifier for a failure worth retrying; ``retry_after`` in seconds if known."""

    def __init__(self, reason: str, retry_after: float | None = None, throttled: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.throttled = throttled


@dataclass(frozen=True)
class Limits:
    """A CRM's published limits, from configuration."""

    window_requests: int
    window_seconds: float
    daily_requests: int | None = None
    daily_reserve: int = 0
    """Requests of the daily allowance we leave to the CRM's other integrations."""


@dataclass
class Budget:
    """What a response's headers say about the remaining allowance (``None``: not said)."""

    window_remaining: int | None = None
    window_max: int | None = None
    window_seconds: float | None = None
    daily_remaining: int | None = None
    daily_max: int | None = None


@dataclass
class TransportStats:
    """Counters for reports and benchmarks."""

    calls: int = 0
    retries: int = 0
    throttled: int = 0
    waited_seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)


def next_utc_midnight(now: datetime) -> datetime:
    """The next midnight UTC after ``now`` (when daily allowances are assumed to reset)."""
    return (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


class RateLimiter:
    """A rolling-window limiter with a daily budget; thread-safe.

    ``acquire`` blocks until one more request fits in the window. The window is kept slightly conservative
    (``safety``) because the CRM counts arrivals, and our send times differ from its arrival times by the
    network latency.
    """

    def __init__(
        self,
        limits: Limits,
        *,
        safety: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        daily_resets_at: Callable[[], datetime] | None = None,
    ) -> None:
        self.limits = limits
        self._window = limits.window_seconds * (1.0 + safety)
        self._max = limits.window_requests
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self._paused_until = 0.0
        self._daily_used = 0
        self._daily_remaining: int | None = None
        self._daily_max = limits.daily_requests
        self._resets_at: Callable[[], datetime | None] = (
            daily_resets_at or (lambda: next_utc_midnight(datetime.now(UTC))))
        self.waited = 0.0

    def set_daily_reset(self, moment: datetime) -> None:
        """When the CRM says the daily budget resets (e.g. midnight in the account's time zone)."""
        self._resets_at = lambda: moment

    def set_rolling_daily(self) -> None:
        """The daily budget is counted over a rolling 24 hours (Salesforce): it never resets at a known time."""
        self._resets_at = lambda: None

    def acquire(self, deadline: float | None = None) -> None:
        """Wait for a slot; raise :class:`DailyLimitReached` when the daily budget (minus reserve) is spent, and
        :class:`TimeBudgetReached` rather than wait past ``deadline`` (``time.monotonic()``, a run's
        ``--max-runtime``): a slow pace must not carry a run a whole window beyond its budget."""
        while True:
            with self._lock:
                self._check_daily()
                now = self._clock()
                while self._sent and now - self._sent[0] >= self._window:
                    self._sent.popleft()
                wait = self._paused_until - now
                if wait <= 0 and len(self._sent) < self._max:
                    self._sent.append(now)
                    self._daily_used += 1
                    if self._daily_remaining is not None:
                        self._daily_remaining -= 1
                    return
                if wait <= 0:
                    wait = self._sent[0] + self._window - now
            if deadline is not None and time.monotonic() + wait > deadline:
                raise TimeBudgetReached("the time budget ends before the rate limit allows another request")
            self.waited += wait
            self._sleep(max(wait, 0.001))

    def _check_daily(self) -> None:
        reserve = self.limits.daily_reserve
        if self._daily_remaining is not None:
            left = self._daily_remaining - reserve
        elif self._daily_max is not None:
            left = self._daily_max - reserve - self._daily_used
        else:
            return
        if left <= 0:
            resets = self._resets_at()
            when = (f"run again after {resets:%Y-%m-%d %H:%M} UTC" if resets is not None else
                    "the allowance is counted over a rolling 24 hours, so requests free up as those made 24 hours "
                    "ago age out: run again in a few hours")
            raise DailyLimitReached(
                f"the daily API allowance is used up (reserve kept for other integrations: {reserve})",
                resets_at=resets,
                hint=f"the run stopped cleanly; {when} to resume",
            )

    def observe(self, budget: Budget) -> None:
        """Correct the local view from what the CRM says is left."""
        with self._lock:
            if budget.window_max is not None and budget.window_max > 0:
                # The configured limit is the user's ceiling (headroom for other integrations); the CRM's
                # advertised maximum can only lower it.
                self._max = min(self.limits.window_requests, budget.window_max)
            if budget.window_seconds:
                self._window = max(self._window, budget.window_seconds)
            if budget.window_remaining is not None:
                now = self._clock()
                while self._sent and now - self._sent[0] >= self._window:
                    self._sent.popleft()
                # Others (or our own in-flight requests) used more than we counted: book the difference.
                missing = (self._max - budget.window_remaining) - len(self._sent)
                for _ in range(max(0, missing)):
                    self._sent.append(now)
            if budget.daily_max is not None:
                self._daily_max = budget.daily_max
            if budget.daily_remaining is not None:
                self._daily_remaining = budget.daily_remaining

    def pause(self, seconds: float) -> None:
        """Hold every thread back (after a 429 says the window is full)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)


class Transport:
    """Calls a CRM through the limiter with retries; shared by every request of one connector."""

    def __init__(
        self,
        limiter: RateLimiter,
        *,
        attempts: int = 6,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        concurrency: int = 1,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.limiter = limiter
        self.attempts = attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.concurrency = concurrency
        self.stats = TransportStats()
        self.deadline: float | None = None
        """``time.monotonic()`` by which the run must stop (``--max-runtime``), for work that waits on the CRM."""
        self._sleep = sleep
        self._rng = rng or random.Random(0)
        self._stats_lock = threading.Lock()

    def time_left(self) -> float | None:
        """Seconds until :attr:`deadline` (never negative), or None without one."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        # Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"), floored by Retry-After.
        backoff = self._rng.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** (state.attempt_number - 1)))
        if isinstance(exc, Transient) and exc.retry_after is not None:
            if exc.throttled:
                # The window is full for every thread, not only this one.
                self.limiter.pause(exc.retry_after)
            return exc.retry_after + backoff * 0.1
        return backoff

    def _stopper(self) -> Callable[[RetryCallState], bool]:
        """One call's stop rule. A 429 says "slow down", not "failing": throttled answers do not use up the
        attempts other failures get, and a call keeps its place through a storm for THROTTLED_PATIENCE times
        as many attempts in all (every thread pauses at each one, so the storm passes)."""
        failures = 0

        def stop(state: RetryCallState) -> bool:
            nonlocal failures
            exc = state.outcome.exception() if state.outcome else None
            if not (isinstance(exc, Transient) and exc.throttled):
                failures += 1
            return failures >= self.attempts or state.attempt_number >= self.attempts * THROTTLED_PATIENCE

        return stop

    def _count_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        with self._stats_lock:
            self.stats.retries += 1
            if isinstance(exc, Transient):
                self.stats.reasons[exc.reason] = self.stats.reasons.get(exc.reason, 0) + 1
                if exc.throttled:
                    self.stats.throttled += 1

    def call(self, request: Callable[[], T]) -> T:
        """Run ``request`` (which raises :class:`Transient` for retryable failures) under the policy.

        After the last attempt the final :class:`Transient` propagates (:meth:`call_named` turns it into a
        :class:`core.errors.ConnectorError` naming the operation).
        """
        retrying = Retrying(
            stop=self._stopper(),
            wait=self._wait,
            retry=retry_if_exception_type(Transient),
            before_sleep=self._count_retry,
            sleep=self._sleep,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                self.limiter.acquire(self.deadline)
                with self._stats_lock:
                    self.stats.calls += 1
                return request()
        raise AssertionError("unreachable: tenacity either returns or re-raises")  # pragma: no cover

    def call_named(self, crm: str, operation: str, request: Callable[[], T]) -> T:
        """:meth:`call`, with retries that run out turned into a :class:`ConnectorError` naming the CRM and
        the operation (progress so far is kept, so the hint is to run again)."""
        try:
            return self.call(request)
        except Transient as exc:
            raise ConnectorError(
                f"{crm} {operation} still throttled after {self.attempts * THROTTLED_PATIENCE} attempts"
                if exc.throttled else f"{crm} {operation} failed after {self.attempts} attempts ({exc.reason})",
                hint=f"{crm} or the network is failing; run again later, progress so far is kept",
            ) from exc

    def map(self, func: Callable[[T], U], items: Iterable[T]) -> Iterator[U]:
        """Apply ``func`` to items with at most ``concurrency`` in flight, yielding results in input order.

        Work is submitted lazily (a bounded window ahead of what was yielded) so that a stop — daily limit,
        time budget, an error — leaves little in flight, and callers can checkpoint each result as it comes.
        """
        if self.concurrency <= 1:
            for item in items:
                yield func(item)
            return
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="crm") as pool:
            pending: deque[Future[U]] = deque()
            iterator = iter(items)
            window = self.concurrency * 2
            try:
                while True:
                    for item in iterator:
                        pending.append(pool.submit(func, item))
                        if len(pending) >= window:
                            break
                    if not pending:
                        return
                    future = pending.popleft()
                    try:
                        result = future.result()
                    except Exception:
                        # Work already sent may have succeeded after the one that failed (a daily limit reached by
                        # a request that arrived first): hand it over so the caller checkpoints it, then stop.
                        for other in pending:
                            other.cancel()
                        started = [f for f in pending if not f.cancelled()]
                        pending.clear()
                        for other in started:
                            if other.exception() is None:
                                yield other.result()
                        raise
                    yield result
            finally:
                for future in pending:
                    future.cancel()
