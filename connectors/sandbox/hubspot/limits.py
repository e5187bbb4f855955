"""HubSpot's API rate limits, enforced as HubSpot enforces them, with its headers and 429 bodies.

Source for all of it: developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines ("API usage
guidelines and limits", formerly /docs/api/usage-details):

* a rolling 10-second window per app, by the account's tier (the presets of :class:`RateLimits`), answered
  ``429`` with ``policyName: TEN_SECONDLY_ROLLING``;
* a daily limit per account, by tier, that "resets at midnight based on your time zone setting" (the account's
  time zone, :class:`RateLimiter`'s ``time_zone``), answered ``429`` with ``policyName: DAILY``; OAuth calls
  have no daily limit and get no ``-Daily`` headers
  (developers.hubspot.com/changelog/rate-limit-headers-will-now-appear-for-oauth-authenticated-calls). Neither
  the headers nor the DAILY body say when the day resets; the private-app usage endpoint does (``resetsAt``,
  :meth:`RateLimiter.usage`);
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
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from connectors.sandbox.hubspot.errors import ApiError

TEN_SECONDLY = "TEN_SECONDLY_ROLLING"
DAILY = "DAILY"
SEARCH_SECONDLY = "SECONDLY"


#: A new account's time zone when none is given (HubSpot sets it per account; US Eastern is the one its own
#: usage example implies: ``"resetsAt": "2020-04-10T04:00:00Z"`` is midnight in New York,
#: developers.hubspot.com/docs/api-reference/legacy/account/account-information/get-usage-details).
DEFAULT_TIME_ZONE = "America/New_York"
#: The most API Limit Increase packs an account can buy (usage guidelines: "a maximum of two").
MAX_LIMIT_INCREASES = 2


@dataclass(frozen=True)
class RateLimits:
    """Which limits an emulator enforces (``None`` switches one off). The default is a Free/Starter account.

    Per-tier figures, from the usage guidelines' table (developers.hubspot.com/docs/developer-tooling/platform/
    usage-guidelines; the 2024 changelog "Increasing our API limits" announced 650,000 for Professional, the
    current table says 625,000, which is used): Free and Starter 100 per 10 s per app and 250,000 per day per
    account; Professional 190 and 625,000; Enterprise 190 and 1,000,000; each API Limit Increase pack 250 per
    10 s and 1,000,000 more per day (at most two packs; the burst does not stack).
    """

    per_window: int | None = 100
    window_seconds: float = 10.0
    daily: int | None = 250_000
    search_per_second: int | None = 5

    @classmethod
    def off(cls) -> RateLimits:
        """No limits at all (benchmarks, most unit tests)."""
        return cls(per_window=None, daily=None, search_per_second=None)

    @classmethod
    def free(cls) -> RateLimits:
        """Free or Starter account: 100 per 10 s, 250,000 per day (the default)."""
        return cls(per_window=100, daily=250_000)

    @classmethod
    def professional(cls) -> RateLimits:
        """Professional account: 190 per 10 s, 625,000 per day."""
        return cls(per_window=190, daily=625_000)

    @classmethod
    def enterprise(cls) -> RateLimits:
        """Enterprise account: 190 per 10 s, 1,000,000 per day."""
        return cls(per_window=190, daily=1_000_000)

    def with_limit_increase(self, packs: int = 1) -> RateLimits:
        """These limits plus ``packs`` API Limit Increase packs: 250 per 10 s, 1,000,000 more per day each."""
        if not 1 <= packs <= MAX_LIMIT_INCREASES:
            raise ValueError(f"an account can buy 1 to {MAX_LIMIT_INCREASES} API limit increases, not {packs}")
        return RateLimits(per_window=250, window_seconds=self.window_seconds,
                          daily=(self.daily or 0) + 1_000_000 * packs, search_per_second=self.search_per_second)


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
                 wall: Callable[[], float] | None = None, time_zone: str = DEFAULT_TIME_ZONE) -> None:
        self.limits = limits
        self.time_zone = ZoneInfo(time_zone)
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
        return datetime.fromtimestamp(self.wall(), tz=self.time_zone).strftime("%Y-%m-%d")

    def resets_at(self) -> datetime:
        """The next midnight in the account's time zone (when the daily count starts again), in UTC."""
        local = datetime.fromtimestamp(self.wall(), tz=self.time_zone)
        tomorrow = (local + timedelta(days=1)).date()
        midnight = datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=self.time_zone)
        return midnight.astimezone(UTC)

    def usage(self) -> dict[str, Any]:
        """``GET /account-info/v3/api-usage/daily/private-apps``: today's private-app usage and when it resets.

        Shape from the docs' example (developers.hubspot.com/docs/api-reference/legacy/account/account-information/
        get-usage-details): ``{"results": [{"collectedAt", "currentUsage", "fetchStatus": "SUCCESS", "name":
        "private-apps-api-calls-daily", "resetsAt", "usageLimit"}]}``.
        """
        with self._lock:
            if self._today() != self._day:
                self._day, self.daily_used, self.daily_exhausted = self._today(), 0, False
            used = self.daily_used
        now = datetime.fromtimestamp(self.wall(), tz=UTC)
        resets = self.resets_at().strftime("%Y-%m-%dT%H:%M:%SZ")  # the docs' example has no milliseconds here
        return {"results": [{"collectedAt": _iso(now), "currentUsage": used, "fetchStatus": "SUCCESS",
                             "name": "private-apps-api-calls-daily", "resetsAt": resets,
                             "usageLimit": self.limits.daily or 0}]}

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


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _with_headers(error: ApiError, headers: dict[str, str]) -> ApiError:
    error.headers.update(headers)
    return error
