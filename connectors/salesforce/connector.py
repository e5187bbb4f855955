"""The Salesforce connector: :class:`connectors.base.Connector` over simple-salesforce.

It ties the pieces together: :mod:`.client` (auth, errors, API budget), :mod:`.pull` (contacts, leads,
opportunities and contact roles; REST or Bulk 2.0), :mod:`.fields` (our ``CLM_*__c`` fields and their
field-level security) and :mod:`.writer` (sObject Collections and Bulk 2.0 ingest).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from simple_salesforce.api import Salesforce

from connectors.base import CheckResult, FieldStatus, FieldUpdate, Page, WriteResult
from connectors.salesforce.client import SalesforceApiError, SalesforceClient
from connectors.salesforce.fields import FieldManager
from connectors.salesforce.pull import DEAL_KEY, LOG_KEY, RECONCILED_KEY, ROLE_KEY, Puller, PullPlan, count_windows
from connectors.salesforce.reader import Reader
from connectors.salesforce.records import ObjectSchema
from connectors.salesforce.writer import Writer
from connectors.transport import Transport
from core.config import SalesforceConfig
from core.errors import AuthError, ConnectorError
from core.models import FieldSpec, FieldType


class SalesforceConnector:
    """Pulls Contacts (and Leads), Opportunities and contact roles; writes our ``CLM_*__c`` fields back.

    ``contact_properties``/``deal_properties`` are Salesforce field API names. ``session``, ``transport``,
    ``instance_url`` and ``session_id`` are for tests and the sandbox (a ``session_id`` is only the first
    session: every login but ``token`` replaces it when it expires). Writes above ``bulk_write_threshold``
    records (default ``bulk_threshold``) should go through :meth:`write_bulk`.
    """

    name = "salesforce"

    def __init__(
        self,
        config: SalesforceConfig,
        *,
        contact_properties: Sequence[str] = (),
        deal_properties: Sequence[str] = (),
        owned_fields: Sequence[FieldSpec] = (),
        enum_options: Mapping[str, Sequence[str]] | None = None,
        session: requests.Session | None = None,
        transport: Transport | None = None,
        instance_url: str | None = None,
        session_id: str | None = None,
        bulk_write_threshold: int | None = None,
        assign_to: str | None = None,
        timeout: float = 60.0,
        poll_interval: float = 0.25,
        lock_backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.clock = clock
        """The time getDeleted windows end at and sweeps are dated by (the org's clock, for the sandbox)."""
        self.batch_size = config.batch_size
        self.bulk_write_threshold = config.bulk_threshold if bulk_write_threshold is None else bulk_write_threshold
        self.client = SalesforceClient(config, transport=transport, session=session, instance_url=instance_url,
                                       session_id=session_id, timeout=timeout)
        self.transport = self.client.transport
        self.reader = Reader(self.client, config.page_size, sleep=sleep, poll_interval=poll_interval)
        self._contact_props = list(dict.fromkeys(contact_properties))
        self._deal_props = list(dict.fromkeys(deal_properties))
        self._specs = {spec.name: spec for spec in owned_fields}
        self._enum_options = {k: list(v) for k, v in (enum_options or {}).items()}
        self.fields = FieldManager(self.client, config, self.crm_field_name, self._options)
        self.assign_to = assign_to
        """Username :meth:`ensure_fields` assigns the permission set to (``clm fields ensure --assign-to``)."""
        self.writer = Writer(self.client, self.reader, self._specs,
                             {name: self.crm_field_name(name) for name in self._specs}, config.objects,
                             config.permission_set, lock_backoff=lock_backoff)
        self.last_pull: Puller | None = None

    @property
    def deadline(self) -> float | None:
        """When waiting on the CRM gives up (:attr:`connectors.base.Connector.deadline`); kept by the transport,
        which every wait (a queued Bulk job's polling) asks how long it may still take."""
        return self.transport.deadline

    @deadline.setter
    def deadline(self, value: float | None) -> None:
        self.transport.deadline = value

    def crm_field_name(self, logical: str) -> str:
        """Our logical field name as a custom field API name (``lead_score`` -> ``CLM_Lead_Score__c``)."""
        parts = [p for p in re.split(r"[^A-Za-z0-9]+", logical) if p]
        return f"{self.config.field_prefix}{'_'.join(p[:1].upper() + p[1:] for p in parts)}{self.config.field_suffix}"

    def _options(self, spec: FieldSpec) -> list[str]:
        if spec.type is not FieldType.ENUM:
            return []
        return list(spec.options) or self._enum_options.get(spec.name, [])

    # --- pull --------------------------------------------------------------------------------------------

    def pull(self, cursor: Mapping[str, str] | None) -> Iterator[Page]:
        """Pages of contacts/leads, then deals; all when ``cursor`` is None, else what changed since.

        The cursor holds one entry per object (``Contact``, ``Lead``, ``Opportunity``,
        ``OpportunityContactRole``, and ``Account`` when contact properties read Account fields); an object
        missing from it is pulled in full. Contacts of an Account changed since its cursor come again, with the
        Account's current values.
        """
        cursor = dict(cursor or {})
        self.client.read_limits()
        objects = [*self.config.objects, DEAL_KEY, ROLE_KEY]
        # Parent objects are guessed from the relationship names (``Account.Industry`` -> Account), so their
        # describes ride in the same composite call; a wrong guess only costs a describe of its own later.
        guessed = [name for name in dict.fromkeys(p.partition(".")[0] for p in [*self._contact_props,
                                                                                 *self._deal_props] if "." in p)
                   if name not in objects]
        bodies = self.reader.prefetch([*objects, *guessed],
                                      count_windows(self.config.objects, guessed, cursor, self.config.lookback_seconds))
        schemas = {name: ObjectSchema.from_describe(bodies[name]) if name in bodies else self.fields.describe(name)
                   for name in objects}
        parents: dict[str, ObjectSchema] = {str(bodies[name].get("name")): ObjectSchema.from_describe(bodies[name])
                                            for name in guessed if name in bodies}
        for sobject in objects:
            props = self._deal_props if sobject == DEAL_KEY else self._contact_props
            schemas[sobject] = self._with_parents(schemas[sobject], props, parents)
        links: dict[str, Sequence[tuple[str, str]]] = {
            sobject: self._parent_links(schemas[sobject]) for sobject in self.config.objects}
        plan = PullPlan({**parents, **schemas}, self.config.objects, self._contact_props,
                        [self.crm_field_name(n) for n in self._specs], self._deal_props, links)
        puller = Puller(self.reader, plan, self.config.bulk_threshold, self.config.page_size,
                        lookback=self.config.lookback_seconds, clock=self.clock, log_since=cursor.get(LOG_KEY))
        self.last_pull = puller
        reported = 0
        pages = (page for source in [*(puller.people_with_parents(o, cursor) for o in self.config.objects),
                                     puller.deals(cursor), self._reconcile(puller, cursor)] for page in source)
        for page in pages:
            # Field problems (a configured property that does not exist) ride on the next page out.
            page.problems = [*puller.problems[reported:], *page.problems]
            reported = len(puller.problems)
            yield page

    def _reconcile(self, puller: Puller, cursor: Mapping[str, str]) -> Iterator[Page]:
        """The end of a pull: the reconciling sweep when it is due, and how far the delete log was read (a full
        pull is a reconciliation of its own: the mirror drops what it did not return)."""
        started = puller.started.isoformat()
        if DEAL_KEY not in cursor or any(o not in cursor for o in self.config.objects):
            yield Page(cursor={LOG_KEY: started, RECONCILED_KEY: started})
            return
        every = timedelta(days=self.config.reconcile_days) if self.config.reconcile_days else None
        if puller.sweep_due(cursor, every):
            yield from puller.sweep()
        yield Page(cursor={LOG_KEY: started})

    def _parent_links(self, schema: ObjectSchema) -> list[tuple[str, str]]:
        """The parent objects (and lookup fields) the configured contact properties read through, e.g.
        ``[("Account", "AccountId")]`` for ``Account.Industry``: each is pulled for changes of its own.

        With person accounts (the Contact describes ``IsPersonAccount``) Account is one of them whatever the
        properties: a person is edited through its Account, which stamps the Account, not the Contact (see
        :mod:`connectors.sandbox.salesforce.org_shapes`).
        """
        links: dict[str, str] = {}
        for name in self._contact_props:
            relation_name, dot, leaf = name.partition(".")
            key = relation_name.lower()
            if dot and "." not in leaf and key in schema.relations and key in schema.lookups:
                links.setdefault(schema.relations[key][1], schema.lookups[key])
        if schema.name == "Contact" and schema.canonical("IsPersonAccount") and "account" in schema.lookups:
            links.setdefault("Account", schema.lookups["account"])
        return list(links.items())

    def _with_parents(self, schema: ObjectSchema, props: Sequence[str], parents: dict[str, ObjectSchema]
                      ) -> ObjectSchema:
        """Add the configured parent fields (``Account.Industry``: one lookup hop) to an object's schema, so
        that fit criteria can use the company's data; unknown ones are reported by the pull."""
        extra: dict[str, str] = {}
        for name in props:
            relation_name, dot, leaf = name.partition(".")
            relation = schema.relations.get(relation_name.lower()) if dot and "." not in leaf else None
            if relation is None:
                continue
            if relation[1] not in parents:
                parents[relation[1]] = self.fields.describe(relation[1])
            parent = parents[relation[1]]
            canonical = parent.canonical(leaf)
            if canonical is not None:
                extra[f"{relation[0]}.{canonical}"] = parent.kinds[canonical]
        return schema.with_parent_fields(extra) if extra else schema

    # --- fields -------------------------------------------------------------------------------------------

    def ensure_fields(self, specs: Sequence[FieldSpec]) -> list[FieldStatus]:
        """Create our missing ``CLM_*__c`` fields on each configured object, add missing picklist values, and
        grant read/edit on them through the configured permission set (created when missing, assigned to
        ``assign_to`` or else to the logged-in user). An admin step (``clm fields ensure``): syncs only read
        :meth:`field_access`.

        One status per field and object; existing fields of another type are reported as conflicts.
        """
        self._know(specs)
        return self.fields.ensure(specs, self.assign_to)

    def field_access(self, specs: Sequence[FieldSpec]) -> list[FieldStatus]:
        """Which of our fields the logged-in user may write on each object, from describe; changes nothing.

        One status per field and object: ``exists`` (writable), ``failed`` naming the missing step (create the
        field as an admin, or grant Read/Edit to this user), or ``conflict``.
        """
        self._know(specs)
        return self.fields.access(specs)

    def _know(self, specs: Sequence[FieldSpec]) -> None:
        for spec in specs:
            self._specs.setdefault(spec.name, spec)
            self.writer.crm_names.setdefault(spec.name, self.crm_field_name(spec.name))

    # --- write --------------------------------------------------------------------------------------------

    def write(self, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        """Write one batch (at most ``batch_size``) through sObject Collections; one result per input."""
        if len(updates) > self.batch_size:
            raise ValueError(f"batch of {len(updates)} exceeds salesforce.batch_size={self.batch_size}")
        return self.writer.write(updates)

    def write_bulk(self, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        """Write any number of records through Bulk API 2.0 update jobs; one result per input, in order.

        Costs a handful of API calls per job instead of one per 200 records. Use it when a plan has more than
        ``bulk_write_threshold`` records. Locked rows are retried through sObject Collections.
        """
        return self.writer.write_bulk(updates, self.batch_size)

    # --- check --------------------------------------------------------------------------------------------

    #: Salesforce field API names are case-insensitive (``industry`` selects ``Industry``).
    properties_case_sensitive = False

    def crm_properties(self, object_type: str) -> dict[str, str]:
        """The fields the user can see (describe) on any configured contact object, or on Opportunity.

        A field on Contact but not on Lead is not missing: Leads and Contacts carry different fields, and the pull
        already names each object a field is absent from.
        """
        objects = list(self.config.objects) if object_type == "contact" else [DEAL_KEY]
        out: dict[str, str] = {}
        for sobject in objects:
            out.update(self.fields.describe(sobject).kinds)
        return out

    def check(self, specs: Sequence[FieldSpec]) -> list[CheckResult]:
        """Credentials, API reachability and allowance, read access, and our fields (present, visible).

        Stops after the first line that leaves nothing else checkable: credentials refused, or the daily allowance
        down to the reserve (no request may be spent then).
        """
        checks: list[CheckResult] = []
        try:
            budget = self.client.read_limits()
            usage = ("" if budget.daily_max is None or budget.daily_remaining is None
                     else f"; API requests today: {budget.daily_max - budget.daily_remaining:,} of "
                          f"{budget.daily_max:,}")
            checks.append(CheckResult("Salesforce reachable, credentials accepted", True,
                                      f"{self.client.instance_url} (API v{self.config.api_version}){usage}"))
        except (AuthError, ConnectorError) as exc:
            checks.append(CheckResult("Salesforce reachable, credentials accepted", False, exc.message,
                                      exc.hint or "check salesforce.auth and the environment variables it names"))
            return checks
        if budget.daily_max is not None and budget.daily_remaining is not None:
            reserve = self.transport.limiter.limits.daily_reserve
            ok = budget.daily_remaining > reserve
            checks.append(CheckResult(
                "daily API allowance above the reserve", ok,
                f"{budget.daily_remaining:,} requests left, {reserve:,} kept for other integrations"
                + ("" if ok else "; the checks below need API requests and were not run"),
                "" if ok else "wait for the rolling 24 hours to free requests, or lower "
                              "salesforce.api_reserve_fraction"))
            if not ok:
                return checks  # the limiter now refuses every request: probing further would only raise
        for sobject in [*self.config.objects, DEAL_KEY, ROLE_KEY]:
            name = f"read access to {sobject}"
            def probe(sf: Salesforce, target: str = sobject) -> Any:
                return sf.query(f"SELECT Id FROM {target} LIMIT 1", timeout=self.client.timeout)

            try:
                self.client.call(f"read {sobject}", probe)
                checks.append(CheckResult(name, True))
            except (AuthError, SalesforceApiError) as exc:
                checks.append(CheckResult(name, False, exc.message,
                                          f"give the integration user's profile or a permission set Read on {sobject}"))
        try:
            checks.extend(self.fields.checks(specs))
        except (AuthError, ConnectorError) as exc:
            checks.append(CheckResult("our fields on the configured objects", False, exc.message,
                                      "give the integration user Read on each of salesforce.objects (describe "
                                      "must work)"))
        return checks
