"""Optional output fields (clv_low/clv_high): written to the CRM only when sync.write_fields lists them."""

from __future__ import annotations

from pathlib import Path

from cli.demo import demo_config
from cli.wiring import build_connector, connection_id
from connectors.sandbox.generator import generate
from connectors.sandbox.hubspot import RateLimits, start_hubspot_sandbox
from core.config import ClmConfig
from sync.runner import SyncOptions, SyncRunner, output_specs
from sync.state import SQLiteState


def test_output_specs_hold_optional_fields_only_when_listed() -> None:
    assert "clv_low" not in {s.name for s in output_specs(ClmConfig())}
    listed = ClmConfig.model_validate({"sync": {"write_fields": ["clv", "clv_low", "clv_high"]}})
    assert [s.name for s in output_specs(listed)] == ["clv", "computed_at", "clv_low", "clv_high"]


def test_clv_bounds_land_in_hubspot_when_asked_for(tmp_path: Path) -> None:
    data = generate(400, seed=5)
    server, emulator = start_hubspot_sandbox(data.contact_records(), data.deal_records(),
                                             rate_limits=RateLimits.off(), search_lag_ms=0)
    try:
        config = demo_config(server.url, tmp_path / "state.db")
        config = config.model_copy(update={"sync": config.sync.model_copy(
            update={"write_fields": ["clv", "clv_low", "clv_high"]})})
        runner = SyncRunner(config, build_connector(config, token=emulator.token),
                            SQLiteState(config.sync.state_path, connection_id(config)))
        runner.connector.ensure_fields(runner.specs)
        summary = runner.run(SyncOptions(as_of=data.as_of))
        assert summary.status == "ok" and summary.written_records > 0
        bounded = 0
        for contact_id in emulator.ids("contacts"):
            props = (emulator.record("contacts", contact_id) or {}).get("properties", {})
            if props.get("clm_clv_low") not in (None, ""):
                low, clv, high = (float(props[f"clm_{n}"]) for n in ("clv_low", "clv", "clv_high"))
                assert low <= clv <= high, contact_id
                bounded += 1
            assert "clm_lead_score" not in props or props["clm_lead_score"] in (None, "")  # not listed
        assert bounded > 20
    finally:
        server.stop()
