"""Salesforce connector over simple-salesforce: REST and Bulk API 2.0 pulls, Tooling API fields with
field-level security, sObject Collections and Bulk API 2.0 writes.

Public API: :class:`SalesforceConnector` (the :class:`connectors.base.Connector`), :class:`SalesforceApiError`,
and the value formatting helpers :func:`format_value` / :func:`format_csv`.
"""

from connectors.salesforce.client import SalesforceApiError, budget_from_header
from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.writer import format_csv, format_value

__all__ = ["SalesforceApiError", "SalesforceConnector", "budget_from_header", "format_csv", "format_value"]
