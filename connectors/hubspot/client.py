"""The HubSpot API as one call: the official client builds each request, the shared transport paces and
retries it, and this module turns HubSpot's answers into JSON or the project's typed errors.

Responses are read raw (``_preload_content=False``) and parsed as JSON once: the client still builds URLs,
auth and bodies, but we skip its per-object model deserialisation, which dominates the cost per record.

OAuth access tokens live 30 minutes (developers.hubspot.com/changelog/upcoming-expiration-of-oauth-access-
tokens-is-changing) and HubSpot recommends "following the expires_in parameter for refreshing access tokens",
so a token is refreshed ahead of its expiry, as often as a run needs, on the v3 token endpoint (v1 is
deprecated on 2027-02-16: developers.hubspot.com/changelog/v1-oauth-api-deprecation; the v3 endpoint takes
every parameter in the form body: developers.hubspot.com/docs/api-reference/auth-oauth-v3/guide). A 401 still
triggers one refresh, as the last resort.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import urllib3
from hubspot import HubSpot
from hubspot.crm.associations.v4.exceptions import ApiException as AssociationsApiException
from hubspot.crm.contacts.exceptions import ApiException as ContactsApiException
from hubspot.crm.deals.exceptions import ApiException as DealsApiException
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException
from hubspot.oauth.exceptions import ApiException as OAuthApiException

from connectors.network import base_path_hint, permanent_failure
from connectors.transport import Budget, Transient, Transport, next_utc_midnight
from core.config import HubSpotConfig, secret
from core.errors import AuthError, ConnectorError, DailyLimitReached

#: Each generated package of the client raises its own ApiException class.
API_EXCEPTIONS = (ContactsApiException, DealsApiException, PropertiesApiException, AssociationsApiException,
                  OAuthApiException)
#: Refresh this long before ``expires_in`` runs out, so no request carries a token about to expire.
REFRESH_MARGIN_S = 300.0
#: Legacy private apps can no longer be created and go unsupported in September 2027
#: (developers.hubspot.com/changelog/legacy-apis-and-legacy-apps-whats-going-unsupported-and-when); the hint names
#: the replacement so a user who must rotate a token knows where to go.
TOKEN_HINT = ("check the access token in ${env}; it may have been rotated. Legacy private apps are being retired: "
              "use a Service Key from a HubSpot Developer Platform project (2026.09) in ${env}, or OAuth "
              "(hubspot.refresh_token_env, client_id_env, client_secret_env)")


class HubSpotApiError(ConnectorError):
    """A non-retryable HubSpot error (4xx other than 429) with its parsed body."""

    def __init__(self, operation: str, status: int, body: Mapping[str, Any]) -> None:
        message = str(body.get("message") or body.get("category") or f"HTTP {status}")
        super().__init__(f"HubSpot {operation}: {status} {message}")
        self.status = status
        self.body = body


def parse_json(data: bytes | str | None) -> Any:
    """A response body as JSON; text that is not JSON becomes ``{"message": <first 200 characters>}``."""
    if not data:
        return {}
    try:
        return json.loads(data)
    except ValueError:
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        return {"message": text[:200]}


def budget_from_headers(headers: Mapping[str, str]) -> Budget:
    """Read HubSpot's ``X-HubSpot-RateLimit-*`` headers
    (developers.hubspot.com/docs/api/usage-details#rate-limits)."""
    lowered = {k.lower(): v for k, v in headers.items()}

    def number(name: str) -> int | None:
        value = lowered.get(name)
        return int(value) if value is not None and value.strip().isdigit() else None

    interval = number("x-hubspot-ratelimit-interval-milliseconds")
    return Budget(
        window_remaining=number("x-hubspot-ratelimit-remaining"),
        window_max=number("x-hubspot-ratelimit-max"),
        window_seconds=interval / 1000 if interval else None,
        daily_remaining=number("x-hubspot-ratelimit-daily-remaining"),
        daily_max=number("x-hubspot-ratelimit-daily"),
    )


class HubSpotClient:
    """One HubSpot connection: cached API objects, the access token (refreshed ahead of expiry), and
    :meth:`call`, which every request of the connector goes through."""

    def __init__(self, config: HubSpotConfig, transport: Transport, *, token: str | None = None,
                 timeout: float = 30.0, clock: Callable[[], float] = time.monotonic,
                 search_acquire: Callable[[], None] | None = None) -> None:
        self.config = config
        self.transport = transport
        self.timeout = timeout
        self.clock = clock
        self.refreshes = 0
        self._search_acquire = search_acquire or (lambda: None)
        self._oauth = bool(config.refresh_token_env and config.client_id_env and config.client_secret_env)
        self._token_lock = threading.Lock()
        self._expires_at: float | None = None
        if token is None and self._oauth:
            # With OAuth the access token is optional: the first call refreshes one.
            import os

            token = os.environ.get(config.token_env, "").strip() or None
        else:
            token = token or secret(config.token_env, "hubspot.token_env")
        self._token = token
        self._apis: dict[str, Any] = {}
        self.daily_resets_at: datetime | None = None
        self.company_currency: str | None = None
        """When the account's daily limit resets (midnight in the account's time zone), once read."""

    # --- tokens ------------------------------------------------------------------------------------------

    def _current_token(self) -> str:
        with self._token_lock:
            due = self._oauth and (self._token is None or self._expires_at is None
                                   or self.clock() >= self._expires_at - REFRESH_MARGIN_S)
            if due:
                self._refresh()
            assert self._token is not None
            return self._token

    def _refresh(self) -> None:
        """Exchange the refresh token for a new access token (hold ``_token_lock``)."""
        cfg = self.config
        form = {
            "grant_type": "refresh_token",
            "refresh_token": secret(cfg.refresh_token_env, "hubspot.refresh_token_env"),
            "client_id": secret(cfg.client_id_env, "hubspot.client_id_env"),
            "client_secret": secret(cfg.client_secret_env, "hubspot.client_secret_env"),
        }

        def attempt() -> dict[str, Any]:
            try:
                response = httpx.post(cfg.base_url.rstrip("/") + "/oauth/v3/token", data=form, timeout=self.timeout)
            except httpx.TransportError as exc:
                raise Transient(f"connection: {type(exc).__name__}") from exc
            if response.status_code == 429 or response.status_code >= 500:
                raise Transient(f"{response.status_code} from the token endpoint")
            body = parse_json(response.content)
            if response.status_code != 200 or "access_token" not in body:
                why = body.get("status") or body.get("category") or response.status_code
                raise AuthError(f"HubSpot refused the OAuth refresh token ({why})",
                                hint="re-authorise the app to get a new refresh token")
            return dict(body)

        body = self.transport.call_named("HubSpot", "refresh the OAuth token", attempt)
        self._token = str(body["access_token"])
        self._expires_at = self.clock() + float(body.get("expires_in") or 1800)
        self.refreshes += 1
        self._apis.clear()

    def read_daily_reset(self) -> None:
        """Learn when the daily limit resets from the private-app usage endpoint (``resetsAt``,
        developers.hubspot.com/docs/api-reference/legacy/account/account-information/get-usage-details): it is
        midnight in the account's time zone, which neither the rate-limit headers nor the DAILY 429 tell. OAuth
        calls have no daily limit. Best effort: without it the hint falls back to UTC midnight."""
        if self._oauth or self.daily_resets_at is not None:
            return
        url = self.config.base_url.rstrip("/") + "/account-info/v3/api-usage/daily/private-apps"

        def attempt() -> dict[str, Any]:
            try:
                response = httpx.get(url, headers={"Authorization": f"Bearer {self._current_token()}"},
                                     timeout=self.timeout)
            except httpx.TransportError as exc:
                raise Transient(f"connection: {type(exc).__name__}") from exc
            if response.status_code >= 500:
                raise Transient(f"{response.status_code} from the usage endpoint")
            body = parse_json(response.content) if response.status_code == 200 else {}
            return body if isinstance(body, dict) else {}

        try:
            body = self.transport.call_named("HubSpot", "read the daily API usage", attempt)
        except (ConnectorError, AuthError):
            return
        for item in body.get("results") or []:
            try:
                self.daily_resets_at = datetime.fromisoformat(str(item["resetsAt"]).replace("Z", "+00:00"))
            except (KeyError, ValueError):
                continue
            self.transport.limiter.set_daily_reset(self.daily_resets_at)
            return

    def read_company_currency(self) -> str | None:
        """The portal's company currency (``companyCurrency`` of ``GET /account-info/v3/details``,
        developers.hubspot.com/docs/api-reference/legacy/account/account-information/get-account-details): what
        ``amount_in_home_currency`` is in. Read once; None when the account details cannot be read."""
        if self.company_currency is not None:
            return self.company_currency
        url = self.config.base_url.rstrip("/") + "/account-info/v3/details"

        def attempt() -> dict[str, Any]:
            try:
                response = httpx.get(url, headers={"Authorization": f"Bearer {self._current_token()}"},
                                     timeout=self.timeout)
            except httpx.TransportError as exc:
                raise Transient(f"connection: {type(exc).__name__}") from exc
            if response.status_code >= 500 or response.status_code == 429:
                raise Transient(f"{response.status_code} from the account details endpoint")
            body = parse_json(response.content) if response.status_code == 200 else {}
            return body if isinstance(body, dict) else {}

        try:
            body = self.transport.call_named("HubSpot", "read the account details", attempt)
        except (ConnectorError, AuthError):
            return None
        code = body.get("companyCurrency")
        self.company_currency = str(code) if isinstance(code, str) and code else None
        return self.company_currency

    # --- calls -------------------------------------------------------------------------------------------

    def _api(self, path: str, token: str) -> Any:
        """A cached API object (the client builds a new connection pool on every attribute access)."""
        key = f"{token[-12:]}:{path}"
        api = self._apis.get(key)
        if api is None:
            # Retries are ours (the transport), so urllib3's own silent retries are switched off.
            client = HubSpot(access_token=token, host=self.config.base_url.rstrip("/"),
                             retry=urllib3.Retry(total=0, redirect=2))
            target: Any = client
            for part in path.split("."):
                target = getattr(target, part)
            api = self._apis[key] = target
        return api

    def call(self, operation: str, api: str, method: str, *args: Any, search: bool = False, **kwargs: Any) -> Any:
        """Call one client method through the transport and return the parsed JSON body."""

        def attempt() -> Any:
            if search:
                self._search_acquire()
            token = self._current_token()
            func: Callable[..., Any] = getattr(self._api(api, token), method)
            try:
                response = func(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
            except API_EXCEPTIONS as exc:
                return self._failed(operation, exc, token)
            except (urllib3.exceptions.TimeoutError, urllib3.exceptions.ProtocolError,
                    urllib3.exceptions.NewConnectionError, urllib3.exceptions.MaxRetryError,
                    ConnectionError) as exc:
                fatal = permanent_failure(exc, "HubSpot", self.config.base_url, "hubspot.base_url")
                if fatal is not None:
                    raise fatal from None
                raise Transient(f"connection: {type(exc).__name__}") from exc
            self.transport.limiter.observe(budget_from_headers(response.headers))
            return parse_json(response.data)

        return self.transport.call_named("HubSpot", operation, attempt)

    def _failed(self, operation: str, exc: Any, token: str) -> Any:
        status = int(exc.status or 0)
        # The client hands error bodies over as text (preloaded) or bytes (raw); both are HubSpot's JSON.
        body = parse_json(exc.body if isinstance(exc.body, str | bytes) else bytes(exc.body or b""))
        if not isinstance(body, dict):
            body = {"message": str(body)}
        headers = {k.lower(): v for k, v in dict(exc.headers or {}).items()}
        if status == 429:
            policy = str(body.get("policyName", ""))
            if policy == "DAILY":
                known = self.daily_resets_at
                raise DailyLimitReached(
                    "HubSpot's daily API limit is reached",
                    resets_at=known or next_utc_midnight(datetime.now(UTC)),
                    hint=f"the run stopped cleanly; HubSpot resets the daily limit at {known.isoformat()} (midnight "
                         "in the account's time zone); run again then to resume" if known else
                         "the run stopped cleanly; HubSpot resets the daily limit at midnight in the account's "
                         "time zone; run again then to resume",
                )
            retry_after = _float(headers.get("retry-after"))
            if retry_after is None:
                # TEN_SECONDLY_ROLLING frees up within the 10 s window; the search policy within a second.
                retry_after = 1.0 if "SECOND" in policy and "TEN" not in policy else 10.0
            raise Transient(f"429 {policy or 'rate limited'}", retry_after=retry_after, throttled=True)
        if status == 0 or status >= 500:
            raise Transient(f"{status or 'ssl'} server error")
        if status == 401 and self._oauth:
            with self._token_lock:
                # Another thread may have refreshed already; only a 401 on the current token refreshes.
                if token == self._token:
                    self._refresh()
            raise Transient("401 token refreshed", retry_after=0.0)
        if status == 401:
            raise AuthError(f"HubSpot refused the token ({body.get('category', 'INVALID_AUTHENTICATION')})",
                            hint=TOKEN_HINT.replace("{env}", self.config.token_env))
        if status == 403:
            raise AuthError(f"HubSpot {operation}: missing permission ({body.get('message', '')})",
                            hint="give the app the crm.objects.contacts/deals read+write and "
                                 "crm.schemas.contacts read+write scopes")
        error = HubSpotApiError(operation, status, body)
        if status == 404:
            error.hint = base_path_hint("HubSpot", self.config.base_url, "hubspot.base_url", "https://api.hubapi.com")
        raise error


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
