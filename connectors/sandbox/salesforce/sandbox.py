"""Start the emulator over HTTPS, and build a ``requests`` session that simple-salesforce can use unchanged.

simple-salesforce only speaks ``https://``: direct access takes ``instance_url`` + ``session_id`` and works
against the loopback URL as is. Its logins build fixed URLs instead — ``https://{domain}.salesforce.com/
services/Soap/u/59.0`` for username + password + security token, ``…/services/oauth2/token`` for the OAuth
flows — so :func:`client_session` mounts a transport adapter that sends any ``*.salesforce.com`` request to the
sandbox. The SOAP login then answers a ``serverUrl`` on the sandbox, and the client continues there. No
client code changes: the session is passed with ``Salesforce(..., session=client_session(server))``.

The session trusts the sandbox CA with ``trust_env = False``: with ``REQUESTS_CA_BUNDLE`` set in the
environment, requests ignores ``Session.verify`` otherwise (psf/requests#3829).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import requests.adapters

from connectors.sandbox.faults import FaultInjector
from connectors.sandbox.salesforce.app import SalesforceEmulator
from connectors.sandbox.server import SandboxServer
from core.models import Contact, Deal, FieldType


def start_salesforce_sandbox(contacts: Iterable[Contact] = (), deals: Iterable[Deal] = (), *, tls_dir: Path,
                             emulator: SalesforceEmulator | None = None,
                             faults: FaultInjector | None = None,
                             deal_properties: Mapping[str, FieldType] | None = None, port: int = 0,
                             ) -> tuple[SandboxServer, SalesforceEmulator]:
    """Seed an emulator (a default one unless given), serve it over HTTPS on loopback, and return both.

    The server is started; stop it with ``server.stop()`` (or use it as a context manager). ``deal_properties``:
    see :func:`connectors.sandbox.salesforce.seed.seed`.
    """
    emulator = emulator or SalesforceEmulator()
    emulator.seed(contacts, deals, deal_properties=deal_properties)
    server = SandboxServer(emulator, tls_dir=tls_dir, faults=faults, port=port).start()
    emulator.base_url = server.url
    return server, emulator


class _LoopbackRoute(requests.adapters.HTTPAdapter):
    """A transport adapter that rewrites ``*.salesforce.com`` URLs to the sandbox, then sends as usual."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base = urlsplit(base_url)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url or "")
        host = parts.hostname or ""
        if host == "salesforce.com" or host.endswith(".salesforce.com"):
            # Keep the Host the client asked for: the emulator answers some flows only on a My Domain (urllib3
            # sends an explicit Host header instead of the connection's host).
            request.headers["Host"] = parts.netloc
            request.url = urlunsplit((self.base.scheme, self.base.netloc, parts.path, parts.query, parts.fragment))
        return super().send(request, *args, **kwargs)


def client_session(server: SandboxServer) -> requests.Session:
    """A ``requests.Session`` trusting the sandbox CA and routing Salesforce login hosts to the sandbox."""
    session = requests.Session()
    session.trust_env = False
    if server.ca_path is not None:
        session.verify = str(server.ca_path)
    session.mount("https://", _LoopbackRoute(server.url))
    return session


def connection_info(server: SandboxServer, emulator: SalesforceEmulator) -> dict[str, str]:
    """What a person (``clm sandbox serve``) needs to point a client at the sandbox."""
    creds = emulator.credentials
    return {
        "instance_url": server.url,
        "session_id": emulator.session_id,
        "admin_session_id": emulator.admin_session_id,
        "ca_path": str(server.ca_path or ""),
        "api_version": "59.0",
        "username": creds.username,
        "password": creds.password,
        "security_token": creds.security_token,
        "consumer_key": creds.consumer_key,
        "consumer_secret": creds.consumer_secret,
    }
