"""The EngageBay connector: pulls contacts and deals and writes our ``clm_*`` custom fields back, on ``httpx``
against EngageBay's REST API (github.com/engagebay/restapi) through the shared transport. Each concern lives in
its own module: :mod:`.client` (calls, errors), :mod:`.pull`, :mod:`.records`, :mod:`.fields`, :mod:`.writer`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence

from connectors.base import CheckResult, FieldStatus, FieldUpdate, Page, WriteResult
from connectors.engagebay.client import EngageBayClient
from connectors.engagebay.fields import Fields
from connectors.engagebay.pull import Puller
from connectors.engagebay.records import DateText
from connectors.engagebay.writer import Writer
from connectors.transport import Limits, RateLimiter, Transport
from core.config import EngageBayConfig
from core.models import FieldSpec


def pace(requests_per_minute: int) -> Limits:
    """Our pace for an account: ``requests_per_minute``, spread as a sixth of it per 10 seconds.

    EngageBay publishes no limit (README "Errors": 429, "contact EngageBay support"), so its window is unknown;
    the harder case is a short one, which a minute's whole allowance sent in the first seconds (what a 60-second
    window lets out) would trip. Never more than ``requests_per_minute`` in any minute either way.
    """
    return Limits(max(1, requests_per_minute // 6), 10.0)


class EngageBayConnector:
    """Pulls contacts and deals from EngageBay and writes our ``clm_*`` custom fields back."""

    name = "engagebay"
    #: EngageBay has no batch update (:mod:`connectors.engagebay.writer`).
    writes_one_record_per_call = True

    def __init__(self, config: EngageBayConfig, *, owned_fields: Sequence[FieldSpec] = (),
                 api_key: str | None = None, transport: Transport | None = None, timeout: float = 30.0,
                 wall: Callable[[], float] = time.time) -> None:
        self.config = config
        self.batch_size = config.batch_size
        self.transport = transport or Transport(RateLimiter(pace(config.requests_per_minute)),
                                                concurrency=config.max_concurrency)
        self.client = EngageBayClient(config, self.transport, api_key=api_key, timeout=timeout)
        dates = DateText(config.date_format, config.timezone)
        self.puller = Puller(self.client, config, dates, wall=wall)
        self.fields = Fields(self.client, self.crm_field_name)
        self.writer = Writer(self.client, {s.name: s for s in owned_fields}, self.crm_field_name,
                             config.batch_size, dates)

    @property
    def deadline(self) -> float | None:
        """When waiting on the CRM gives up (:attr:`connectors.base.Connector.deadline`); kept by the transport,
        which every wait (a 429 pause included) asks how long it may still take."""
        return self.transport.deadline

    @deadline.setter
    def deadline(self, value: float | None) -> None:
        self.transport.deadline = value

    @property
    def timeout(self) -> float:
        """Seconds each request may take before it counts as a (retried) timeout."""
        return self.client.timeout

    @timeout.setter
    def timeout(self, value: float) -> None:
        self.client.timeout = value

    def crm_field_name(self, logical: str) -> str:
        """Our logical field name as an EngageBay custom field name (``stage`` -> ``clm_stage``)."""
        return f"{self.config.field_prefix}{logical}"

    def pull(self, cursor: Mapping[str, str] | None) -> Iterator[Page]:
        """Pages of contacts and deals, each with the cursor to store once it is in the mirror
        (see :mod:`connectors.engagebay.pull`)."""
        return self.puller.pull(cursor)

    def ensure_fields(self, specs: Sequence[FieldSpec]) -> list[FieldStatus]:
        """Make sure our custom fields exist on contacts with the right types."""
        return self.fields.ensure(specs)

    def write(self, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        """Partially update each contact with our fields; every record gets a result, in input order."""
        return self.writer.write(updates)

    def crm_properties(self, object_type: str) -> dict[str, str]:
        """Every field of ``contact`` or ``deal`` records (system and custom): name -> EngageBay's type."""
        return self.fields.properties(object_type)

    def check(self, specs: Sequence[FieldSpec]) -> list[CheckResult]:
        """Key, reachability and our custom fields, each with a fix."""
        return self.fields.check(specs, self.config.base_url)
