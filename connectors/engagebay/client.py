"""The EngageBay REST API as one call: httpx sends it, the shared transport paces and retries it, and this module
turns EngageBay's answers into JSON or the project's typed errors.

What the API documents (github.com/engagebay/restapi, README; "§" numbers are its sections):

- every path is under ``dev/api/panel/`` of ``https://app.engagebay.com/`` ("End Points"), HTTPS only;
- the REST API key goes in the ``Authorization`` header as it is, with no ``Bearer`` ("Authentication");
- answers are XML unless the request says ``Accept: application/json`` (§1.1 "By default, the response will be in
  XML format"), so a proxy that drops the header turns every answer into XML: that is told, not parsed;
- errors are 400 (invalid input), 401 (``{"error": "UnAuthenticated User", "status": "401"}``), 404 and 429 ("too
  many requests ... contact EngageBay support"): no limit is published and no ``Retry-After`` is documented, so a
  429 pauses every thread for ``throttle_pause_seconds`` unless the answer does carry a ``Retry-After``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from connectors.network import base_path_hint, permanent_failure
from connectors.transport import Transient, Transport
from core.config import EngageBayConfig, secret
from core.errors import AuthError, ConnectorError

API_ROOT = "/dev/api/panel/"


class EngageBayApiError(ConnectorError):
    """A non-retryable EngageBay error (4xx other than 429) with its parsed body."""

    def __init__(self, operation: str, status: int, body: Mapping[str, Any]) -> None:
        message = str(body.get("error") or body.get("message") or f"HTTP {status}")
        super().__init__(f"EngageBay {operation}: {status} {message[:300]}")
        self.status = status
        self.body = dict(body)
        self.reason = message


def parse_body(response: httpx.Response) -> Any:
    """A JSON answer parsed; an empty body is ``{}``; text that is not JSON becomes ``{"error": <its start>}``."""
    if not response.content:
        return {}
    try:
        return response.json()
    except ValueError:
        return {"error": response.text[:200]}


class EngageBayClient:
    """One EngageBay account: an httpx connection pool with the key and ``Accept`` header, and :meth:`call`."""

    def __init__(self, config: EngageBayConfig, transport: Transport, *, api_key: str | None = None,
                 timeout: float = 30.0) -> None:
        self.config = config
        self.transport = transport
        self.timeout = timeout
        key = api_key or secret(config.api_key_env, "engagebay.api_key_env")
        limits = httpx.Limits(max_connections=config.max_concurrency + 2,
                              max_keepalive_connections=config.max_concurrency + 2)
        self._http = httpx.Client(base_url=config.base_url.rstrip("/") + API_ROOT, limits=limits,
                                  headers={"Authorization": key, "Accept": "application/json"})

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def call(self, operation: str, method: str, path: str, *, form: Mapping[str, Any] | None = None,
             body: Any = None) -> Any:
        """One request through the transport; the parsed JSON answer, or a typed error naming ``operation``."""

        def attempt() -> Any:
            try:
                response = self._http.request(method, path, data=form, json=body, timeout=self.timeout)
            except httpx.TimeoutException as exc:
                raise Transient(f"timeout: {type(exc).__name__}") from exc
            except httpx.TransportError as exc:
                fatal = permanent_failure(exc, "EngageBay", self.config.base_url, "engagebay.base_url")
                if fatal is not None:
                    raise fatal from None
                raise Transient(f"connection: {type(exc).__name__}") from exc
            return self._answer(operation, response)

        return self.transport.call_named("EngageBay", operation, attempt)

    def _answer(self, operation: str, response: httpx.Response) -> Any:
        status = response.status_code
        if status == 429:
            retry_after = _float(response.headers.get("retry-after"))
            pause = retry_after if retry_after is not None else self.config.throttle_pause_seconds
            raise Transient("429 too many requests", retry_after=pause, throttled=True)
        if status >= 500:
            raise Transient(f"{status} server error")
        kind = response.headers.get("content-type", "")
        if response.content and "xml" in kind:
            raise ConnectorError(
                f"EngageBay {operation}: the answer came back as XML, not JSON (HTTP {status})",
                hint="EngageBay answers XML when a request lacks 'Accept: application/json'; a proxy between "
                     "us and EngageBay is dropping that header: let it through, or point engagebay.base_url "
                     "past the proxy")
        body = parse_body(response)
        if status == 401:
            raise AuthError(f"EngageBay refused the REST API key ({_reason(body) or 'UnAuthenticated User'})",
                            hint=f"check the key in ${self.config.api_key_env} (Account Settings -> API -> REST API "
                                 "Key); send it as it is, without 'Bearer'")
        if status == 403:
            raise AuthError(f"EngageBay {operation}: this user may not ({_reason(body)})",
                            hint="use the REST API key of a user allowed to edit contacts and custom fields")
        if status >= 400:
            error = EngageBayApiError(operation, status, body if isinstance(body, dict) else {"error": str(body)})
            if status == 404:
                error.hint = base_path_hint("EngageBay", self.config.base_url, "engagebay.base_url",
                                            "https://app.engagebay.com")
            raise error
        return body


def _reason(body: Any) -> str:
    return str(body.get("error") or body.get("message") or "") if isinstance(body, dict) else str(body)[:200]


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def dumps(value: Any) -> str:
    """Compact JSON, for cursors stored in the state."""
    return json.dumps(value, separators=(",", ":"))
