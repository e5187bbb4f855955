"""Fixtures: a HubSpot sandbox over real HTTP, the official client pointed at it, and a check of every response
against HubSpot's published OpenAPI specs (``<repo>/../shared/specs/hubspot``).

Every response the emulator sends during these tests passes through :class:`SpecChecked`, which validates it
against the matching operation of the official spec (openapi-core); a test fails at teardown if any did not.
When the specs are absent, responses are not validated and ``test_spec_files_present`` skips saying so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import urllib3
from hubspot import HubSpot

from connectors.sandbox.faults import FaultInjector
from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits, SeedResult
from connectors.sandbox.server import Request, Response, SandboxServer
from core.models import Contact, Deal, DealStatus

SPECS = Path(__file__).resolve().parents[4].parent / "shared" / "specs" / "hubspot"
SPEC_FILES = {"contacts": "contacts-v3.json", "deals": "deals-v3.json", "properties": "properties-v3.json",
              "associations": "associations-v4.json"}
T0 = datetime(2024, 1, 1, tzinfo=UTC)


class SpecValidator:
    """Validates emulator responses against the official HubSpot OpenAPI files."""

    def __init__(self, root: Path) -> None:
        from openapi_core import OpenAPI

        # The specs declare error bodies as media type "*/*", which openapi-core cannot deserialize; HubSpot (and
        # the emulator) send them as application/json, so they are validated as that. Nothing else is changed.
        self.specs = {name: OpenAPI.from_dict(json.loads((root / file).read_text().replace('"*/*"',
                                                                                            '"application/json"')))
                      for name, file in SPEC_FILES.items()}

    def errors(self, request: Request, response: Response) -> list[str]:
        """Why a response does not match its operation in the spec (empty when it does or has none)."""
        from openapi_core.testing import MockRequest, MockResponse

        path = request.path.rstrip("/")
        if path.startswith("/crm/v3/objects/contacts"):
            spec = self.specs["contacts"]
        elif path.startswith(("/crm/v3/objects/deals", "/crm/v3/objects/0-3")):
            # The deals spec names the object type by its id: /crm/v3/objects/0-3/...
            spec = self.specs["deals"]
            if path.startswith("/crm/v3/objects/deals"):
                path = "/crm/v3/objects/0-3" + path[len("/crm/v3/objects/deals"):]
        elif path.startswith("/crm/v3/properties"):
            spec = self.specs["properties"]
        elif path.startswith("/crm/v4/associations"):
            spec = self.specs["associations"]
        else:
            return []
        if response.status == 204 and not response.body:
            return []  # a 204 has no body to validate (openapi-core insists on data for "content": {})
        content_type = response.headers.get("Content-Type", "application/json").lower()
        mock_request = MockRequest("https://api.hubapi.com", request.method.lower(), path,
                                   args={k: v[0] for k, v in request.query.items()}, data=request.body or None,
                                   headers={"Authorization": "Bearer x"})
        mock_response = MockResponse(response.body, status_code=response.status, headers=response.headers,
                                     content_type=content_type.split(";")[0] if response.body else "application/json")
        try:
            spec.validate_response(mock_request, mock_response)
        except Exception as exc:  # the validator raises a tree of schema errors: keep them all
            causes = [str(exc)]
            cause = exc.__cause__
            while cause is not None:
                causes.append(str(cause)[:600])
                cause = cause.__cause__
            return [f"{request.method} {request.path} -> {response.status}: {' / '.join(causes)}"]
        return []


class SpecChecked:
    """An App that forwards to the current emulator and validates every response it sends."""

    def __init__(self, validator: SpecValidator | None) -> None:
        self.validator = validator
        self.target: HubSpotEmulator | None = None
        self.failures: list[str] = []
        self.checked = 0

    def handle(self, request: Request) -> Response:
        assert self.target is not None, "no emulator plugged in"
        response = self.target.handle(request)
        if self.validator is not None:
            problems = self.validator.errors(request, response)
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
def validator() -> SpecValidator | None:
    """The spec validator, or None when the shared specs are not there."""
    return SpecValidator(SPECS) if SPECS.is_dir() else None


@pytest.fixture(scope="session")
def shared_server(validator: SpecValidator | None) -> Iterator[tuple[SandboxServer, SpecChecked, FaultInjector]]:
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
