"""Builds the pieces a command needs from the configuration: connector, state store, runner."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from connectors.base import Connector
from core.config import ClmConfig, load_config, state_path_for
from core.errors import StateError
from sync.runner import Progress, SyncRunner, output_specs
from sync.state import SQLiteState, StateStore


def load(path: Path) -> ClmConfig:
    """Load the configuration; relative state paths are taken from the config file's folder."""
    config = load_config(path)
    config = config.model_copy(update={"sync": config.sync.model_copy(
        update={"state_path": state_path_for(config, path)})})
    if config.files is not None:
        # Export and output paths, like the state path, are taken from the configuration file's folder.
        folder = path.resolve().parent
        files = config.files
        config = config.model_copy(update={"files": files.model_copy(update={
            "contacts": None if files.contacts is None else folder / files.contacts,
            "deals": None if files.deals is None else folder / files.deals,
            "output": folder / files.output})})
    return config


def needed_properties(config: ClmConfig) -> tuple[list[str], list[str]]:
    """The contact and deal properties to pull: declared ones plus the MEDDIC deal properties."""
    meddic = [v for v in config.meddic.model_dump().values() if v]
    return sorted(config.data.contact_properties), sorted(set(config.data.deal_properties) | set(meddic))


def connection_id(config: ClmConfig) -> str:
    """Identifies the CRM account a state file belongs to (never contains a secret)."""
    if config.crm.kind == "hubspot":
        return f"hubspot:{without_credentials(config.hubspot.base_url)}"
    if config.crm.kind == "engagebay":
        assert config.engagebay is not None
        # The REST API key names the account, but is a secret: its variable's name stands in for it.
        return f"engagebay:{without_credentials(config.engagebay.base_url)}#{config.engagebay.api_key_env}"
    if config.crm.kind == "files":
        assert config.files is not None
        return f"files:{config.files.contacts or ''}|{config.files.deals or ''}"
    assert config.salesforce is not None
    sf = config.salesforce
    if sf.auth == "token":
        # The instance URL comes from the environment, which the configuration checks cannot see.
        return f"salesforce:{without_credentials(os.environ.get(sf.instance_url_env, '?'))}"
    # Password and JWT logins learn the instance only when they log in; the user and login domain name the org.
    return f"salesforce:{os.environ.get(sf.username_env or '', '?')}@{sf.domain}"


def without_credentials(url: str) -> str:
    """``url`` with any user name, password, query and fragment removed (a query may carry a key, as HubSpot's
    retired ``hapikey`` did), so the text is safe to store and print."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(not a URL)"
    if not parts.netloc:
        return "(not a URL)" if "@" in url or ":" in url else url
    # The host as written (its case kept, so the id of an existing state file does not change).
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def build_connector(config: ClmConfig, *, token: str | None = None, **sandbox: Any) -> Connector:
    """The configured CRM's connector.

    ``token`` (HubSpot's token or EngageBay's REST API key) and ``sandbox`` (Salesforce: ``session``,
    ``instance_url``, ``session_id``) override the environment, for the sandbox CRMs.
    """
    specs = output_specs(config)
    contact_props, deal_props = needed_properties(config)
    options = {spec.name: list(spec.options) for spec in specs if spec.options}
    # The CRM client libraries take a few hundred milliseconds to import: only the configured one is loaded.
    if config.crm.kind == "hubspot":
        from connectors.hubspot import HubSpotConnector

        return HubSpotConnector(config.hubspot, contact_properties=contact_props, deal_properties=deal_props,
                                owned_fields=specs, enum_options=options, token=token)
    if config.crm.kind == "engagebay":
        from connectors.engagebay import EngageBayConnector

        assert config.engagebay is not None
        return EngageBayConnector(config.engagebay, owned_fields=specs, api_key=token)
    if config.crm.kind == "files":
        from connectors.files import FilesConnector
        from core.models import FieldType

        assert config.files is not None
        state = config.sync.state_path
        deal_types = {name: config.data.deal_properties.get(name, FieldType.STRING) for name in deal_props}
        return FilesConnector(config.files, base=Path.cwd(), snapshots=state.with_name(state.name + ".exports"),
                              owned_fields=specs, contact_properties=config.data.contact_properties,
                              deal_properties=deal_types)
    from connectors.salesforce import SalesforceConnector

    assert config.salesforce is not None
    return SalesforceConnector(config.salesforce, contact_properties=contact_props, deal_properties=deal_props,
                               owned_fields=specs, enum_options=options, **sandbox)


def open_state(config: ClmConfig) -> StateStore:
    """The state store of this configuration's CRM connection: the SQLite file at ``sync.state_path``, or the
    PostgreSQL database at ``sync.state_url`` shared with other jobs (each keyed by its connection id)."""
    sync = config.sync
    if sync.state_url is None:
        return SQLiteState(sync.state_path, connection_id(config))
    try:
        # Only a PostgreSQL user needs psycopg: it is an optional extra, imported when configured.
        from sync.state_postgres import PostgresState
    except ImportError:
        raise StateError("sync.state_url names a PostgreSQL state store, but psycopg is not installed",
                         hint="pip install 'crm-lifecycle[postgres]' (or remove sync.state_url to use the SQLite "
                              "state file)") from None
    password = os.environ.get(sync.state_password_env) if sync.state_password_env else None
    return PostgresState(sync.state_url, connection_id(config), password=password or None,
                         password_env=sync.state_password_env)


def build_runner(config: ClmConfig, connector: Connector, progress: Progress | None = None) -> SyncRunner:
    """A sync runner for one configuration."""
    return SyncRunner(config, connector, open_state(config), progress=progress)
