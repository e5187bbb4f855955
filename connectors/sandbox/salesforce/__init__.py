"""A local emulator of the Salesforce APIs our connector uses, for tests, benchmarks and ``clm demo``.

REST (query/queryAll and query locators, describe, sObject rows, sObject Collections, limits), Tooling
(``CustomField``), field-level security through permission sets, Bulk API 2.0 (query and ingest jobs), OAuth 2.0
token and SOAP login, daily API limits and injectable faults — close enough that ``simple_salesforce`` works
against it unchanged::

    server, org = start_salesforce_sandbox(contacts, deals, tls_dir=tmp)
    sf = Salesforce(instance_url=server.url, session_id=org.session_id, session=client_session(server))
"""

from connectors.sandbox.salesforce.app import API_VERSIONS, DEFAULT_API_VERSION, SalesforceEmulator
from connectors.sandbox.salesforce.auth import Credentials
from connectors.sandbox.salesforce.errors import ApiError, RecordError
from connectors.sandbox.salesforce.sandbox import client_session, connection_info, start_salesforce_sandbox
from connectors.sandbox.salesforce.seed import SeedResult, custom_api_name
from connectors.sandbox.salesforce.store import DuplicateRule, ValidationRule, WriteEvent

__all__ = [
    "API_VERSIONS",
    "DEFAULT_API_VERSION",
    "ApiError",
    "Credentials",
    "DuplicateRule",
    "RecordError",
    "SalesforceEmulator",
    "SeedResult",
    "ValidationRule",
    "WriteEvent",
    "client_session",
    "connection_info",
    "custom_api_name",
    "start_salesforce_sandbox",
]
