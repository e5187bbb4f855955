"""Fixtures for the Salesforce connector: sandbox orgs over TLS and connectors pointed at them.

Data comes from the project's generator; simple-salesforce is used unchanged (the sandbox's
``client_session`` routes ``login.salesforce.com`` to the emulator).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import FieldStatus, Page
from connectors.salesforce import SalesforceConnector
from connectors.sandbox.generator import GeneratedData, generate
from connectors.sandbox.salesforce import SalesforceEmulator, client_session, connection_info, start_salesforce_sandbox
from connectors.sandbox.server import SandboxServer
from connectors.transport import Limits, RateLimiter, Transport
from core.config import SalesforceConfig
from core.fields import OUTPUT_FIELDS
from core.models import Contact, Deal, FieldSpec

API = "59.0"
DATA = f"/services/data/v{API}"
SPECS: list[FieldSpec] = [
    s.model_copy(update={"options": ("lead", "customer")}) if s.name == "stage" else
    s.model_copy(update={"options": ("nurture", "onboard")}) if s.name == "next_best_action" else s
    for s in OUTPUT_FIELDS]
#: Salesforce fields the generator's properties land in (standard fields by alias, others as custom fields).
CONTACT_PROPS = ["FirstName", "LastName", "Title", "MailingCountry", "HasOptedOutOfEmail", "Hs_Email_Open__c",
                 "Hs_Email_Click__c", "Hs_Email_Optout__c", "Hs_Email_Last_Open_Date__c", "Lifecyclestage__c"]
DEAL_PROPS = ["Name", "Pipeline__c", "Dealstage__c", "Champion__c"]


@dataclass
class Org:
    """A running sandbox org."""

    server: SandboxServer
    emulator: SalesforceEmulator
    data: GeneratedData | None = None

    def stop(self) -> None:
        self.server.stop()

    def ids(self, sobject: str, *, deleted: bool = False) -> list[str]:
        store = self.emulator.store
        with store.lock:
            return [r["Id"] for r in store.records[sobject].values() if deleted or not r.get("IsDeleted")]

    def connector(self, *, auth: str = "token", objects: Sequence[str] = ("Contact",), bulk_threshold: int = 10**9,
                  concurrency: int = 4, attempts: int = 6, reserve: float = 0.2, page_size: int = 2000,
                  batch_size: int = 200, specs: Sequence[FieldSpec] = SPECS, monkeypatch: pytest.MonkeyPatch | None
                  = None, contact_props: Sequence[str] = CONTACT_PROPS, deal_props: Sequence[str] = DEAL_PROPS,
                  api_version: str = API, **kwargs: Any) -> SalesforceConnector:
        """A connector on this org: token auth with the emulator's session, or the other logins through env vars
        (client credentials and refresh token take the sandbox's URL as the org's My Domain)."""
        info = connection_info(self.server, self.emulator)
        settings: dict[str, Any] = {"api_version": api_version, "objects": list(objects),
                                    "bulk_threshold": bulk_threshold,
                                    "api_reserve_fraction": reserve, "page_size": page_size,
                                    "batch_size": batch_size}
        if auth == "token":
            kwargs.setdefault("instance_url", self.server.url)
            kwargs.setdefault("session_id", self.emulator.session_id)
        elif auth == "password":
            assert monkeypatch is not None
            monkeypatch.setenv("SF_TEST_USER", info["username"])
            monkeypatch.setenv("SF_TEST_PASSWORD", info["password"])
            monkeypatch.setenv("SF_TEST_SECURITY_TOKEN", info["security_token"])
            settings.update(auth="password", username_env="SF_TEST_USER", password_env="SF_TEST_PASSWORD",
                            security_token_env="SF_TEST_SECURITY_TOKEN")
        elif auth in ("client_credentials", "refresh_token"):
            assert monkeypatch is not None
            creds = self.emulator.credentials
            monkeypatch.setenv("SF_TEST_MY_DOMAIN", self.server.url)
            monkeypatch.setenv("SF_TEST_CONSUMER_KEY", creds.consumer_key)
            monkeypatch.setenv("SF_TEST_CONSUMER_SECRET", creds.consumer_secret)
            monkeypatch.setenv("SF_TEST_REFRESH_TOKEN", creds.refresh_token)
            settings.update(auth=auth, instance_url_env="SF_TEST_MY_DOMAIN", consumer_key_env="SF_TEST_CONSUMER_KEY",
                            consumer_secret_env="SF_TEST_CONSUMER_SECRET")
            if auth == "refresh_token":
                settings.update(refresh_token_env="SF_TEST_REFRESH_TOKEN")
        else:
            settings.update(auth="jwt", username_env="SF_TEST_USER", consumer_key_env="SF_TEST_CONSUMER_KEY",
                            private_key_file_env="SF_TEST_KEY_FILE")
        transport = kwargs.pop("transport", None) or Transport(
            RateLimiter(Limits(1000, 1.0)), attempts=attempts, concurrency=concurrency, backoff_base=0.02)
        return SalesforceConnector(
            SalesforceConfig(**settings), contact_properties=contact_props, deal_properties=deal_props,
            owned_fields=specs, session=client_session(self.server), transport=transport, poll_interval=0.01,
            lock_backoff=0.01, **kwargs)


    def admin_ensure(self, conn: SalesforceConnector, specs: Sequence[FieldSpec] = SPECS) -> list[FieldStatus]:
        """``clm fields ensure`` as the org's admin on ``conn``'s objects, granting the integration user."""
        admin = self.connector(objects=conn.config.objects, specs=specs, session_id=self.emulator.admin_session_id,
                               assign_to=self.emulator.store.org.username)
        return admin.ensure_fields(specs)


def start(contacts: Iterable[Contact], deals: Iterable[Deal], tls_dir: Path, **emulator: Any) -> Org:
    """Seed a fresh org and serve it over HTTPS."""
    org = SalesforceEmulator(**emulator)
    server, org = start_salesforce_sandbox(contacts, deals, tls_dir=tls_dir, emulator=org)
    return Org(server, org)


def generated(n: int, tls_dir: Path, *, seed: int = 3, deals: bool = True, **emulator: Any) -> Org:
    """An org seeded with ``n`` generated contacts (and their deals)."""
    data = generate(n, seed=seed, as_of=datetime(2026, 1, 1, tzinfo=UTC))
    org = start(data.contact_records(), data.deal_records() if deals else (), tls_dir, **emulator)
    org.data = data
    return org


def pull_all(conn: SalesforceConnector, cursor: dict[str, str] | None) -> tuple[list[Page], dict[str, str]]:
    """Every page of one pull and the cursor after it (as the sync stores it, page by page)."""
    pages = list(conn.pull(cursor))
    after = dict(cursor or {})
    for page in pages:
        after.update(page.cursor)
    return pages, after


@pytest.fixture(scope="session")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One CA and server certificate for the session."""
    return tmp_path_factory.mktemp("sf-connector-tls")


@pytest.fixture
def small(tls_dir: Path) -> Iterator[Org]:
    """500 generated contacts with their deals."""
    org = generated(500, tls_dir)
    yield org
    org.stop()
    assert org.emulator.internal_errors == []
