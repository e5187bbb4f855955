"""Whole-suite guard: a test fails if any HubSpot emulator received a request HubSpot's OpenAPI specs reject
during its setup or call.

Tests that send such requests on purpose (to check the emulator's 400s) say so with
``@pytest.mark.invalid_hubspot_requests``.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from connectors.sandbox.hubspot import HubSpotEmulator

MARKER = "invalid_hubspot_requests"


def pytest_configure(config: pytest.Config) -> None:
    """Register the opt-out marker (the suite runs with ``--strict-markers``)."""
    config.addinivalue_line("markers", f"{MARKER}: the test sends requests the HubSpot spec rejects on purpose")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Forget what earlier tests (or their leftover threads) sent."""
    HubSpotEmulator.take_spec_violations()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Fail the test itself (not its teardown) when a request it made did not validate, also when it failed
    otherwise: a 400 the client did not expect is the likelier cause, so it is reported first."""
    failure: Exception | None = None
    try:
        yield
    except Exception as exc:  # re-raised below unless the spec violations explain it
        failure = exc
    violations = HubSpotEmulator.take_spec_violations()
    if violations and item.get_closest_marker(MARKER) is None:
        also = f"\n(the test also failed: {failure!r:.2000})" if failure is not None else ""
        pytest.fail("requests that HubSpot's OpenAPI spec rejects (answered 400):\n" + "\n".join(violations) + also,
                    pytrace=False)
    if failure is not None:
        raise failure


# --- hostile-input counts (issue 14) ------------------------------------------------------------------------
# Hostile-input suites record each case they try and each that held (gave the clear error it should); the
# totals are printed in the test summary, so a run shows how much hostile input it covered.
HOSTILE_COUNTS: dict[str, list[int]] = {}


class HostileCounter:
    """Counts hostile cases per suite: :meth:`tried` before a case, :meth:`held` once its assertions passed."""

    def tried(self, suite: str) -> None:
        """One more case of ``suite`` tried."""
        HOSTILE_COUNTS.setdefault(suite, [0, 0])[0] += 1

    def held(self, suite: str) -> None:
        """One more case of ``suite`` held."""
        HOSTILE_COUNTS.setdefault(suite, [0, 0])[1] += 1

    def counts(self, suite: str) -> tuple[int, int]:
        """(tried, held) so far for ``suite``."""
        tried, held = HOSTILE_COUNTS.get(suite, [0, 0])
        return tried, held


@pytest.fixture(scope="session")
def hostile() -> HostileCounter:
    """The session's hostile-case counter (session-scoped, so hypothesis tests may use it)."""
    return HostileCounter()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the hostile-input counts: cases tried / held, per suite."""
    for suite, (tried, held) in sorted(HOSTILE_COUNTS.items()):
        terminalreporter.write_line(f"hostile inputs, {suite}: {tried} cases tried / {held} held")
