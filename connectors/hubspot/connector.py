"""The HubSpot connector: pulls contacts and deals and writes our ``clm_*`` properties back, on the official
``hubspot-api-client`` (CRM v3 objects, search, batch, properties; v4 associations) through the shared
transport. Each concern lives in its own module: :mod:`.client` (calls, errors, tokens), :mod:`.pull`,
:mod:`.records`, :mod:`.fields`, :mod:`.writer`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence

from connectors.base import CheckResult, FieldStatus, FieldUpdate, Page, WriteResult
from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.fields import Fields
from connectors.hubspot.pull import Puller
from connectors.hubspot.writer import Writer
from connectors.transport import Limits, RateLimiter, Transport
from core.config import HubSpotConfig
from core.models import FieldSpec


class HubSpotConnector:
    """Pulls contacts and deals from HubSpot and writes our ``clm_*`` properties back."""

    name = "hubspot"

    def __init__(
        self,
        config: HubSpotConfig,
        *,
        contact_properties: Sequence[str] = (),
        deal_properties: Sequence[str] = (),
        owned_fields: Sequence[FieldSpec] = (),
        enum_options: Mapping[str, Sequence[str]] | None = None,
        token: str | None = None,
        transport: Transport | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.batch_size = config.batch_size
        specs = {spec.name: spec for spec in owned_fields}
        owned = [self.crm_field_name(name) for name in specs]
        contact_props = sorted({"email", "createdate", "lastmodifieddate", "hs_merged_object_ids",
                                *contact_properties, *owned,
                                *(["lifecyclestage"] if config.write_native_lifecyclestage else [])})
        deal_props = sorted({"dealname", "amount", "dealstage", "pipeline", "closedate", "createdate",
                             "hs_lastmodifieddate", "hs_is_closed_won", "hs_is_closed", "hs_merged_object_ids",
                             "deal_currency_code", "amount_in_home_currency", *deal_properties})
        self.transport = transport or Transport(
            RateLimiter(Limits(config.requests_per_10s, 10.0, config.daily_limit)),
            concurrency=config.max_concurrency,
        )
        # HubSpot counts arrivals, we count sends: the default 2% margin is 200 ms on the 10-s window but 20 ms on
        # the 1-s search window, less than two concurrent searches' latency jitter (a SECONDLY 429 costs a 1-s pause).
        search_limiter = RateLimiter(Limits(config.search_per_second, 1.0), safety=0.05)
        self.client = HubSpotClient(config, self.transport, token=token, timeout=timeout, clock=clock,
                                    search_acquire=search_limiter.acquire)
        self.puller = Puller(self.client, config, contact_props, deal_props, wall=wall)
        self.fields = Fields(self.client, config.property_group, self.crm_field_name, enum_options or {})
        self.writer = Writer(self.client, specs, self.crm_field_name, config.batch_size)

    @property
    def deadline(self) -> float | None:
        """When waiting on the CRM gives up (:attr:`connectors.base.Connector.deadline`); kept by the transport,
        which every wait asks how long it may still take."""
        return self.transport.deadline

    @deadline.setter
    def deadline(self, value: float | None) -> None:
        self.transport.deadline = value

    def crm_field_name(self, logical: str) -> str:
        """Our logical field name as a HubSpot property name (``stage`` -> ``clm_stage``)."""
        return f"{self.config.property_prefix}{logical}"

    def pull(self, cursor: Mapping[str, str] | None) -> Iterator[Page]:
        """Pages of contacts and deals, each with the cursor to store once it is in the mirror: a full list
        for object types without a cursor (resuming one under way), else an incremental search
        (see :mod:`connectors.hubspot.pull`)."""
        return self.puller.pull(cursor)

    def ensure_fields(self, specs: Sequence[FieldSpec]) -> list[FieldStatus]:
        """Make sure our property group and ``clm_*`` properties exist with the right types."""
        return self.fields.ensure(specs)

    def write(self, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        """Batch-update our properties; every record gets a result, in input order."""
        return self.writer.write(updates)

    def crm_properties(self, object_type: str) -> dict[str, str]:
        """Every property HubSpot holds on contacts or deals (``GET /crm/v3/properties/{type}``): name -> type."""
        plural = {"contact": "contacts", "deal": "deals"}[object_type]
        body = self.client.call(f"list {object_type} properties", "crm.properties.core_api", "get_all", plural)
        return {str(p["name"]): str(p.get("type", "")) for p in body.get("results", [])}

    def check(self, specs: Sequence[FieldSpec]) -> list[CheckResult]:
        """Token, scopes, reachability and our properties, each with a fix."""
        return self.fields.check(specs, self.config.base_url)
