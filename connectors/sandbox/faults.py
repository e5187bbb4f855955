"""Fault injection for the emulators: latency, error bursts, timeouts and dropped connections.

Rules are matched per method and path prefix and drawn from a seeded RNG, so a fault matrix test is
repeatable. Emulator-specific faults (expired token, daily limit, partial batch failures, records vanishing
between read and write) are produced by the emulators themselves from ``FaultRule.kind``.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connectors.sandbox.server import Response

#: The kinds this injector applies itself; emulators apply their own kinds through :meth:`FaultInjector.take`.
GENERIC_KINDS = frozenset({"latency", "status", "timeout", "drop"})

DROP = object()
"""Returned by :meth:`FaultInjector.before` when the connection must be closed without an answer."""


@dataclass
class FaultRule:
    """One kind of fault on the requests that match ``method`` (``*`` for any) and ``path_prefix``.

    kind: ``latency`` (sleep ``seconds`` then answer normally), ``status`` (answer ``status`` with
    ``body``/``headers``), ``timeout`` (sleep ``seconds`` — longer than the client's timeout — then
    answer), ``drop`` (close the connection). ``rate`` is the probability per matching request;
    ``count`` limits how many times it fires (``None``: unlimited); ``after`` skips that many matches first.
    """

    kind: str
    path_prefix: str = "/"
    method: str = "*"
    rate: float = 1.0
    count: int | None = None
    after: int = 0
    seconds: float = 0.0
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    fired: int = 0
    seen: int = 0


class FaultInjector:
    """Holds the active fault rules of one server; thread-safe."""

    def __init__(self, seed: int = 0) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    def add(self, rule: FaultRule) -> FaultRule:
        """Activate a rule; returns it so a test can read ``fired`` afterwards."""
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()

    def _fires(self, rule: FaultRule, method: str, path: str) -> bool:
        """Whether ``rule`` fires for this request (counts it as seen/fired); call with the lock held."""
        if rule.method not in ("*", method) or not path.startswith(rule.path_prefix):
            return False
        rule.seen += 1
        if rule.seen <= rule.after or (rule.count is not None and rule.fired >= rule.count):
            return False
        if self._rng.random() >= rule.rate:
            return False
        rule.fired += 1
        return True

    def take(self, kinds: Iterable[str], method: str, path: str) -> FaultRule | None:
        """The first rule of one of ``kinds`` that fires for this request (emulator-specific faults)."""
        wanted = set(kinds)
        with self._lock:
            for rule in self._rules:
                if rule.kind in wanted and self._fires(rule, method, path):
                    return rule
        return None

    def before(self, method: str, path: str) -> Response | object | None:
        """Decide the fate of a request: ``None`` (serve it), a ``Response`` to send instead, or ``DROP``."""
        from connectors.sandbox.server import Response

        delay = 0.0
        outcome: Response | object | None = None
        with self._lock:
            for rule in self._rules:
                if rule.kind not in GENERIC_KINDS or not self._fires(rule, method, path):
                    continue
                if rule.kind in ("latency", "timeout"):
                    delay += rule.seconds
                elif rule.kind == "drop":
                    outcome = DROP
                elif rule.kind == "status" and outcome is None:
                    outcome = Response.json(rule.status, rule.body or {"message": "injected fault"}, rule.headers)
        if delay:
            time.sleep(delay)
        return outcome
