"""Start the EngageBay emulator on loopback, and what clients (tests, ``clm sandbox serve``) need to reach it::

    server, account = start_engagebay_sandbox(contacts, deals)
    # base_url = server.url, Authorization: account.api_key
"""

from __future__ import annotations

from collections.abc import Iterable

from connectors.sandbox.engagebay.app import EngageBayEmulator
from connectors.sandbox.faults import FaultInjector, FaultRule
from connectors.sandbox.server import SandboxServer
from core.models import Contact, Deal

#: README "Errors": the 429 body; EngageBay documents neither a limit nor a Retry-After header.
THROTTLED_BODY = {"error": "Too many requests. Please try again later."}


def start_engagebay_sandbox(contacts: Iterable[Contact] = (), deals: Iterable[Deal] = (), *,
                            emulator: EngageBayEmulator | None = None, faults: FaultInjector | None = None,
                            port: int = 0) -> tuple[SandboxServer, EngageBayEmulator]:
    """Seed an emulator (a default one unless given), serve it over HTTP on loopback, and return both.

    The server is started; stop it with ``server.stop()`` (or use it as a context manager).
    """
    emulator = emulator or EngageBayEmulator()
    emulator.seed(contacts, deals)
    server = SandboxServer(emulator, faults=faults, port=port).start()
    return server, emulator


def connection_info(server: SandboxServer, emulator: EngageBayEmulator) -> dict[str, str]:
    """What a person (``clm sandbox serve``) needs to point a client at the sandbox."""
    return {"base_url": server.url, "api_key": emulator.api_key}


def throttle_burst(count: int, *, path_prefix: str = "/dev/api/panel/", after: int = 0) -> FaultRule:
    """A generic-injector rule answering ``count`` requests with EngageBay's 429 (no Retry-After)."""
    return FaultRule(kind="status", path_prefix=path_prefix, status=429, body=THROTTLED_BODY, count=count,
                     after=after)
