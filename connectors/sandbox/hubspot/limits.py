"""HubSpot's API rate limits, enforced as HubSpot enforces them, with its headers and 429 bodies.

Source for all of it: developers.hubspot.com/docs/api/usage-details ("API usage guidelines"):

* a rolling 10-second window per private app (100 requests on Free/Starter, more on higher tiers: 190 since
  the 2024 increase), answered ``429`` with ``policyName: TEN_SECONDLY_ROLLING``;
* a daily limit per account (250,000 on Free/Starter) resetting at midnight in the account's time zone (UTC
  here), answered ``429`` with ``policyName: DAILY``; OAuth calls have no daily limit and get no ``-Daily``
  headers (developers.hubspot.com/changelog/rate-limit-headers-will-now-appear-for-oauth-authenticated-calls);
* the CRM search endpoints: their own per-second limit (five requests per second per account,
  developers.hubspot.com/docs/api/crm/search#limitations), not counted in the 10-second window ("This excludes
  the Search API") and "Responses from the search API endpoints will not include any of the rate limit
  headers";
* headers ``X-HubSpot-RateLimit-Daily``, ``-Daily-Remaining``, ``-Interval-Milliseconds``, ``-Max``,
  ``-Remaining`` and the deprecated-but-still-sent ``-Secondly``, ``-Secondly-Remaining``.

429 bodies: ``{"status": "error", "message": "You have reached your ten_secondly_rolling limit.", "errorType":
"RATE_LIMIT", "correlationId", "policyName": "TEN_SECONDLY_ROLLING", "groupName": "publicapi:private_app-api-
calls-ten-secondly:<app>:<portal>"}`` (a body observed live, quoted in public client tests), the docs' DAILY
example (``"You have reached your daily limit."`` with ``requestId``), and for search ``"You have reached your
secondly limit."`` with ``policyName: SECONDLY`` (github.com/HGData/mk-node-hubspot/pull/84 quotes one). HubSpot's
examples carry no ``category``, which the published spec's ``Error`` schema requires, so the emulator adds
``"category": "RATE_LIMITS"`` (a superset: clients reading either field work). No ``Retry-After`` is sent:
HubSpot "does not always return Retry-After value for 429" (airbytehq/airbyte source-hubspot streams.py).
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from connectors.sandbox.hubspot.errors import ApiError

TEN_SECONDLY = "TEN_SECONDLY_ROLLING"
DAILY = "DAILY"
SEARCH_SECONDLY = "SECONDLY"


@dataclass(frozen=True)
class RateLimits:
    """Which limits an emulator enforces (``None`` switches one off)."""

    per_window: int | None = 100
    window_seconds: float = 10.0
    daily: int | None = 250_000
    search_per_second: int | None = 5

    @classmethod
    def off(cls) -> RateLimits:
        """No limits at all (benchmarks, most unit tests)."""
        return cls(per_window=None, daily=None, search_per_second=None)

    @classmethod
    def professional(cls) -> RateLimits:
        """Professional/Enterprise private app: 190 per 10 s, 625,000 per day."""
        return cls(per_window=190, daily=625_000)


def rate_limited(policy: str, portal_id: int, app_id: int) -> ApiError:
    """The 429 HubSpot sends for a policy (bodies in the module docstring)."""
    if policy == DAILY:
        message, extra = "You have reached your daily limit.", {"requestId": uuid.uuid4().hex}
    elif policy == SEARCH_SECONDLY:
        message, extra = "You have reached your secondly limit.", {"groupName": f"publicapi:crm-search:{portal_id}"}
    else:
        message = "You have reached your ten_secondly_rolling limit."
        extra = {"groupName": f"publicapi:private_app-api-calls-ten-secondly:{app_id}:{portal_id}"}
    return ApiError(429, "RATE_LIMITS", message, extra={"errorType": "RATE_LIMIT", "policyName": policy, **extra})


class RateLimiter:
    """Counts requests in the rolling windows and the day; thread-safe."""

    def __init__(self, limits: RateLimits, *, monotonic: Callable[[], float] | None = None,
                 wall: Callable[[], float] | None = None) -> None:
        self.limits = limits
        self.monotonic = monotonic or time.monotonic
        self.wall = wall or time.time
        self._lock = threading.Lock()
        self._window: deque[float] = deque()
        self._search: deque[float] = deque()
        self._day = self._today()
        self.daily_used = 0
        self.daily_exhausted = False
        self.throttled: Counter[str] = Counter()

    def _today(self) -> str:
        return datetime.fromtimestamp(self.wall(), tz=UTC).strftime("%Y-%m-%d")

    def reset_daily(self) -> None:
        """Start a new day (as midnight would)."""
        with self._lock:
            self.daily_used = 0
            self.daily_exhausted = False

    def exhaust_daily(self) -> None:
        """Use up the day's allowance (the ``daily_limit`` fault)."""
        with self._lock:
            self.daily_exhausted = True
            if self.limits.daily is not None:
                self.daily_used = max(self.daily_used, self.limits.daily)

    def admit(self, *, search: bool, oauth: bool, portal_id: int, app_id: int) -> dict[str, str]:
        """Count one request or raise its 429; returns the rate-limit headers to send with the answer."""
        limits = self.limits
        with self._lock:
            now = self.monotonic()
            today = self._today()
            if today != self._day:  # the daily limit resets at midnight
                self._day, self.daily_used, self.daily_exhausted = today, 0, False
            daily_applies = not oauth and (limits.daily is not None or self.daily_exhausted)
            if daily_applies and (self.daily_exhausted or self.daily_used >= (limits.daily or 0)):
                self.throttled[DAILY] += 1
                headers = {} if search else self._headers(now, oauth)
                raise _with_headers(rate_limited(DAILY, portal_id, app_id), headers)
            if search:
                if limits.search_per_second is not None:
                    while self._search and now - self._search[0] >= 1.0:
                        self._search.popleft()
                    if len(self._search) >= limits.search_per_second:
                        self.throttled[SEARCH_SECONDLY] += 1
                        raise rate_limited(SEARCH_SECONDLY, portal_id, app_id)
                    self._search.append(now)
                self.daily_used += 1
                return {}
            if limits.per_window is not None:
                while self._window and now - self._window[0] >= limits.window_seconds:
                    self._window.popleft()
                if len(self._window) >= limits.per_window:
                    self.throttled[TEN_SECONDLY] += 1
                    raise _with_headers(rate_limited(TEN_SECONDLY, portal_id, app_id), self._headers(now, oauth))
                self._window.append(now)
            self.daily_used += 1
            return self._headers(now, oauth)

    def _headers(self, now: float, oauth: bool) -> dict[str, str]:
        limits = self.limits
        headers: dict[str, str] = {}
        if limits.daily is not None and not oauth:
            headers["X-HubSpot-RateLimit-Daily"] = str(limits.daily)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(limits.daily - self.daily_used, 0))
        if limits.per_window is not None:
            in_window = len(self._window)
            per_second = math.ceil(limits.per_window / limits.window_seconds)
            last_second = sum(1 for t in self._window if now - t < 1.0)
            headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(int(limits.window_seconds * 1000))
            headers["X-HubSpot-RateLimit-Max"] = str(limits.per_window)
            headers["X-HubSpot-RateLimit-Remaining"] = str(max(limits.per_window - in_window, 0))
            headers["X-HubSpot-RateLimit-Secondly"] = str(per_second)
            headers["X-HubSpot-RateLimit-Secondly-Remaining"] = str(max(per_second - last_second, 0))
        return headers


def _with_headers(error: ApiError, headers: dict[str, str]) -> ApiError:
    error.headers.update(headers)
    return error
