"""A small threaded HTTP(S) server that hosts one emulator app on loopback.

Both CRM emulators are plain ``App`` objects (``handle(Request) -> Response``); this module owns sockets,
threads, keep-alive, TLS and fault injection so the emulators only describe their CRM's behaviour.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from connectors.sandbox.faults import DROP, FaultInjector


@dataclass
class Request:
    """One HTTP request as the emulator sees it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON (``None`` when empty)."""
        return json.loads(self.body) if self.body else None

    def param(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Response:
    """What the emulator answers."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        """A JSON response."""
        merged = {"Content-Type": "application/json;charset=utf-8", **(headers or {})}
        return cls(status, json.dumps(payload, separators=(",", ":")).encode(), merged)


class App(Protocol):
    """An emulator: turns a request into a response. Must be thread-safe."""

    def handle(self, request: Request) -> Response: ...


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the official clients' connection pools expect
    # Headers and body leave in separate writes: with Nagle on, the body waits for the client's delayed ACK
    # (~40 ms per request, capping a keep-alive client at ~25 requests/s).
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging; the emulator keeps its own counters."""

    def _serve(self) -> None:
        with self.server.in_flight_lock:
            self.server.in_flight += 1
        try:
            self._answer()
        finally:
            with self.server.in_flight_lock:
                self.server.in_flight -= 1

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        # The app that received the request answers it, even if a test plugs another one while an injected
        # latency or timeout holds it (else a timed-out request of one test lands in the next test's emulator,
        # eating its rate-limit window: the flaky 429-header test).
        app = self.server.app
        injected = self.server.faults.before(request.method, request.path)
        if injected is DROP:
            # A dropped connection: close without a response, as a failing load balancer would.
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        response = injected if isinstance(injected, Response) else app.handle(request)
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if request.method != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, app: App, faults: FaultInjector, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.app = app
        self.faults = faults
        self.in_flight = 0
        self.in_flight_lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Print unexpected errors, but not a client closing its keep-alive connection (that is normal)."""
        if isinstance(sys.exc_info()[1], ConnectionResetError | BrokenPipeError):
            return
        super().handle_error(request, client_address)


class SandboxServer:
    """Runs an emulator app on a free loopback port in a background thread.

    Use as a context manager (tests) or ``start()``/``stop()`` (``clm sandbox serve``). With ``tls_dir``,
    serves HTTPS with a certificate signed by a CA generated there (``ca_path``) so clients that only
    speak https (simple-salesforce) can trust it through ``verify=ca_path``.
    """

    def __init__(self, app: App, *, tls_dir: Path | None = None, faults: FaultInjector | None = None,
                 port: int = 0) -> None:
        self.app = app
        self.faults = faults or FaultInjector()
        # port 0: any free port (tests); a fixed one keeps a user's base_url valid across restarts.
        self._server = _Server(app, self.faults, port)
        self.ca_path: Path | None = None
        if tls_dir is not None:
            from connectors.sandbox.tls import make_certificates

            certs = make_certificates(tls_dir)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(certs.cert_path, certs.key_path)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.ca_path = certs.ca_path
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        scheme = "https" if self.ca_path else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request is being answered (one held by an injected latency or timeout included), so a
        test that swaps the app behind the server never has an earlier test's request land in it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._server.in_flight_lock:
                if self._server.in_flight == 0:
                    return True
            time.sleep(0.01)
        return False

    def start(self) -> SandboxServer:
        """Start serving in a daemon thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until true or timeout (for tests waiting on server-side effects)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())
