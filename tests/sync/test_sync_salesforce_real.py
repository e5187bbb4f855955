"""The Salesforce sync with every real-org behaviour of the emulator on at once.

A new org (SOAP ``login()`` refused: client credentials), an integration user without setup rights (an admin
created and granted our fields), multiple currencies, transactions that commit after their ``SystemModstamp``,
contact roles deleted for good, a delete log that forgets after 15 days, a duplicate rule, rollup triggers that
lock, a Bulk ingest job that fails part-way, Bulk jobs that sit queued, expiring sessions, and 5xx, timeouts and
dropped connections on every endpoint. Between runs people edit contacts, change an account's industry, convert
a lead, remove a contact role and delete an opportunity, and 20 days pass. However often the faults strike, the
runs converge on what ``enrich`` computes directly from the org's data, with nothing written twice that did not
change.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cli.wiring import connection_id
from connectors.salesforce import SalesforceConnector
from connectors.sandbox.faults import FaultInjector, FaultRule
from connectors.sandbox.generator import generate
from connectors.sandbox.salesforce import DuplicateRule, SalesforceEmulator, start_salesforce_sandbox
from core.config import ClmConfig
from core.engine import enrich
from sync.planner import same
from sync.runner import SyncOptions, SyncRunner, output_specs
from sync.state import SQLiteState
from tests.sync.test_sync_salesforce import Env, crm_state, pulled, start

DATA = "/services/data/v"
INGEST_PUT = "/services/data/"


class OrgClock:
    """Real time plus an offset the test moves forward (Bulk jobs and late commits need time to pass)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


def by_email(record: Mapping[str, Any]) -> str | None:
    email = record.get("Email")
    return str(email).lower() if email else None


def noisy_network() -> FaultInjector:
    faults = FaultInjector(seed=31)
    for kind, extra in (("status", {"status": 503}), ("timeout", {"seconds": 2.5}), ("drop", {})):
        faults.add(FaultRule(kind=kind, rate=0.03, path_prefix="/services/data", **extra))  # type: ignore[arg-type]
    return faults


@pytest.mark.slow
def test_the_fault_matrix_holds_with_every_real_org_behaviour_on_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = OrgClock()
    e = real_org(tmp_path, clock)
    try:
        run(e, clock, monkeypatch)
    finally:
        e.server.stop()
    assert e.emulator.internal_errors == []


def real_org(tmp_path: Path, clock: OrgClock) -> Env:
    """1,200 generated contacts in a multi-currency org, our fields set up by its admin (on Lead too)."""
    data = generate(1_200, seed=21)
    org = SalesforceEmulator(clock=clock, bulk_delay=1.5, late_commits=0.05, fault_seed=5)
    org.enable_multicurrency("USD", {"JPY": 0.0067, "EUR": 1.08})
    seeded = org.seed(data.contact_records(), data.deal_records())
    server, org = start_salesforce_sandbox(tls_dir=tmp_path / "tls", emulator=org, faults=noisy_network())
    e = Env(server, org, data, seeded, tmp_path)
    config = config_for(e)
    admin = e.connector(config, session_id=org.admin_session_id, timeout=10.0, assign_to=org.store.org.username)
    statuses = admin.ensure_fields(output_specs(config))
    assert all(s.action == "created" for s in statuses), [s for s in statuses if s.action != "created"]
    return e


def config_for(e: Env) -> ClmConfig:
    return e.config(bulk_threshold=400, auth="client_credentials", consumer_key_env="SF_CONSUMER_KEY",
                    consumer_secret_env="SF_CONSUMER_SECRET", objects=["Contact", "Lead"])


def runner_for(e: Env, clock: OrgClock) -> SyncRunner:
    config = config_for(e)
    connector = e.connector(config, session_id=None, instance_url=None, timeout=2.0, clock=clock)
    return SyncRunner(config, connector, SQLiteState(config.sync.state_path, connection_id(config)))


def run(e: Env, clock: OrgClock, monkeypatch: pytest.MonkeyPatch) -> None:
    org = e.emulator
    creds = org.credentials
    monkeypatch.setenv("SF_SANDBOX_URL", e.server.url)  # the org's My Domain
    monkeypatch.setenv("SF_CONSUMER_KEY", creds.consumer_key)
    monkeypatch.setenv("SF_CONSUMER_SECRET", creds.consumer_secret)
    store = org.store
    # The org as people use it: a duplicate pair under an alerting duplicate rule, a few open leads.
    with store.lock:
        contacts = sorted(i for i, r in store.records["Contact"].items() if not r.get("IsDeleted"))
    org.edit(contacts[1], {"Email": (org.record(contacts[0]) or {}).get("Email")}, commit_after=0.0)
    org.add_duplicate_rule(DuplicateRule("Contact", "Standard_Contact_Duplicate_Rule", by_email))
    leads = [org.create("Lead", {"LastName": f"Lead {n}", "Company": "Kauri Ltd",
                                 "Email": f"lead{n}@kauri.example"}) for n in range(6)]
    # Faults in the org itself, all through the run.
    fired = [
        org.add_fault(FaultRule(kind="lock_row", rate=0.05, path_prefix=DATA)),
        org.add_fault(FaultRule(kind="trigger_lock", rate=0.05, path_prefix=DATA)),
        org.add_fault(FaultRule(kind="ingest_failure", method="PUT", path_prefix=INGEST_PUT, after=1, count=1)),
        org.add_fault(FaultRule(kind="expired_session", path_prefix=DATA, after=25, count=1)),
    ]
    as_of = e.data.as_of

    summaries = [runner_for(e, clock).run(SyncOptions(as_of=as_of))]
    assert summaries[0].status == "ok", summaries[0].message

    # Between runs: people's edits (some committing 30 s after their SystemModstamp), an account's industry,
    # a lead converted into a contact, a contact role removed by itself, an opportunity deleted, 20 days.
    for contact_id in contacts[10:60]:
        org.edit(contact_id, {"Hs_Email_Click__c": 45, "Num_Conversion_Events__c": 7},
                 commit_after=30.0 if contact_id < contacts[20] else 0.0)
    with store.lock:
        account = next(r["AccountId"] for r in store.records["Contact"].values() if r.get("AccountId"))
        roles = [r for r in store.records["OpportunityContactRole"].values() if not r.get("IsDeleted")]
        opportunity = next(r for r in store.records["Opportunity"].values()
                           if r.get("IsWon") and not r.get("IsDeleted"))
    org.edit(account, {"Industry": "Banking"}, commit_after=0.0)
    org.convert_lead(leads[0])
    assert org.delete(str(roles[3]["Id"]))
    assert org.delete(str(opportunity["Id"]))
    fired.append(org.add_fault(FaultRule(kind="expired_session", path_prefix=DATA, after=5, count=1)))
    clock.advance(seconds=45)  # the late commits land, behind the cursor of any pull in between
    summaries.append(runner_for(e, clock).run(SyncOptions(as_of=as_of)))
    clock.advance(days=20)  # the deleted opportunity leaves the Recycle Bin and the delete log
    for _ in range(4):
        summaries.append(runner_for(e, clock).run(SyncOptions(as_of=as_of)))
        if summaries[-1].status == "ok" and summaries[-1].planned_records == 0:
            break
    assert all(s.status == "ok" for s in summaries), [(s.status, s.message) for s in summaries]
    assert summaries[-1].planned_records == 0, "the runs converged"
    assert all(rule.fired for rule in fired), [(r.kind, r.fired) for r in fired]
    assert sum(s.retries for s in summaries) > 0 and sum(s.written_records for s in summaries) >= 1_200

    # What enrich computes from the org's data, read by a clean admin connector with the faults off.
    org.clear_faults()
    config = runner_for(e, clock).config
    clean = e.connector(config, session_id=org.admin_session_id, clock=clock)
    assert isinstance(clean, SalesforceConnector)
    contacts_now, deals_now = pulled(clean)
    direct = {r.contact_id: r for r in enrich(contacts_now, deals_now, config, as_of).records()}
    crm = crm_state(org)
    assert opportunity["Id"] not in {d.id for d in deals_now}
    mirror = runner_for(e, clock).state
    assert {d.id for d in mirror.deals()} == {d.id for d in deals_now}, "deleted deals left the mirror"
    assert {c.id for c in mirror.contacts()} == {c.id for c in contacts_now}
    assert any(d.currency == "USD" for d in deals_now)
    specs = {s.name: s for s in output_specs(config) if s.name != "computed_at"}
    names = {name: clean.crm_field_name(name) for name in specs}
    assert set(crm) == {c for c in direct if c.startswith("003")}
    # Values that moved by less than the sync's tolerance (a refit after the deletions) are left as written.
    tolerance = config.sync.numeric_tolerance
    for contact_id, values in crm.items():
        expected = direct[contact_id].model_dump()
        for name, spec in specs.items():
            assert same(spec, values.get(names[name]), expected[name], tolerance), (contact_id, name)


def test_a_bulk_job_queued_past_max_runtime_stops_the_run_cleanly_and_the_next_run_finishes(tmp_path: Path) -> None:
    e = start(tmp_path, 300, bulk_delay=60.0, late_commits=0.0)  # the org's Bulk queue is a minute behind
    try:
        started = time.monotonic()
        partial = e.runner(bulk_threshold=10).run(SyncOptions(as_of=e.data.as_of, max_runtime=1.0))
        waited = time.monotonic() - started
        assert partial.status == "partial" and "time budget" in partial.message, partial.message
        assert waited < 10, f"the run waited {waited:.1f}s for a job queued for 60s"
        assert partial.written_records == 0 and e.emulator.bulk.jobs == {}, "the aborted job was deleted"
        e.emulator.bulk.delay = 0.0
        done = e.runner(bulk_threshold=10).run(SyncOptions(as_of=e.data.as_of))
        assert done.status == "ok" and done.written_records == 300
        assert e.emulator.max_writes_per_field() == 1
    finally:
        e.server.stop()
