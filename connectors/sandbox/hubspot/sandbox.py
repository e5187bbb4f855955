"""Start the HubSpot emulator on loopback, and what clients (tests, ``clm sandbox serve``) need to reach it.

The official client works unchanged::

    server, portal = start_hubspot_sandbox(contacts, deals)
    client = HubSpot(access_token=portal.token, host=server.url)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from connectors.sandbox.faults import FaultInjector, FaultRule
from connectors.sandbox.hubspot.app import HubSpotEmulator
from connectors.sandbox.hubspot.auth import DEFAULT_TOKEN
from connectors.sandbox.hubspot.limits import TEN_SECONDLY, RateLimits, rate_limited
from connectors.sandbox.server import SandboxServer
from core.models import Contact, Deal


def start_hubspot_sandbox(contacts: Iterable[Contact] = (), deals: Iterable[Deal] = (), *,
                          emulator: HubSpotEmulator | None = None, token: str = DEFAULT_TOKEN,
                          rate_limits: RateLimits | None = None, faults: FaultInjector | None = None,
                          db_path: Path | None = None, search_lag_ms: int = 3000, port: int = 0
                          ) -> tuple[SandboxServer, HubSpotEmulator]:
    """Seed an emulator (a default one unless given), serve it over HTTP on loopback, and return both.

    ``rate_limits`` defaults to HubSpot's Free/Starter limits (``RateLimits.off()`` for none). With ``db_path``,
    an existing SQLite snapshot is loaded before seeding. ``search_lag_ms`` is how long an edit takes to become
    searchable (HubSpot's search is eventually consistent; 0 for tests that need to see edits at once). The server
    is started; stop it with ``server.stop()`` (or use it as a context manager).
    """
    emulator = emulator or HubSpotEmulator(tokens=(token,), rate_limits=rate_limits, search_lag_ms=search_lag_ms)
    if db_path is not None and Path(db_path).exists():
        emulator.load(Path(db_path))
    emulator.seed(contacts, deals)
    server = SandboxServer(emulator, faults=faults, port=port).start()
    return server, emulator


def connection_info(server: SandboxServer, emulator: HubSpotEmulator) -> dict[str, str]:
    """What a person (``clm sandbox serve``) needs to point a client at the sandbox."""
    return {
        "base_url": server.url,
        "token": emulator.token,
        "client_id": emulator.oauth.client_id,
        "client_secret": emulator.oauth.client_secret,
        "refresh_token": emulator.oauth.refresh_token,
        "portal_id": str(emulator.portal_id),
    }


def rate_limit_burst(count: int, *, path_prefix: str = "/crm", after: int = 0, portal_id: int = 4_242_424,
                     app_id: int = 1_512_050) -> FaultRule:
    """A generic-injector rule answering ``count`` requests with HubSpot's TEN_SECONDLY_ROLLING 429 (a burst
    of throttling without having to send 100 requests first)."""
    error = rate_limited(TEN_SECONDLY, portal_id, app_id)
    return FaultRule(kind="status", path_prefix=path_prefix, status=429, body=error.body(), count=count,
                     after=after, headers={"X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
                                           "X-HubSpot-RateLimit-Max": "100", "X-HubSpot-RateLimit-Remaining": "0"})
