"""Private app tokens and OAuth access tokens, and the OAuth token endpoint.

Every CRM request needs ``Authorization: Bearer <token>``; a missing or unknown token gets 401
``INVALID_AUTHENTICATION``, an OAuth access token past its ``expires_in`` 401 ``EXPIRED_AUTHENTICATION``.
``POST /oauth/v1/token`` (form-encoded, as ``hubspot.oauth.tokens_api.create`` sends it) exchanges a refresh
token for a new access token (developers.hubspot.com/docs/api/oauth/tokens). Its error bodies are HubSpot's
OAuth ones (``{"status": "BAD_REFRESH_TOKEN", "message": ..., "error": "invalid_grant", ...}``), not the
CRM ``Error`` shape.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.sandbox.hubspot.errors import correlation_id, expired_auth, invalid_auth
from connectors.sandbox.hubspot.values import iso_ms

DEFAULT_TOKEN = "pat-na1-00000000-0000-4000-8000-000000000000"
"""The private app token a default emulator accepts (same shape as a real ``pat-na1-…`` token)."""


@dataclass(frozen=True)
class OAuthApp:
    """The OAuth app credentials the token endpoint accepts."""

    client_id: str = "sandbox-client-id"
    client_secret: str = "sandbox-client-secret"  # a sandbox credential, not a secret
    refresh_token: str = "sandbox-refresh-token"


@dataclass
class TokenInfo:
    """What the emulator knows of one token."""

    kind: str  # "private" or "oauth"
    expires_at: float | None = None  # epoch seconds; None: never


class Tokens:
    """The tokens a portal accepts; thread-safe."""

    def __init__(self, private_tokens: Iterable[str], oauth: OAuthApp | None, *, access_ttl: int = 1800,
                 clock: Callable[[], float] | None = None) -> None:
        self.clock = clock or time.time
        self.oauth = oauth
        self.access_ttl = access_ttl
        self._lock = threading.Lock()
        self._tokens: dict[str, TokenInfo] = {t: TokenInfo("private") for t in private_tokens}

    def check(self, authorization: str | None) -> TokenInfo:
        """The token of a request, or the 401 HubSpot answers."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise invalid_auth()
        token = authorization[7:].strip()
        with self._lock:
            info = self._tokens.get(token)
        if info is None:
            raise invalid_auth()
        now = self.clock()
        if info.expires_at is not None and now >= info.expires_at:
            raise expired_auth(int(now - info.expires_at), iso_ms(int(info.expires_at * 1000)))
        return info

    def add(self, token: str | None = None, kind: str = "private", ttl: float | None = None) -> str:
        """Accept another token (a fresh random one unless given)."""
        token = token or (f"pat-na1-{secrets.token_hex(16)}" if kind == "private" else secrets.token_urlsafe(32))
        with self._lock:
            self._tokens[token] = TokenInfo(kind, self.clock() + ttl if ttl is not None else None)
        return token

    def expire(self, token: str | None = None) -> None:
        """Expire one token, or all: they are answered ``EXPIRED_AUTHENTICATION`` from now on."""
        with self._lock:
            for key, info in self._tokens.items():
                if token is None or key == token:
                    info.expires_at = self.clock() - 1

    def grant(self, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """``POST /oauth/v1/token``: the status and JSON to answer."""

        def refused(status: str, message: str, error: str) -> tuple[int, dict[str, Any]]:
            return 400, {"status": status, "message": message, "correlationId": correlation_id(),
                         "error": error, "error_description": message}

        app = self.oauth
        if app is None or form.get("client_id") != app.client_id:
            return refused("BAD_CLIENT_ID", "missing or invalid client id", "invalid_client")
        if form.get("client_secret") != app.client_secret:
            return refused("BAD_CLIENT_SECRET", "missing or invalid client secret", "invalid_client")
        if form.get("grant_type") != "refresh_token":
            return refused("BAD_GRANT_TYPE", "missing or unsupported grant type", "unsupported_grant_type")
        if form.get("refresh_token") != app.refresh_token:
            return refused("BAD_REFRESH_TOKEN", "refresh token is invalid, expired or revoked", "invalid_grant")
        access = self.add(kind="oauth", ttl=self.access_ttl)
        return 200, {"token_type": "bearer", "refresh_token": app.refresh_token, "access_token": access,
                     "expires_in": self.access_ttl}
