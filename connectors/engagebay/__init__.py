"""EngageBay connector on ``httpx`` against EngageBay's REST API (github.com/engagebay/restapi)."""

from connectors.engagebay.client import EngageBayApiError
from connectors.engagebay.connector import EngageBayConnector
from connectors.engagebay.writer import format_value

__all__ = ["EngageBayApiError", "EngageBayConnector", "format_value"]
