"""Talking to Salesforce under the shared transport policy: login, re-login, error classification, API budget.

Every request of the connector goes through :meth:`SalesforceClient.call`, which runs it through
:class:`connectors.transport.Transport` (pacing, retries) and turns what simple-salesforce raises into the
project's errors:

- ``401 INVALID_SESSION_ID``: client-credentials, refresh-token, JWT and password logins log in again *once* and
  the request is retried; a session that is refused again right after a fresh login, or a token login (nothing
  to refresh), is an :class:`core.errors.AuthError` with a hint.
- ``403 REQUEST_LIMIT_EXCEEDED`` "TotalRequests Limit exceeded": :class:`core.errors.DailyLimitReached`
  (never retried); the same code for the concurrent long-request limit is transient.
- 5xx, dropped connections, timeouts, ``UNABLE_TO_LOCK_ROW`` on a whole request: transient, retried.
- other 4xx: :class:`SalesforceApiError` carrying Salesforce's error list.

Logins: the OAuth client-credentials and refresh-token flows are requests to the My Domain's
``/services/oauth2/token`` made here with the connector's ``requests`` session (simple-salesforce then takes the
``session_id``/``instance_url``); JWT and SOAP ``login()`` go through simple-salesforce. SOAP ``login()`` is off by
default in orgs created from Winter '26, absent from API 65.0 on and retired in Summer '27
(help.salesforce.com articleView?id=005132110), so password logins use API :data:`SOAP_LOGIN_VERSION` whatever
``api_version`` the REST calls use, and a refusal says how to switch to client credentials.

The daily allowance is read from the ``Sforce-Limit-Info: api-usage=N/M`` header of *every* response (a
``requests`` response hook: simple-salesforce only parses it into ``Salesforce.api_usage`` for REST calls, not
for Bulk 2.0 calls) and from the ``limits`` resource, and fed to the shared :class:`RateLimiter`, whose daily
reserve is ``api_reserve_fraction x DailyApiRequests.Max``
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_limits.htm).
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceOperationError,
    SalesforceRefusedRequest,
)
from simple_salesforce.login import SalesforceLogin

from connectors.network import permanent_failure
from connectors.transport import Budget, Limits, RateLimiter, Transient, Transport
from core.config import SalesforceConfig, secret
from core.errors import AuthError, ConnectorError, DailyLimitReached

T = TypeVar("T")

#: Salesforce counts API requests per rolling 24 hours and has no short window like HubSpot's 10 s one; its
#: other limit is concurrency (25 long-running requests per production org). A generous 25 requests per
#: second keeps bursts polite without ever being the bottleneck; the daily budget is what matters.
DEFAULT_LIMITS = Limits(window_requests=25, window_seconds=1.0)

#: Whole-request error codes worth retrying (REST API "Status Codes and Error Responses",
#: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm).
TRANSIENT_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "REQUEST_RUNNING_TOO_LONG",
                             "QUERY_TIMEOUT", "UNKNOWN_EXCEPTION"})

_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")

#: The newest API version that still has SOAP ``login()`` (it is absent from 65.0 on).
SOAP_LOGIN_VERSION = "64.0"

#: What to put in clm.toml instead of a login Salesforce no longer allows.
CLIENT_CREDENTIALS_CONFIG = ('[salesforce] auth = "client_credentials", consumer_key_env = "SF_CONSUMER_KEY", '
                             'consumer_secret_env = "SF_CONSUMER_SECRET", instance_url_env = "SF_INSTANCE_URL" '
                             "(a connected or external client app with the client credentials flow enabled and a "
                             "run-as user; SF_INSTANCE_URL = your My Domain URL, https://<domain>.my.salesforce.com)")

#: Hints for the OAuth token endpoint's errors (error_description, lower case -> what to do).
_OAUTH_HINTS = {
    "request not supported on this domain":
        "the client credentials flow only works on your org's My Domain: set the variable named by "
        "salesforce.instance_url_env to https://<your-domain>.my.salesforce.com, not login/test.salesforce.com",
    "no client credentials user enabled":
        "in the connected (or external client) app's policies, under Client Credentials Flow, set a Run As user "
        "with the API Enabled permission",
    "expired access/refresh token":
        "the refresh token was revoked or expired (app access revoked, a refresh token policy, or more than 5 "
        "grants for the user): obtain a new one and put it in the variable named by "
        "salesforce.refresh_token_env, or switch to " + CLIENT_CREDENTIALS_CONFIG,
    "invalid client credentials":
        "check the consumer key and secret in the variables named by salesforce.consumer_key_env and "
        "salesforce.consumer_secret_env (the refresh token flow needs the secret unless the app's 'Require "
        "Secret for Refresh Token Flow' is off)",
    "client identifier invalid":
        "check the consumer key in the variable named by salesforce.consumer_key_env (a new app takes a few "
        "minutes to be usable)",
}


class SalesforceApiError(ConnectorError):
    """A non-retryable Salesforce error: the HTTP status and Salesforce's error list."""

    def __init__(self, operation: str, status: int, errors: list[dict[str, Any]]) -> None:
        first = errors[0] if errors else {}
        self.operation = operation
        self.status = status
        self.errors = errors
        self.code = str(first.get("errorCode") or first.get("statusCode") or f"HTTP_{status}")
        self.detail = str(first.get("message") or "")
        fields = first.get("fields")
        self.fields: list[str] = [str(f) for f in fields] if isinstance(fields, list) else []
        super().__init__(f"Salesforce {operation}: {status} {self.code}: {self.detail}"[:600])


def error_list(content: Any) -> list[dict[str, Any]]:
    """Salesforce's error body as a list of ``{"errorCode", "message", ...}`` (it is usually one already)."""
    if isinstance(content, list):
        return [e if isinstance(e, dict) else {"message": str(e)} for e in content]
    if isinstance(content, dict):
        return [content]
    return [{"message": str(content)[:300]}] if content else []


def budget_from_header(value: str | None) -> Budget | None:
    """Read ``Sforce-Limit-Info: api-usage=N/M`` (requests used in the last 24 hours / the org's allowance)."""
    match = _USAGE.search(value or "")
    if not match:
        return None
    used, maximum = int(match.group(1)), int(match.group(2))
    return Budget(daily_remaining=max(0, maximum - used), daily_max=maximum)


def daily_limit_reached(detail: str) -> DailyLimitReached:
    """The error that stops a run when the org's daily API allowance is used up.

    Salesforce counts the allowance over a rolling 24 hours, not per calendar day: calls are refused "until usage
    for the preceding 24 hours drops below the limit" (help.salesforce.com
    articleView?id=xcloud.setup_system_overview_api.htm). When that is depends on when the last day's requests
    were made, which only the org knows, so there is no reset time to give (``resets_at`` is None).
    """
    return DailyLimitReached(
        f"Salesforce's daily API request limit is reached ({detail})",
        resets_at=None,
        hint="the run stopped cleanly; Salesforce counts requests over a rolling 24 hours (not from midnight), so "
             "requests free up as those made 24 hours ago age out: run again in a few hours (or raise the org's "
             "allowance) to resume",
    )


class _TimeoutSession(requests.Session):
    """A session with a default timeout (requests has none, and simple-salesforce's Bulk 2.0 client sets
    none either): a request hanging on a dead connection must fail and be retried, not block the run."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, *args, **kwargs)  # type: ignore[arg-type]


class SalesforceClient:
    """One authenticated simple-salesforce client per connector, shared by its threads."""

    def __init__(self, config: SalesforceConfig, *, transport: Transport | None = None,
                 session: requests.Session | None = None, instance_url: str | None = None,
                 session_id: str | None = None, timeout: float = 60.0) -> None:
        self.config = config
        self.timeout = timeout
        self.transport = transport or Transport(RateLimiter(DEFAULT_LIMITS), concurrency=4)
        self.session = session or _TimeoutSession(timeout)
        self.session.hooks.setdefault("response", []).append(self._observe_response)
        self._base_reserve = self.transport.limiter.limits.daily_reserve
        self.transport.limiter.set_rolling_daily()
        self._instance_url = instance_url
        self._session_id = session_id
        self._sf: Salesforce | None = None
        self._generation = 0
        self._unconfirmed_logins = 0
        self._refresh_token: str | None = None
        self._lock = threading.Lock()
        self.logins = 0

    # --- authentication ------------------------------------------------------------------------------

    @property
    def can_relogin(self) -> bool:
        """Whether an expired session can be replaced (every login can; a bare token cannot)."""
        return self.config.auth != "token"

    def _connect(self) -> Salesforce:
        cfg = self.config
        if self._session_id is not None and self._sf is None:
            session_id, instance_url = self._session_id, self._instance_url or secret(cfg.instance_url_env,
                                                                                   "salesforce.instance_url_env")
        elif cfg.auth == "token":
            session_id = secret(cfg.access_token_env, "salesforce.access_token_env")
            instance_url = self._instance_url or secret(cfg.instance_url_env, "salesforce.instance_url_env")
        elif cfg.auth in ("client_credentials", "refresh_token"):
            session_id, instance_url = self._oauth_login()
            self.logins += 1
        else:
            session_id, instance = self._login()
            instance_url = f"https://{instance}"
            self.logins += 1
        if not instance_url.startswith("https://"):
            instance_url = "https://" + instance_url.split("://", 1)[-1]
        parts = urlsplit(instance_url)
        host = parts.hostname or ""
        if parts.port not in (None, 443):
            host += f":{parts.port}"
        # object_pairs_hook=dict: simple-salesforce's default (OrderedDict) costs ~30% of parsing a page.
        return Salesforce(instance=host, session_id=session_id, session=self.session, version=cfg.api_version,
                          object_pairs_hook=dict)

    def _my_domain(self) -> str:
        url = secret(self.config.instance_url_env, "salesforce.instance_url_env").strip().rstrip("/")
        return url if "://" in url else f"https://{url}"

    def _oauth_login(self) -> tuple[str, str]:
        """Log in by the OAuth 2.0 client-credentials or refresh-token flow: (access token, instance URL)."""
        cfg = self.config
        form: dict[str, str] = {"grant_type": cfg.auth}
        if cfg.auth == "refresh_token":
            form["refresh_token"] = self._refresh_token or secret(cfg.refresh_token_env,
                                                                  "salesforce.refresh_token_env")
        # Salesforce takes the client id/secret as form fields for both flows (or Basic for client credentials).
        form["client_id"] = secret(cfg.consumer_key_env, "salesforce.consumer_key_env")
        if cfg.consumer_secret_env:
            form["client_secret"] = secret(cfg.consumer_secret_env, "salesforce.consumer_secret_env")
        try:
            response = self.session.post(f"{self._my_domain()}/services/oauth2/token", data=form,
                                         headers={"Accept": "application/json"})
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise Transient(f"login: {type(exc).__name__}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise Transient(f"login: {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise AuthError(f"Salesforce's token endpoint answered {response.status_code} without a JSON body",
                            hint="check that the variable named by salesforce.instance_url_env holds your My Domain "
                                 "URL, https://<your-domain>.my.salesforce.com")
        if response.status_code != 200 or not body.get("access_token"):
            error, description = str(body.get("error", "")), str(body.get("error_description", ""))
            raise AuthError(f"Salesforce refused the {cfg.auth} login ({error}: {description})",
                            hint=_OAUTH_HINTS.get(description.lower(),
                                                  "check the app's OAuth settings and the variables named by "
                                                  "salesforce.consumer_key_env/consumer_secret_env"))
        if isinstance(body.get("refresh_token"), str):
            # Refresh token rotation: the one we used is revoked, so the next login in this run needs the new one.
            self._refresh_token = body["refresh_token"]
        return str(body["access_token"]), str(body.get("instance_url") or self._my_domain())

    def _login(self) -> tuple[str, str]:
        """Log in by username/password (SOAP ``login()``) or the OAuth 2.0 JWT bearer flow."""
        cfg = self.config
        username = secret(cfg.username_env, "salesforce.username_env")
        try:
            if cfg.auth == "password":
                # Without a security token the login only works from the org's trusted IP ranges.
                token = secret(cfg.security_token_env, "salesforce.security_token_env") \
                    if cfg.security_token_env else ""
                result: tuple[str, str] = SalesforceLogin(
                    username=username, password=secret(cfg.password_env, "salesforce.password_env"),
                    security_token=token, domain=cfg.domain, sf_version=SOAP_LOGIN_VERSION, session=self.session)
                return result
            key_file = secret(cfg.private_key_file_env, "salesforce.private_key_file_env")
            result = SalesforceLogin(username=username,
                                     consumer_key=secret(cfg.consumer_key_env, "salesforce.consumer_key_env"),
                                     privatekey_file=key_file, domain=cfg.domain, session=self.session)
            return result
        except SalesforceAuthenticationFailed as exc:
            if cfg.auth == "password" and exc.code == "INVALID_OPERATION":
                raise AuthError(
                    f"Salesforce refused the password login: SOAP API login() is disabled or retired for this org "
                    f"({exc.code}: {exc.auth_message})",
                    hint="SOAP login() is off by default in orgs created from Winter '26 and retired in Summer '27; "
                         "switch to " + CLIENT_CREDENTIALS_CONFIG) from None
            hint = ("check the username, password and security token in the environment variables named by "
                    "salesforce.username_env/password_env/security_token_env (a password change resets the token)"
                    if cfg.auth == "password" else
                    "check the connected app's consumer key, that its certificate matches the private key, that the "
                    "user is pre-authorised for the app, and salesforce.domain: 'login' for production or 'test' for "
                    "a sandbox (it is the JWT audience; a My Domain audience is refused)")
            raise AuthError(f"Salesforce refused the {cfg.auth} login ({exc.code}: {exc.auth_message})",
                            hint=hint) from None
        except OSError as exc:
            if isinstance(exc, requests.RequestException):
                raise Transient(f"login: {type(exc).__name__}") from exc
            raise AuthError(f"cannot read the JWT private key file ({exc})",
                            hint="set the variable named by salesforce.private_key_file_env to the PEM file's path"
                            ) from None

    def _client(self) -> tuple[Salesforce, int]:
        with self._lock:
            if self._sf is None:
                self._sf = self._connect()
            return self._sf, self._generation

    def _expired(self, generation: int) -> None:
        """Replace an expired session once; raise AuthError when that cannot help."""
        if not self.can_relogin:
            raise AuthError(
                "Salesforce refused the session (INVALID_SESSION_ID: expired or revoked)",
                hint=f"an access token cannot be refreshed: put a new one in ${self.config.access_token_env} "
                     "(e.g. from `sf org display --json`); for unattended runs use " + CLIENT_CREDENTIALS_CONFIG
                     + ", or auth = 'refresh_token' or 'jwt'")
        with self._lock:
            if generation != self._generation:
                return  # another thread already logged in again; just retry with the new session
            if self._unconfirmed_logins >= 1:
                raise AuthError(
                    "Salesforce refused a session it had just issued (INVALID_SESSION_ID right after login)",
                    hint="the user may be frozen, its session settings may lock sessions to an IP, or API access "
                         "may be disabled for its profile")
            # A session id handed in (tests, `clm demo`) is only the first session: log in from now on.
            self._session_id = None
            self._sf = None
            self._sf = self._connect()
            self._generation += 1
            self._unconfirmed_logins += 1

    # --- calls -----------------------------------------------------------------------------------------

    def call(self, operation: str, request: Callable[[Salesforce], T]) -> T:
        """Run ``request(sf)`` through the transport; classify its failures (see the module docstring)."""

        def attempt() -> T:
            sf, generation = self._client()
            try:
                result = request(sf)
            except SalesforceExpiredSession:
                self._expired(generation)
                raise Transient("INVALID_SESSION_ID: logged in again", retry_after=0.0) from None
            except SalesforceError as exc:
                raise self._classify(operation, exc) from None
            except SalesforceOperationError as exc:  # Bulk 2.0 client-side checks
                raise ConnectorError(f"Salesforce {operation}: {exc}") from None
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                fatal = permanent_failure(exc, "Salesforce", str(sf.base_url), "the Salesforce instance URL")
                if fatal is not None:
                    raise fatal from None
                raise Transient(f"connection: {type(exc).__name__}") from exc
            self._unconfirmed_logins = 0
            return result

        return self.transport.call_named("Salesforce", operation, attempt)

    def _classify(self, operation: str, exc: SalesforceError) -> Exception:
        status = int(getattr(exc, "status", 0) or 0)
        errors = error_list(getattr(exc, "content", None))
        failure = SalesforceApiError(operation, status, errors)
        if isinstance(exc, SalesforceRefusedRequest) and failure.code == "REQUEST_LIMIT_EXCEEDED":
            if "totalrequests" in failure.detail.lower().replace(" ", ""):
                return daily_limit_reached(failure.detail)
            # ConcurrentPerOrgLongTxn and friends: too many long requests in flight; they drain in seconds.
            return Transient(f"403 {failure.code}", retry_after=5.0, throttled=True)
        if isinstance(exc, SalesforceRefusedRequest):
            return AuthError(f"Salesforce {operation}: permission refused ({failure.code}: {failure.detail})",
                             hint="give the integration user the 'API Enabled' permission and read/edit access to "
                                  "Contact, Lead, Opportunity and OpportunityContactRole")
        if status >= 500 or (isinstance(exc, SalesforceGeneralError) and status in (0, 408, 429)):
            return Transient(f"{status} {failure.code}")
        if failure.code in TRANSIENT_CODES:
            return Transient(f"{status} {failure.code}", retry_after=1.0)
        return failure

    # --- API budget ------------------------------------------------------------------------------------

    def _observe_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        budget = budget_from_header(response.headers.get("Sforce-Limit-Info"))
        if budget is not None:
            self.observe(budget)

    def observe(self, budget: Budget) -> None:
        """Feed the limiter; keep ``api_reserve_fraction`` of the org's daily allowance for others."""
        limiter = self.transport.limiter
        if budget.daily_max:
            reserve = max(self._base_reserve, math.ceil(self.config.api_reserve_fraction * budget.daily_max))
            if limiter.limits.daily_reserve != reserve:
                limiter.limits = replace(limiter.limits, daily_reserve=reserve)
        limiter.observe(budget)

    def read_limits(self) -> Budget:
        """``GET limits``: the org's daily API allowance (also fed to the limiter)."""
        body = self.call("read org limits", lambda sf: sf.limits())
        daily = body.get("DailyApiRequests", {}) if isinstance(body, Mapping) else {}
        budget = Budget(daily_remaining=_int(daily.get("Remaining")), daily_max=_int(daily.get("Max")))
        if budget.daily_max is not None:
            self.observe(budget)
        return budget

    @property
    def instance_url(self) -> str:
        """The instance the client talks to (after login)."""
        sf, _ = self._client()
        return f"https://{sf.sf_instance}"


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
