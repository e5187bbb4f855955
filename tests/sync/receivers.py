"""Local receivers for the alert tests: an HTTP endpoint (Slack-shaped or generic webhook) and an SMTP server.

The SMTP receiver is written here on ``socketserver`` rather than taken from the standard library: ``smtpd`` is
deprecated since 3.6 and removed in 3.12 (PEP 594), so tests on it would break on the next Python, and aiosmtpd is
not one of our dependencies. It speaks the part of RFC 5321 that ``smtplib`` uses (EHLO/HELO, AUTH PLAIN, MAIL,
RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT) and can answer a command with a chosen reply to test failures.
"""

from __future__ import annotations

import base64
import json
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class HttpReceiver:
    """What the HTTP endpoint received, and the statuses it answers with (the last one repeats)."""

    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=lambda: [200])
    retry_after: str | None = None


@contextmanager
def http_receiver(path: str = "/hook") -> Iterator[HttpReceiver]:
    """An HTTP server on 127.0.0.1 recording each JSON POST; answers Slack's ``ok`` on 200."""
    received = HttpReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            received.paths.append(self.path)
            received.bodies.append(json.loads(raw) if raw else {})
            status = received.statuses[min(len(received.bodies), len(received.statuses)) - 1]
            text = b"ok" if status == 200 else b"invalid_payload" if status == 400 else b"busy"
            self.send_response(status)
            if status == 429 and received.retry_after is not None:
                self.send_header("Retry-After", received.retry_after)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    received.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Mail:
    """One message the SMTP receiver accepted."""

    sender: str
    recipients: list[str]
    message: Message
    login: tuple[str, str] | None


@dataclass
class SmtpReceiver:
    """Messages accepted; ``replies`` overrides the answer to a command (e.g. ``{"MAIL": "451 try later"}``)
    for its first ``fail_times`` uses."""

    port: int = 0
    mails: list[Mail] = field(default_factory=list)
    replies: dict[str, str] = field(default_factory=dict)
    fail_times: int = 1
    sessions: int = 0


@contextmanager
def smtp_receiver() -> Iterator[SmtpReceiver]:
    """A minimal SMTP server on 127.0.0.1 (no TLS: the tests use ``security = "none"`` on loopback)."""
    received = SmtpReceiver()
    lock = threading.Lock()

    class Handler(socketserver.StreamRequestHandler):
        def reply(self, line: str) -> None:
            self.wfile.write(line.encode() + b"\r\n")

        def handle(self) -> None:
            with lock:
                received.sessions += 1
            self.reply("220 localhost test SMTP")
            sender, recipients, login = "", [], None
            while True:
                raw = self.rfile.readline()
                if not raw:
                    return
                line = raw.decode().rstrip("\r\n")
                verb = line.split(" ", 1)[0].upper()
                with lock:
                    override = received.replies.get(verb) if received.fail_times > 0 else None
                    if override:
                        received.fail_times -= 1
                if override:
                    self.reply(override)
                    continue
                if verb == "EHLO":
                    self.reply("250-localhost")
                    self.reply("250-AUTH PLAIN")
                    self.reply("250 8BITMIME")
                elif verb == "HELO":
                    self.reply("250 localhost")
                elif verb == "AUTH":
                    parts = line.split(" ")
                    decoded = base64.b64decode(parts[2]).split(b"\0") if len(parts) > 2 else []
                    if len(decoded) == 3:
                        login = (decoded[1].decode(), decoded[2].decode())
                        self.reply("235 2.7.0 Authentication successful")
                    else:
                        self.reply("535 5.7.8 Authentication credentials invalid")
                elif verb == "MAIL":
                    sender, recipients = line.split(":", 1)[1].strip().split(" ")[0].strip("<>"), []
                    self.reply("250 OK")
                elif verb == "RCPT":
                    recipients.append(line.split(":", 1)[1].strip().strip("<>"))
                    self.reply("250 OK")
                elif verb == "DATA":
                    self.reply("354 End data with <CR><LF>.<CR><LF>")
                    lines = []
                    while True:
                        data = self.rfile.readline()
                        if data in (b".\r\n", b""):
                            break
                        lines.append(data[1:] if data.startswith(b"..") else data)
                    with lock:
                        received.mails.append(Mail(sender, recipients, message_from_bytes(b"".join(lines)), login))
                    self.reply("250 OK queued")
                elif verb in ("RSET", "NOOP"):
                    self.reply("250 OK")
                elif verb == "QUIT":
                    self.reply("221 Bye")
                    return
                else:
                    self.reply("502 Command not implemented")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    received.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()
