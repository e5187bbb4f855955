"""HubSpot connector on the official ``hubspot-api-client``."""

from connectors.hubspot.client import HubSpotApiError, budget_from_headers
from connectors.hubspot.connector import HubSpotConnector
from connectors.hubspot.writer import format_value

__all__ = ["HubSpotApiError", "HubSpotConnector", "budget_from_headers", "format_value"]
