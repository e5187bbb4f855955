"""Fixtures: a HubSpot sandbox over real HTTP, the official client pointed at it, and a check of every response
against HubSpot's published OpenAPI specs (:mod:`connectors.sandbox.hubspot.spec`, the same loaded specs the
emulator validates requests with).

Every response the emulator sends during these tests passes through :class:`SpecChecked`, which validates it
against the matching operation of the official spec (openapi-core); a test fails at teardown if any did not.
When the specs are absent, responses are not validated and ``test_spec_files_present`` skips saying so.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import urllib3
from hubspot import HubSpot

from connectors.sandbox.faults import FaultInjector
from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits, SeedResult
from connectors.sandbox.hubspot.spec import Specs, load_specs
from connectors.sandbox.server import Request, Response, SandboxServer
from core.models import Contact, Deal, DealStatus

T0 = datetime(2024, 1, 1, tzinfo=UTC)


class SpecChecked:
    """An App that forwards to the current emulator and validates every response it sends."""

    def __init__(self, validator: Specs | None) -> None:
        self.validator = validator
        self.target: HubSpotEmulator | None = None
        self.failures: list[str] = []
        self.checked = 0

    def handle(self, request: Request) -> Response:
        assert self.target is not None, "no emulator plugged in"
        response = self.target.handle(request)
        if self.validator is not None:
            problems = self.validator.response_problems(request, response)
            self.checked += 1
            self.failures.extend(problems)
        return response


@dataclass
class Box:
    """A running sandbox and what tests need from it."""

    server: SandboxServer
    hub: HubSpotEmulator
    faults: FaultInjector
    seeded: SeedResult = field(default_factory=SeedResult)

    def client(self, token: str | None = None) -> HubSpot:
        """The official client, unchanged, with urllib3's own retries off so faults are visible."""
        return HubSpot(access_token=token or self.hub.token, host=self.server.url,
                       retry=urllib3.Retry(total=0, redirect=0))

    def contact_ids(self) -> list[str]:
        return self.hub.ids("contacts")

    def deal_ids(self) -> list[str]:
        return self.hub.ids("deals")


def make_contacts(n: int, *, start: int = 0) -> list[Contact]:
    """Deterministic contacts with a company, a numeric score, a flag and a lifecycle stage."""
    return [
        Contact(
            id=str(1000 + i),
            email=f"person{i}@example{i % 5}.com",
            created_at=T0 + timedelta(hours=i),
            updated_at=T0 + timedelta(hours=i, minutes=30),
            properties={"firstname": f"First{i}", "lastname": f"Last{i}", "company": f"Company {i % 7}",
                        "engagement_score": float(i % 40) / 4, "newsletter": i % 2 == 0,
                        "lifecyclestage": "lead" if i % 3 else "customer"},
        )
        for i in range(start, start + n)
    ]


def make_deals(n: int, contacts: int) -> list[Deal]:
    """Deals cycling won/lost/open, each with one or two contacts."""
    statuses = [DealStatus.WON, DealStatus.LOST, DealStatus.OPEN]
    return [
        Deal(
            id=str(5000 + i),
            amount=1000.0 + i * 10.5,
            currency="EUR" if i % 2 else "USD",
            status=statuses[i % 3],
            stage="contractsent" if i % 6 == 2 else None,
            created_at=T0 + timedelta(days=i % 100),
            closed_at=T0 + timedelta(days=i % 100 + 20) if i % 3 != 2 else None,
            contact_ids=(str(1000 + i % contacts),) if i % 4 else (str(1000 + i % contacts),
                                                                  str(1000 + (i + 1) % contacts)),
        )
        for i in range(n)
    ]


@pytest.fixture(scope="session")
def validator() -> Specs | None:
    """The loaded specs, or None when they (or openapi-core) are not there."""
    specs = load_specs()
    return specs if specs.enabled else None


@pytest.fixture(scope="session")
def shared_server(validator: Specs | None) -> Iterator[tuple[SandboxServer, SpecChecked, FaultInjector]]:
    """One HTTP server for the session; tests plug their own emulator into it."""
    app = SpecChecked(validator)
    faults = FaultInjector(seed=11)
    server = SandboxServer(app, faults=faults).start()
    try:
        yield server, app, faults
    finally:
        server.stop()


def plug(shared: tuple[SandboxServer, SpecChecked, FaultInjector], contacts: int = 40, deals: int = 30,
         **options: Any) -> Box:
    """A fresh seeded emulator served by the shared server (rate limits off unless given)."""
    server, app, faults = shared
    faults.clear()
    options.setdefault("rate_limits", RateLimits.off())
    hub = HubSpotEmulator(**options)
    seeded = hub.seed(make_contacts(contacts), make_deals(deals, max(contacts, 1)))
    app.target = hub
    return Box(server, hub, faults, seeded)


@pytest.fixture
def plugin(shared_server: tuple[SandboxServer, SpecChecked, FaultInjector]) -> Iterator[Any]:
    """``plugin(**options)`` plugs a fresh emulator; teardown checks spec conformance and emulator health."""
    _, app, faults = shared_server
    boxes: list[Box] = []

    def make(contacts: int = 40, deals: int = 30, **options: Any) -> Box:
        box = plug(shared_server, contacts, deals, **options)
        boxes.append(box)
        return box

    app.failures.clear()
    yield make
    faults.clear()
    # A request the test gave up on (an injected timeout) is still answered by this test's emulator.
    assert shared_server[0].wait_idle(), "a request to the sandbox never finished"
    failures = list(app.failures)
    app.failures.clear()
    for box in boxes:
        assert box.hub.internal_errors == []
    assert failures == [], "responses that do not match HubSpot's OpenAPI spec:\n" + "\n".join(failures)


@pytest.fixture
def box(plugin: Any) -> Box:
    """A small seeded portal (40 contacts, 30 deals), rate limits off."""
    result: Box = plugin()
    return result


@pytest.fixture
def client(box: Box) -> HubSpot:
    """The official client on the sandbox."""
    return box.client()


class FakeClock:
    """A settable clock for rate-limit windows."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
