"""score_reasons and predictive_reasons written like our other optional fields: only when sync.write_fields lists
them, as text properties/fields, holding what the engine computes; through HubSpot, Salesforce and the file
connector (over real HTTP for the CRMs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hubspot import HubSpot

from cli.demo import demo_config
from cli.wiring import build_connector, connection_id
from connectors.sandbox.generator import generate
from connectors.sandbox.hubspot import RateLimits, start_hubspot_sandbox
from core.engine import enrich
from core.models import FieldType
from sync.runner import SyncOptions, SyncRunner, output_specs
from sync.state import SQLiteState
from tests.connectors.files.conftest import files_config, read_csv
from tests.connectors.files.conftest import runner as files_runner
from tests.connectors.files.test_files_connector import AS_OF as FILES_AS_OF
from tests.connectors.files.test_files_connector import setup as files_setup
from tests.sync.test_sync_salesforce import crm_state, pulled, start

WRITE = ["lead_score", "conversion_probability", "score_reasons", "predictive_reasons"]


def test_output_specs_hold_the_reasons_as_text_only_when_listed() -> None:
    from core.config import ClmConfig

    assert not {"score_reasons", "predictive_reasons"} & {s.name for s in output_specs(ClmConfig())}
    listed = {s.name: s for s in output_specs(ClmConfig.model_validate({"sync": {"write_fields": WRITE}}))}
    assert listed["score_reasons"].type is FieldType.STRING and listed["predictive_reasons"].type is FieldType.STRING


def _with_reasons(config: Any) -> Any:
    # A small sandbox has few conversions: a lower floor lets the predictive score (and its reasons) be written.
    return config.model_copy(update={"sync": config.sync.model_copy(update={"write_fields": WRITE}),
                                     "predictive": config.predictive.model_copy(update={"min_positives": 20})})


def test_reasons_land_in_hubspot_as_text_properties(tmp_path: Path) -> None:
    data = generate(1_200, seed=5)
    server, emulator = start_hubspot_sandbox(data.contact_records(), data.deal_records(),
                                             rate_limits=RateLimits.off(), search_lag_ms=0)
    try:
        config = _with_reasons(demo_config(server.url, tmp_path / "state.db"))
        runner = SyncRunner(config, build_connector(config, token=emulator.token),
                            SQLiteState(config.sync.state_path, connection_id(config)))
        runner.connector.ensure_fields(runner.specs)
        summary = runner.run(SyncOptions(as_of=data.as_of))
        assert summary.status == "ok" and summary.written_records > 0, summary.message
        assert summary.diagnostics["predictive"]["status"] == "ok", summary.diagnostics["predictive"]
        client = HubSpot(access_token=emulator.token, host=server.url)
        for name in ("clm_score_reasons", "clm_predictive_reasons"):
            prop = client.crm.properties.core_api.get_by_name("contacts", name)
            assert (prop.type, prop.field_type) == ("string", "text")
        contacts, deals = [], []
        for page in runner.connector.pull(None):
            contacts += page.contacts
            deals += page.deals
        direct = {r.contact_id: r for r in enrich(contacts, deals, config, data.as_of).records()}
        explained = predicted = 0
        for contact_id in emulator.ids("contacts"):
            props = (emulator.record("contacts", contact_id) or {}).get("properties", {})
            want = direct[contact_id]
            assert (props.get("clm_score_reasons") or None) == want.score_reasons, contact_id
            assert (props.get("clm_predictive_reasons") or None) == want.predictive_reasons, contact_id
            explained += want.score_reasons is not None
            predicted += want.predictive_reasons is not None
        assert explained > 600 and predicted > 300
        # A second run with nothing changed writes nothing: the texts compare equal to what HubSpot holds.
        again = runner.run(SyncOptions(as_of=data.as_of))
        assert again.planned_records == 0, again.planned_fields
    finally:
        server.stop()


def test_reasons_land_in_salesforce_as_text_fields(tmp_path: Path) -> None:
    env = start(tmp_path, 600, late_commits=0.0)
    try:
        runner = env.runner(sync={"write_fields": WRITE})
        statuses = {s.name: s.action for s in _admin_ensure(env, runner)}
        assert statuses["score_reasons"] == "created", statuses
        contacts, deals = pulled(runner.connector)
        direct = {r.contact_id: r for r in enrich(contacts, deals, runner.config, env.data.as_of).records()}
        summary = runner.run(SyncOptions(as_of=env.data.as_of))
        assert summary.status == "ok" and summary.rejected_count == 0, summary.message
        crm = crm_state(env.emulator)
        written = 0
        for contact_id, fields in crm.items():
            assert fields.get("CLM_Score_Reasons__c") == direct[contact_id].score_reasons, contact_id
            written += fields.get("CLM_Score_Reasons__c") is not None
        assert written > 300
        definition = env.emulator.store.object("Contact").field("CLM_Score_Reasons__c")  # type: ignore[union-attr]
        assert definition is not None and (definition.type, definition.length) == ("string", 255)
    finally:
        env.server.stop()


def _admin_ensure(env: Any, runner: SyncRunner) -> Any:
    """``clm fields ensure`` by the org's admin for the runner's fields (the optional ones included)."""
    config = runner.config
    admin = env.connector(config, session_id=env.emulator.admin_session_id, timeout=10.0,
                          assign_to=env.emulator.store.org.username)
    return admin.ensure_fields(output_specs(config))


def test_reasons_land_in_the_output_file(tmp_path: Path) -> None:
    _, _, mapping = files_setup(tmp_path)
    config = files_config(tmp_path, mapping, write_fields=WRITE)
    summary = files_runner(config).run(SyncOptions(as_of=FILES_AS_OF))
    assert summary.status == "ok", summary.message
    rows = {row["id"]: row for row in read_csv(tmp_path / "out" / "enrichment.csv")}
    assert "score_reasons" in next(iter(rows.values()))
    with_reasons = [r["score_reasons"] for r in rows.values() if r["score_reasons"]]
    # A text starting with + or - is what a spreadsheet evaluates as a formula: the CSV guard (core.csvcell) puts
    # "'" before it, which spreadsheets show as text and hide.
    assert len(with_reasons) > 100 and all(r.startswith(("'+", "'-")) for r in with_reasons)
    assert all(p[:1] in "+-" for r in with_reasons for p in r[1:].split("; "))


def test_a_missing_property_withholds_the_reasons_built_on_it_when_they_are_written() -> None:
    from core.config import ClmConfig
    from core.defaults import example_scoring_rules
    from sync.preflight import dependent_fields

    rules = [r.model_dump() for r in example_scoring_rules()]
    plain = ClmConfig.model_validate({"scoring": {"rules": rules},
                                      "predictive": {"enabled": True, "features": ["jobtitle"]}})
    assert not {"score_reasons", "predictive_reasons"} & set(dependent_fields(plain, "jobtitle"))
    listed = plain.model_copy(update={"sync": plain.sync.model_copy(update={"write_fields": WRITE})})
    blocked = dependent_fields(listed, "jobtitle")
    assert blocked[-2:] == ("score_reasons", "predictive_reasons") and "lead_score" in blocked
