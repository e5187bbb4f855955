"""A local emulator of the EngageBay REST API paths our connector uses, for tests, benchmarks and ``clm demo``.

Contacts (list by cursor, read, create, partial update, delete), deals by track, tracks, custom fields per scope,
the REST API key, XML answers without ``Accept: application/json``, 429s and injectable faults, as EngageBay's
README (github.com/engagebay/restapi) documents them::

    server, account = start_engagebay_sandbox(contacts, deals)
"""

from connectors.sandbox.engagebay.app import RECORD_FAULTS, EngageBayEmulator
from connectors.sandbox.engagebay.sandbox import connection_info, start_engagebay_sandbox, throttle_burst
from connectors.sandbox.engagebay.store import DEFAULT_KEY, Account

__all__ = [
    "DEFAULT_KEY",
    "RECORD_FAULTS",
    "Account",
    "EngageBayEmulator",
    "connection_info",
    "start_engagebay_sandbox",
    "throttle_burst",
]
