"""A HubSpot sandbox in its own process, for tests that measure throughput against the rate-limit bound.

An in-process sandbox shares the client's interpreter lock and heap: late in a full suite (module fixtures and
earlier tests' objects alive, so every garbage collection scans more) its request handling slowed a write the
limiter should pace at 1,000 records/s to 839/s, and the test measured the suite, not the connector. In a child
process the emulator has its own interpreter, as HubSpot has its own servers, and the client's figure is the
client's. Spec violations the child saw are handed back and fail the test like the in-process guard does.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from multiprocessing.connection import Connection
from typing import Any

from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits


def _serve(pipe: Connection, contacts: int, seed: int, rate_limits: RateLimits) -> None:
    from connectors.sandbox.generator import generate
    from connectors.sandbox.hubspot import start_hubspot_sandbox

    data = generate(contacts, seed=seed)
    server, emulator = start_hubspot_sandbox(data.contact_records(), (), rate_limits=rate_limits)
    HubSpotEmulator.take_spec_violations()  # seeding is not a request
    pipe.send({"url": server.url, "token": emulator.token, "ids": emulator.ids("contacts")})
    answers = {
        "throttled": lambda: dict(emulator.throttled),
        "max_writes_per_record": emulator.max_writes_per_record,
        "spec_violations": HubSpotEmulator.take_spec_violations,
    }
    try:
        with contextlib.suppress(EOFError):  # the parent went away: stop serving
            while (question := pipe.recv()) != "stop":
                pipe.send(answers[question]())
    finally:
        server.stop()


class HubSpotProcess:
    """A seeded HubSpot sandbox served by a child process; use as a context manager."""

    def __init__(self, contacts: int, *, seed: int, rate_limits: RateLimits) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, contacts, seed, rate_limits), daemon=True)
        self._process.start()
        child.close()  # a child that dies before answering ends recv() with EOFError, not a hang
        info: dict[str, Any] = self._pipe.recv()
        self.url: str = info["url"]
        self.token: str = info["token"]
        self.ids: list[str] = info["ids"]

    def ask(self, question: str) -> Any:
        """``throttled`` (429s sent, by policy), ``max_writes_per_record`` or ``spec_violations``."""
        self._pipe.send(question)
        return self._pipe.recv()

    def stop(self) -> None:
        """Stop serving and wait for the child to exit."""
        with contextlib.suppress(BrokenPipeError, OSError):
            self._pipe.send("stop")
        self._process.join(30)
        if self._process.is_alive():
            self._process.kill()

    def __enter__(self) -> HubSpotProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
