"""A local emulator of the HubSpot CRM APIs our connector uses, for tests, benchmarks and ``clm demo``.

CRM v3 objects (contacts, deals: list, read, create, update, archive, batch read/create/update/upsert/archive,
merge, search), properties and property groups, v4 association batch reads, private app and OAuth tokens,
HubSpot's rate limits with their headers and 429 bodies, and injectable faults — close enough that the official
``hubspot-api-client`` works against it unchanged::

    server, portal = start_hubspot_sandbox(contacts, deals)
    client = HubSpot(access_token=portal.token, host=server.url)
"""

from connectors.sandbox.hubspot.app import RECORD_FAULTS, REQUEST_FAULTS, HubSpotEmulator
from connectors.sandbox.hubspot.auth import DEFAULT_TOKEN, OAuthApp
from connectors.sandbox.hubspot.errors import ApiError
from connectors.sandbox.hubspot.limits import DAILY, SEARCH_SECONDLY, TEN_SECONDLY, RateLimits
from connectors.sandbox.hubspot.sandbox import connection_info, rate_limit_burst, start_hubspot_sandbox
from connectors.sandbox.hubspot.store import ASSOCIATION_TYPE_IDS, SeedResult
from connectors.sandbox.hubspot.values import ValueProblem

__all__ = [
    "ASSOCIATION_TYPE_IDS",
    "DAILY",
    "DEFAULT_TOKEN",
    "RECORD_FAULTS",
    "REQUEST_FAULTS",
    "SEARCH_SECONDLY",
    "TEN_SECONDLY",
    "ApiError",
    "HubSpotEmulator",
    "OAuthApp",
    "RateLimits",
    "SeedResult",
    "ValueProblem",
    "connection_info",
    "rate_limit_burst",
    "start_hubspot_sandbox",
]
