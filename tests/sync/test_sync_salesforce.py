"""The sync end to end against the Salesforce sandbox (simple-salesforce over TLS): what lands in the org,
diffs, conflicts, resume, and the fault matrix (5xx, timeouts, dropped connections, locked rows, expired
sessions, deletions before the write, the daily API limit, kill -9)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from cli.demo import salesforce_demo_config
from cli.wiring import build_connector, connection_id
from connectors.base import Connector, FieldStatus
from connectors.salesforce import SalesforceConnector
from connectors.sandbox.faults import FaultInjector, FaultRule
from connectors.sandbox.generator import GeneratedData, generate
from connectors.sandbox.salesforce import SalesforceEmulator, client_session, start_salesforce_sandbox
from connectors.sandbox.salesforce.seed import SeedResult
from connectors.sandbox.server import SandboxServer
from core.config import ClmConfig, SalesforceConfig
from core.engine import enrich
from core.models import Contact, Deal
from sync.planner import same
from sync.runner import SyncOptions, SyncRunner, output_specs
from sync.state import SQLiteState
from tests.sync.killing import KilledRuns

WRITES = f"/services/data/v{SalesforceConfig.model_fields['api_version'].default}/composite/sobjects"


@dataclass
class Env:
    server: SandboxServer
    emulator: SalesforceEmulator
    data: GeneratedData
    seeded: SeedResult
    root: Path

    def config(self, sync: dict[str, Any] | None = None, **salesforce: Any) -> ClmConfig:
        config = salesforce_demo_config(self.root / "state.db", self.seeded.contact_fields, self.seeded.deal_fields,
                                        instance_url_env="SF_SANDBOX_URL", **salesforce)
        if sync:
            config = config.model_copy(update={"sync": config.sync.model_copy(update=sync)})
        return config

    def connector(self, config: ClmConfig, **options: Any) -> Connector:
        options.setdefault("instance_url", self.server.url)
        options.setdefault("session_id", self.emulator.session_id)
        return build_connector(config, session=client_session(self.server), poll_interval=0.01, lock_backoff=0.01,
                               **options)

    def admin_ensure(self) -> list[FieldStatus]:
        """``clm fields ensure --assign-to <integration user>`` with the admin's session, as an admin does once."""
        config = self.config()
        admin = self.connector(config, session_id=self.emulator.admin_session_id, timeout=10.0,
                               assign_to=self.emulator.store.org.username)
        return admin.ensure_fields(output_specs(config))

    def runner(self, sync: dict[str, Any] | None = None, connector: dict[str, Any] | None = None,
               **salesforce: Any) -> SyncRunner:
        config = self.config(sync, **salesforce)
        return SyncRunner(config, self.connector(config, **(connector or {})),
                          SQLiteState(config.sync.state_path, connection_id(config)))


def start(tmp_path: Path, n: int, faults: FaultInjector | None = None, **emulator: Any) -> Env:
    data = generate(n, seed=21)
    org = SalesforceEmulator(**emulator)
    seeded = org.seed(data.contact_records(), data.deal_records())
    server, org = start_salesforce_sandbox(tls_dir=tmp_path / "tls", emulator=org, faults=faults)
    env = Env(server, org, data, seeded, tmp_path)
    # Syncs run as the integration user, which may not create fields: an admin set them up first.
    statuses = env.admin_ensure()
    assert all(s.action == "created" for s in statuses), [s for s in statuses if s.action != "created"]
    return env


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    # People's edits here commit at once, so a run right after them sees them all (late commits, and the lookback
    # that catches them, are in tests/connectors/salesforce/test_sf_consistency.py).
    e = start(tmp_path, 1_500, late_commits=0.0)
    yield e
    e.server.stop()
    assert e.emulator.internal_errors == []


def crm_state(emulator: SalesforceEmulator) -> dict[str, dict[str, Any]]:
    """Our fields on every live contact (``CLM_Computed_At__c`` excluded: it is the time of the run)."""
    store = emulator.store
    with store.lock:
        return {i: {k: v for k, v in r.items() if k.startswith("CLM_") and k != "CLM_Computed_At__c"}
                for i, r in store.records["Contact"].items() if not r.get("IsDeleted")}


def pulled(conn: Connector) -> tuple[list[Contact], list[Deal]]:
    contacts: dict[str, Contact] = {}
    deals: dict[str, Deal] = {}
    for page in conn.pull(None):
        contacts.update((c.id, c) for c in page.contacts)
        deals.update((d.id, d) for d in page.deals)
    return list(contacts.values()), list(deals.values())


def test_first_sync_writes_what_enrich_computes_and_the_second_writes_nothing(env: Env) -> None:
    runner = env.runner()
    assert isinstance(runner.connector, SalesforceConnector)
    contacts, deals = pulled(runner.connector)
    direct = {r.contact_id: r for r in enrich(contacts, deals, runner.config, env.data.as_of).records()}
    first = runner.run(SyncOptions(as_of=env.data.as_of))
    assert first.status == "ok" and first.written_records == 1_500 and first.rejected_count == 0
    assert first.problems == [], "fields created and granted, every configured property found"
    # The org holds what enrich computes on the same records.
    specs = {s.name: s for s in output_specs(runner.config) if s.name != "computed_at"}
    names = {name: runner.connector.crm_field_name(name) for name in specs}
    crm = crm_state(env.emulator)
    assert set(crm) == set(direct)
    for contact_id in list(crm)[::7]:
        expected = direct[contact_id].model_dump()
        for name, spec in specs.items():
            assert same(spec, crm[contact_id].get(names[name]), expected[name], 1e-3), (contact_id, name)
    assert sum(v.get("CLM_Stage__c") == "customer" for v in crm.values()) > 100
    second = runner.run(SyncOptions(as_of=env.data.as_of))
    assert second.write_calls == 0 and second.planned_records == 0
    # 300 people edited in the org: the next sync pulls only those and writes only what changed.
    edited = sorted(crm)[:300]
    for contact_id in edited:
        env.emulator.edit(contact_id, {"Hs_Email_Click__c": 40, "Num_Conversion_Events__c": 6})
    before = env.emulator.total_writes()
    third = runner.run(SyncOptions(as_of=env.data.as_of))
    assert third.pulled_contacts == 300 and third.pulled_deals == 0
    assert third.written_records == third.planned_records > 0 and third.planned_fields["lead_score"] <= 300
    fields_written = sum(n for rid in edited for n in env.emulator.writes_to(rid).values())
    assert fields_written > 0 and env.emulator.total_writes() > before
    assert runner.run(SyncOptions(as_of=env.data.as_of)).write_calls == 0
    assert env.emulator.max_writes_per_field() <= 2, "a value is written again only when it changed"


def test_an_accounts_industry_change_reaches_its_contacts_fit_score_within_one_run(env: Env) -> None:
    industry_rule = {"name": "Banking", "kind": "fit", "points": 20.0,
                     "criteria": [{"field": "Account.Industry", "op": "eq", "value": "Banking"}]}
    config = env.config()
    scoring = config.scoring.model_dump()
    scoring["rules"] = [*scoring["rules"], industry_rule]
    config = config.model_copy(update={"scoring": type(config.scoring).model_validate(scoring)})
    runner = SyncRunner(config, env.connector(config), SQLiteState(config.sync.state_path, connection_id(config)))
    assert runner.run(SyncOptions(as_of=env.data.as_of)).status == "ok"
    assert runner.run(SyncOptions(as_of=env.data.as_of)).planned_records == 0  # pulls back what we wrote
    store = env.emulator.store
    with store.lock:
        contacts = [r for r in store.records["Contact"].values() if r.get("AccountId") and not r.get("IsDeleted")]
        account_id = next(r["AccountId"] for r in contacts
                          if (store.get(r["AccountId"]) or {}).get("Industry") != "Banking")
        members = [r["Id"] for r in contacts if r["AccountId"] == account_id]
        fit_before = {i: (store.get(i) or {}).get("CLM_Fit_Score__c") for i in members}
    env.emulator.edit(account_id, {"Industry": "Banking"}, commit_after=0.0)  # late commits have tests of their own
    summary = runner.run(SyncOptions(as_of=env.data.as_of))
    assert summary.status == "ok" and summary.pulled_contacts == len(members)
    with store.lock:
        fit_after = {i: (store.get(i) or {}).get("CLM_Fit_Score__c") for i in members}
    assert all(fit_after[i] > fit_before[i] for i in members), (fit_before, fit_after)
    assert {c.properties.get("Account.Industry") for c in runner.state.contacts() if c.id in fit_after} == {
        "Banking"}
    assert runner.run(SyncOptions(as_of=env.data.as_of)).planned_records == 0


def test_a_least_privilege_sync_writes_every_granted_field_and_names_the_missing_permission(tmp_path: Path) -> None:
    e = start(tmp_path, 300)  # an admin has run `clm fields ensure --assign-to <integration user>`
    try:
        store = e.emulator.store
        user = store.org.user_id
        # Then the admin takes Edit off CLM_Grade__c and the grant of CLM_Clv__c away altogether.
        rows = {r["Field"]: r["Id"] for r in store.records["FieldPermissions"].values()}
        e.emulator.edit(rows["Contact.CLM_Grade__c"], {"PermissionsEdit": False})
        e.emulator.delete(rows["Contact.CLM_Clv__c"])
        setup = (store.count("PermissionSet"), store.count("FieldPermissions"), store.count("CustomField"))
        e.emulator.reset_counters()
        # The integration user's Tooling queries are refused (no "View Setup and Configuration"): the run goes on.
        summary = e.runner().run(SyncOptions(as_of=e.data.as_of))
        assert summary.status == "ok" and summary.written_records == 300 and summary.rejected_count == 0
        assert len(summary.problems) == 2, summary.problems
        clv, grade = sorted(summary.problems)
        assert clv.startswith(
            f"field Contact.CLM_Clv__c not written: not visible to the integration user ({user}): either it does "
            f"not exist (run `clm fields ensure` as an admin) or the integration user ({user}) may not read it "
            f"(grant Read and Edit on CLM_Clv__c on Contact via a permission set assigned to") and \
            "'View Setup and Configuration'" in clv
        assert grade.startswith(
            f"field Contact.CLM_Grade__c not written: read-only for the integration user ({user}): grant Edit on "
            f"CLM_Grade__c on Contact via a permission set assigned to the integration user ({user})")
        state = crm_state(e.emulator)
        assert all(v.get("CLM_Stage__c") and v.get("CLM_Lead_Score__c") is not None for v in state.values())
        assert not any(v.get("CLM_Grade__c") or v.get("CLM_Clv__c") for v in state.values())
        # The sync set nothing up: no field, permission set or grant created.
        assert (store.count("PermissionSet"), store.count("FieldPermissions"), store.count("CustomField")) == setup
        assert e.emulator.request_counts["POST /tooling/sobjects/CustomField"] == 0
        # Once the admin grants Edit again, the next run writes the grades.
        e.emulator.edit(rows["Contact.CLM_Grade__c"], {"PermissionsEdit": True})
        again = e.runner().run(SyncOptions(as_of=e.data.as_of))
        assert again.status == "ok" and [p for p in again.problems if "CLM_Grade__c" in p] == []
        assert again.planned_fields.get("grade") == 300
        assert all(v.get("CLM_Grade__c") for v in crm_state(e.emulator).values())
    finally:
        e.server.stop()


def test_a_converted_leads_stage_history_follows_it_into_its_contact(env: Env) -> None:
    config = env.config(objects=["Contact", "Lead"])
    admin = env.connector(config, session_id=env.emulator.admin_session_id,
                          assign_to=env.emulator.store.org.username)
    admin.ensure_fields(output_specs(config))  # our fields on Lead too, as an admin sets them up
    lead = env.emulator.create("Lead", {"LastName": "Ngata", "Company": "Kauri Ltd", "Email": "aroha@kauri.example"})
    runner = SyncRunner(config, env.connector(config), SQLiteState(config.sync.state_path, connection_id(config)))
    first = env.data.as_of
    assert runner.run(SyncOptions(as_of=first)).status == "ok"
    stage, since = runner.state.stages()[lead]
    assert since == first.timestamp()
    contact_id = env.emulator.convert_lead(lead)
    later = first + timedelta(days=3)
    assert runner.run(SyncOptions(as_of=later)).status == "ok"
    stages = runner.state.stages()
    assert lead not in stages and lead not in {c.id for c in runner.state.contacts()}
    assert stages[contact_id] == (stage, first.timestamp()), "in the same stage since the lead entered it"
    with env.emulator.store.lock:
        written = (env.emulator.store.get(contact_id) or {}).get("CLM_Stage_Since__c")
    assert written == first, "the contact carries the lead's stage-since"


def test_large_plans_go_through_bulk_jobs_with_the_same_result(tmp_path: Path) -> None:
    collections, bulk = start(tmp_path / "a", 1_200), start(tmp_path / "b", 1_200)
    try:
        one = collections.runner().run(SyncOptions(as_of=collections.data.as_of))
        runner = bulk.runner(bulk_threshold=500)
        two = runner.run(SyncOptions(as_of=bulk.data.as_of))
        assert one.status == two.status == "ok" and one.written_records == two.written_records == 1_200
        assert isinstance(runner.connector, SalesforceConnector) and runner.connector.reader.bulk_jobs >= 4
        # Bulk: a handful of calls per job instead of one per 200 records (and Bulk queries for the pull).
        assert two.write_calls == 1, "one bulk chunk"
        assert crm_state(collections.emulator) == crm_state(bulk.emulator)
        assert bulk.runner(bulk_threshold=500).run(SyncOptions(as_of=bulk.data.as_of)).planned_records == 0
    finally:
        collections.server.stop()
        bulk.server.stop()


def test_a_value_edited_by_a_person_is_reported_not_overwritten(env: Env) -> None:
    runner = env.runner(sync={"on_conflict": "report"})
    runner.run(SyncOptions(as_of=env.data.as_of))
    victim = sorted(crm_state(env.emulator))[7]
    env.emulator.edit(victim, {"CLM_Grade__c": "A", "Hs_Email_Click__c": 50})
    summary = runner.run(SyncOptions(as_of=env.data.as_of))
    assert summary.conflicts >= 1 and any(c["record_id"] == victim for c in summary.conflict_samples)
    assert crm_state(env.emulator)[victim]["CLM_Grade__c"] == "A"


def test_deleted_between_pull_and_write_and_locked_rows_lose_nothing(tmp_path: Path) -> None:
    e = start(tmp_path, 800)
    try:
        runner = e.runner()
        runner.run(SyncOptions(as_of=e.data.as_of, dry_run=True))
        e.emulator.add_fault(FaultRule(kind="deleted_before_write", rate=0.02, path_prefix=WRITES))
        # Locks on 30% of the attempts: most clear on the connector's retries, the rest outlast them and are
        # reported as transient, for the next run to write.
        e.emulator.add_fault(FaultRule(kind="lock_row", rate=0.3, path_prefix=WRITES))
        first = runner.run(SyncOptions(as_of=e.data.as_of))
        assert first.status == "ok" and first.gone > 0 and first.rejected_count > 0
        assert all(r["transient"] and "UNABLE_TO_LOCK_ROW" in r["reason"] for r in first.rejected)
        assert first.written_records + first.gone + first.rejected_count == 800
        assert runner.state.counts()["contacts"] == 800 - first.gone
        assert e.emulator.max_writes_per_field() == 1, "a locked record retried is written once"
        locked = [r["record_id"] for r in first.rejected]
        e.emulator.clear_faults()
        second = e.runner().run(SyncOptions(as_of=e.data.as_of))
        assert second.status == "ok" and second.rejected_count == 0
        assert all(e.emulator.writes_to(rid).get("CLM_Stage__c") == 1 for rid in locked)
        state = crm_state(e.emulator)
        assert len(state) == 800 - first.gone and all(v.get("CLM_Stage__c") for v in state.values())
        # The deletions changed the population the CLV model is fitted on, so other values moved and were
        # written again by the second run; after it, nothing is left.
        assert e.runner().run(SyncOptions(as_of=e.data.as_of)).planned_records == 0
    finally:
        e.server.stop()


def test_5xx_timeouts_drops_and_an_expired_session_end_in_the_clean_state(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    clean = start(tmp_path / "clean", 600)
    try:
        clean.runner().run(SyncOptions(as_of=clean.data.as_of))
        expected = crm_state(clean.emulator)
    finally:
        clean.server.stop()
    faults = FaultInjector(seed=9)
    for kind, extra in (("status", {"status": 503}), ("timeout", {"seconds": 2.5}), ("drop", {})):
        faults.add(FaultRule(kind=kind, rate=0.06, path_prefix="/services/data", **extra))  # type: ignore[arg-type]
    noisy = start(tmp_path / "noisy", 600, faults)
    try:
        creds = noisy.emulator.credentials
        monkeypatch.setenv("SF_SANDBOX_URL", noisy.server.url)  # the org's My Domain
        monkeypatch.setenv("SF_CONSUMER_KEY", creds.consumer_key)
        monkeypatch.setenv("SF_CONSUMER_SECRET", creds.consumer_secret)
        # Client credentials (a new org refuses SOAP login()): the session expires in the middle of the writes
        # and is replaced once.
        runner = noisy.runner(connector={"session_id": None, "instance_url": None, "timeout": 2.0},
                              auth="client_credentials", consumer_key_env="SF_CONSUMER_KEY",
                              consumer_secret_env="SF_CONSUMER_SECRET")
        # after=1: the second write request, since 600 records may take only three (200 a request).
        expiry = noisy.emulator.add_fault(FaultRule(kind="expired_session", after=1, count=1, path_prefix=WRITES))
        summary = runner.run(SyncOptions(as_of=noisy.data.as_of))
        assert expiry.fired == 1
        assert summary.status == "ok" and summary.retries > 0, summary.message
        assert isinstance(runner.connector, SalesforceConnector) and runner.connector.client.logins == 2
        assert crm_state(noisy.emulator) == expected
    finally:
        noisy.server.stop()


def test_daily_limit_mid_run_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    e = start(tmp_path, 1_500)
    try:
        runner = e.runner()
        runner.run(SyncOptions(as_of=e.data.as_of, dry_run=True))
        e.emulator.add_fault(FaultRule(kind="daily_limit", after=3, count=1_000_000, path_prefix=WRITES))
        partial = runner.run(SyncOptions(as_of=e.data.as_of))
        assert partial.status == "partial" and "daily" in partial.message.lower()
        assert 0 < partial.written_records < 1_500
        e.emulator.clear_faults()  # the rolling 24 hours freed requests
        resumed = e.runner().run(SyncOptions(as_of=e.data.as_of))
        assert resumed.status == "ok"
        assert partial.written_records + resumed.written_records + resumed.already_current >= 1_500
        assert e.emulator.max_writes_per_field() == 1, "no record written twice"
        assert all(v.get("CLM_Stage__c") for v in crm_state(e.emulator).values())
    finally:
        e.server.stop()


def test_the_api_reserve_is_left_to_other_integrations(tmp_path: Path) -> None:
    e = start(tmp_path, 1_500, daily_api_limit=10_000)
    try:
        runner = e.runner()
        runner.run(SyncOptions(as_of=e.data.as_of, dry_run=True))
        runner.connector.ensure_fields(runner.specs)
        # What a run costs before its writes (fields found in place, an incremental pull of nothing):
        e.emulator.set_api_usage(0)
        runner.connector.ensure_fields(runner.specs)
        list(runner.connector.pull(runner.state.cursor()))
        overhead = e.emulator.api_usage
        # Other integrations used most of today's allowance; 20% (2,000) must stay untouched, which leaves this
        # run its overhead and three write batches.
        e.emulator.set_api_usage(8_000 - overhead - 3)
        partial = runner.run(SyncOptions(as_of=e.data.as_of))
        assert partial.status == "partial" and "reserve" in partial.message
        assert 0 < partial.written_records < 1_500
        assert e.emulator.api_usage <= 8_000 + 8, "at most the requests in flight beyond the reserve line"
    finally:
        e.server.stop()


def test_max_runtime_stops_at_a_checkpoint_and_the_next_run_finishes(tmp_path: Path) -> None:
    from connectors.transport import Limits, RateLimiter, Transport

    e = start(tmp_path, 1_500)
    try:
        e.runner().run(SyncOptions(as_of=e.data.as_of, dry_run=True))
        slow = Transport(RateLimiter(Limits(2, 1.0)), concurrency=1)
        partial = e.runner(connector={"transport": slow}).run(SyncOptions(as_of=e.data.as_of, max_runtime=4.0))
        assert partial.status == "partial" and "will resume" in partial.message
        assert partial.written_records < 1_500
        done = e.runner().run(SyncOptions(as_of=e.data.as_of))
        assert done.status == "ok" and len(crm_state(e.emulator)) == 1_500
        assert e.emulator.max_writes_per_field() == 1
    finally:
        e.server.stop()


KILLED_RUN = textwrap.dedent("""
    import json, sys
    from datetime import datetime
    from pathlib import Path
    import requests
    from cli.demo import salesforce_demo_config
    from cli.wiring import build_connector, connection_id
    from connectors.transport import Limits, RateLimiter, Transport
    from sync.runner import SyncOptions, SyncRunner
    from sync.state import SQLiteState
    url, session_id, ca, root, as_of, fields = sys.argv[1:7]
    mapping = json.loads(fields)
    config = salesforce_demo_config(Path(root) / "state.db", mapping["contacts"], mapping["deals"])
    session = requests.Session()
    session.trust_env = False
    session.verify = ca
    # Slow enough that a kill lands in the middle of the writes.
    transport = Transport(RateLimiter(Limits(8, 1.0)), concurrency=2)
    connector = build_connector(config, session=session, instance_url=url, session_id=session_id, transport=transport)
    runner = SyncRunner(config, connector, SQLiteState(config.sync.state_path, connection_id(config)))
    print(json.dumps(runner.run(SyncOptions(as_of=datetime.fromisoformat(as_of))).to_dict()["status"]))
""")


@pytest.mark.slow
def test_killed_at_random_points_during_writes_then_resumed(tmp_path: Path) -> None:
    e = start(tmp_path, 2_000)
    try:
        e.runner().run(SyncOptions(as_of=e.data.as_of, dry_run=True))  # fields exist; later runs are incremental
        fields = json.dumps({"contacts": e.seeded.contact_fields, "deals": e.seeded.deal_fields})
        runs = KilledRuns(KILLED_RUN, tmp_path, e.server.url, e.emulator.session_id, str(e.server.ca_path),
                          str(tmp_path), e.data.as_of.isoformat(), fields)
        complete = 2_000 * len(output_specs(e.runner().config))
        progress = [0]
        runs.kill_after((2.5, 3.0, 3.5, 4.0, 2.8, 3.8, 2.6, 3.2, 4.4, 3.6),
                        observe=lambda: progress.append(e.emulator.total_writes()))
        assert any(a < b < complete for a, b in pairwise(progress)), \
            f"some kill landed in the middle of the writes: {progress}"
        runs.finish()
        assert e.runner().run(SyncOptions(as_of=e.data.as_of)).planned_records == 0
        assert e.emulator.max_writes_per_field() == 1, "a record was written twice"
        state = crm_state(e.emulator)
        assert len(state) == 2_000 and all(v.get("CLM_Stage__c") for v in state.values())
    finally:
        e.server.stop()
