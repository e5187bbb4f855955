"""Fixtures: a seeded Salesforce sandbox over HTTPS and an unchanged simple-salesforce client pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from simple_salesforce import Salesforce

from connectors.sandbox.faults import FaultInjector
from connectors.sandbox.salesforce import SalesforceEmulator, SeedResult, client_session, start_salesforce_sandbox
from connectors.sandbox.server import Request, Response, SandboxServer
from core.models import Contact, Deal, DealStatus

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def make_contacts(n: int, *, start: int = 0) -> list[Contact]:
    """Deterministic contacts with a company, a numeric score, a flag and a text property."""
    return [
        Contact(
            id=f"c{i}",
            email=f"first{i}.last{i}@example{i % 7}.com",
            created_at=T0 + timedelta(hours=i),
            updated_at=T0 + timedelta(hours=i, minutes=30),
            properties={"company": f"Company {i % 25}", "engagement_score": float(i % 100) / 4,
                        "newsletter": i % 2 == 0, "lifecyclestage": "lead" if i % 3 else "customer",
                        "industry": "Banking"},
        )
        for i in range(start, start + n)
    ]


def make_deals(n: int, contacts: int) -> list[Deal]:
    """Deals cycling won/lost/open, each with two contacts (the first primary)."""
    statuses = [DealStatus.WON, DealStatus.LOST, DealStatus.OPEN]
    return [
        Deal(
            id=f"d{i}",
            amount=1000.0 + i,
            status=statuses[i % 3],
            stage="Negotiation/Review" if i % 3 == 2 else None,
            created_at=T0 + timedelta(days=i % 200),
            closed_at=T0 + timedelta(days=i % 200 + 20) if i % 3 != 2 else None,
            contact_ids=(f"c{i % contacts}", f"c{(i + 1) % contacts}"),
        )
        for i in range(n)
    ]


@dataclass
class Sandbox:
    """A running sandbox and what tests need from it."""

    server: SandboxServer
    org: SalesforceEmulator
    seeded: SeedResult
    faults: FaultInjector

    def client(self, *, admin: bool = False, **kwargs: object) -> Salesforce:
        """simple-salesforce, unchanged, with direct session access (as the integration user, or the admin)."""
        return Salesforce(instance_url=self.server.url,
                          session_id=self.org.admin_session_id if admin else self.org.session_id,
                          session=client_session(self.server), **kwargs)

    def contact_ids(self) -> list[str]:
        return list(self.seeded.contact_ids.values())


class Switch:
    """An App that forwards to the current emulator, so one HTTPS server serves a fresh org per test.

    (Stopping a server waits for its serve loop's poll interval; reusing one keeps the suite fast.)
    """

    def __init__(self) -> None:
        self.target: SalesforceEmulator | None = None

    def handle(self, request: Request) -> Response:
        assert self.target is not None, "no emulator plugged in"
        return self.target.handle(request)


@pytest.fixture(scope="session")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One CA + server certificate for the whole session."""
    return tmp_path_factory.mktemp("sandbox-tls")


@pytest.fixture(scope="session")
def shared_server(tls_dir: Path) -> Iterator[tuple[SandboxServer, Switch, FaultInjector]]:
    """One HTTPS server for the session; tests plug their own emulator into it."""
    switch = Switch()
    faults = FaultInjector(seed=7)
    server = SandboxServer(switch, tls_dir=tls_dir, faults=faults).start()
    try:
        yield server, switch, faults
    finally:
        server.stop()


def plug(shared: tuple[SandboxServer, Switch, FaultInjector], contacts: int = 300, deals: int = 120,
         **options: Any) -> Sandbox:
    """A fresh seeded emulator served by the shared server."""
    server, switch, faults = shared
    faults.clear()
    org = SalesforceEmulator(base_url=server.url, **options)
    seeded = org.seed(make_contacts(contacts), make_deals(deals, contacts))
    switch.target = org
    return Sandbox(server, org, seeded, faults)


@pytest.fixture
def sandbox(shared_server: tuple[SandboxServer, Switch, FaultInjector]) -> Iterator[Sandbox]:
    """A small seeded org (300 contacts, 120 deals)."""
    box = plug(shared_server)
    yield box
    box.faults.clear()
    assert box.org.internal_errors == []


@pytest.fixture
def sf(sandbox: Sandbox) -> Salesforce:
    """A simple-salesforce client on the sandbox, as the integration user (no setup rights)."""
    return sandbox.client()


@pytest.fixture
def admin(sandbox: Sandbox) -> Salesforce:
    """A simple-salesforce client on the sandbox, as the org's System Administrator."""
    return sandbox.client(admin=True)


@pytest.fixture(scope="module")
def big(tls_dir: Path) -> Iterator[Sandbox]:
    """A larger org (4,500 contacts) on its own server, shared by read-only paging tests."""
    faults = FaultInjector()
    server, org = start_salesforce_sandbox(make_contacts(4500), make_deals(600, 4500), tls_dir=tls_dir,
                                           faults=faults)
    try:
        yield Sandbox(server, org, SeedResult(), faults)
    finally:
        server.stop()
