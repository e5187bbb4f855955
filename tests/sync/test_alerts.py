"""Alerts for unattended runs (issue 16): the rules, and real runs through the CLI against the HubSpot sandbox
notifying a local Slack-shaped webhook, a generic webhook and an SMTP server; a run that triggers nothing sends
nothing, a failing channel never fails the sync, and no secret reaches the output, the logs or the state file."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import cli
from connectors.sandbox.faults import FaultRule
from connectors.sandbox.generator import generate
from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits, start_hubspot_sandbox
from core.alert_rules import evaluate
from core.config import AlertsConfig, ClmConfig, parse_config
from core.errors import ConfigError
from sync import alerts
from sync.state import SQLiteState
from tests.sync.receivers import HttpReceiver, SmtpReceiver, http_receiver, smtp_receiver

#: The secret part of a Slack webhook URL: it must never be printed, logged or stored.
SLACK_SECRET = "XyZsecretTokenPart123"


def _config(**alerts_section: Any) -> AlertsConfig:
    return parse_config({"alerts": alerts_section}).alerts


def _summary(**values: Any) -> dict[str, Any]:
    return {"run_id": 7, "status": "ok", "mode": "incremental", "written_records": 100, "rejected_count": 0,
            "unwritten_fields": [], **values}


# --- rules ---------------------------------------------------------------------------------------------------


def test_rules_fire_on_status_rejections_unwritten_fields_and_metric_moves() -> None:
    config = _config(webhook_url_env="HOOK", max_rejection_rate=0.05, max_unwritten_fields=0,
                     metric=[{"name": "churn_rate", "max_change": 0.05, "direction": "up"},
                             {"name": "clv_total", "max_relative_change": 0.2}])
    before = {"customers": {"retention": {"churn_rate": 0.10}}, "clv": {"total": 1000.0}}
    after = {"customers": {"retention": {"churn_rate": 0.16}}, "clv": {"total": 700.0}}
    fired = evaluate(config, _summary(status="partial", message="time budget reached", rejected_count=6,
                                      written_records=94, unwritten_fields=["lead_score"]), after, before)
    assert [t.rule for t in fired] == ["status", "rejection_rate", "unwritten_fields", "metric:churn_rate",
                                       "metric:clv_total"]
    assert "time budget reached" in fired[0].message
    assert fired[1].value == 0.06 and "6 of 100" in fired[1].message
    assert "+6.0 points" in fired[3].message and fired[3].value == pytest.approx(0.06)
    assert fired[4].value == pytest.approx(-0.3)


def test_a_run_within_every_bound_triggers_nothing() -> None:
    config = _config(webhook_url_env="HOOK", max_rejection_rate=0.05, max_unwritten_fields=1,
                     metric=[{"name": "churn_rate", "max_change": 0.05, "direction": "up"}])
    before = {"customers": {"retention": {"churn_rate": 0.10}}}
    # Churn fell by 8 points: beyond 0.05 but in the direction the bound does not watch.
    after = {"customers": {"retention": {"churn_rate": 0.02}}}
    assert evaluate(config, _summary(rejected_count=5, written_records=95, unwritten_fields=["grade"]),
                    after, before) == []
    # No previous snapshot: nothing to compare, nothing fires.
    assert evaluate(config, _summary(), after, None) == []


def test_config_names_the_key_path_of_a_bad_value() -> None:
    with pytest.raises(ConfigError) as bad:
        parse_config({"alerts": {"metric": [{"name": "churnrate", "max_change": 0.05}],
                                 "smtp": {"host": "mail.example.com", "security": "none",
                                          "from_address": "clm@example.com", "to": ["ops@example.com"]},
                                 "webhook_url": "https://example.com/x"}})
    problems = {p.path: p.message for p in bad.value.problems}
    assert "did you mean 'churn_rate'" in problems["alerts.metric[0].name"]
    assert "unencrypted" in problems["alerts.smtp"]
    assert "did you mean 'webhook_url_env'" in problems["alerts.webhook_url"]
    with pytest.raises(ConfigError) as secret:
        parse_config({"alerts": {"smtp": {"host": "h", "from_address": "a@b.co", "to": ["c@d.co"], "password": "x"}}})
    assert [p.path for p in secret.value.problems] == ["alerts.smtp.password"]


def test_a_metric_moving_since_the_previous_run_in_the_state_is_sent(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    state = SQLiteState(tmp_path / "state.db", "hubspot:http://127.0.0.1:1")
    for mode, churn in (("full", 0.10), ("dry-run incremental", 0.30)):
        run = state.start_run(mode, datetime.now(UTC))
        state.finish_run(run, "ok", {}, {"customers": {"retention": {"churn_rate": churn}}})
    current = state.start_run("incremental", datetime.now(UTC))
    with http_receiver() as hook:
        monkeypatch.setenv("HOOK_URL", hook.url)
        config = parse_config({"alerts": {"webhook_url_env": "HOOK_URL",
                                          "metric": [{"name": "churn_rate", "max_change": 0.05}]}})
        # Compared with the last real run (0.10), not the dry run in between (0.30).
        sent = alerts.notify_run(config, state, _summary(run_id=current),
                                 {"customers": {"retention": {"churn_rate": 0.17}}})
        assert [t["rule"] for t in sent["triggers"]] == ["metric:churn_rate"]
        assert sent["deliveries"] == [{"channel": "webhook", "ok": True, "detail": ""}]
        assert len(hook.bodies) == 1 and "+7.0 points (10.0% → 17.0%)" in hook.bodies[0]["lines"][0]
        quiet = alerts.notify_run(config, state, _summary(run_id=current),
                                  {"customers": {"retention": {"churn_rate": 0.12}}})
        assert quiet == {} and len(hook.bodies) == 1


def test_a_transient_failure_is_retried_once_and_a_lasting_one_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    config = ClmConfig.model_validate({"alerts": {"slack_webhook_url_env": "SLACK_URL",
                                                  "webhook_url_env": "HOOK_URL"}})
    alert = alerts.trial_alert(config, "hubspot:test")
    with http_receiver() as slack, http_receiver() as hook:
        slack.statuses, slack.retry_after = [429, 200], "0"
        hook.statuses = [503]
        monkeypatch.setenv("SLACK_URL", slack.url)
        monkeypatch.setenv("HOOK_URL", hook.url)
        deliveries = alerts.send(config.alerts, alert)
    assert deliveries[0].ok and len(slack.bodies) == 2
    assert not deliveries[1].ok and len(hook.bodies) == 2
    assert "HTTP 503 after 2 attempts" in deliveries[1].detail and "HOOK_URL" in deliveries[1].detail
    assert hook.url not in deliveries[1].detail


def test_smtp_logs_in_and_retries_a_transient_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    with smtp_receiver() as smtp:
        smtp.replies, smtp.fail_times = {"MAIL": "451 4.3.0 try again later"}, 1
        config = ClmConfig.model_validate({"alerts": {"smtp": {
            "host": "127.0.0.1", "port": smtp.port, "security": "none", "username": "clm",
            "password_env": "SMTP_PASSWORD", "from_address": "clm@example.com", "to": ["ops@example.com"]}}})
        monkeypatch.setenv("SMTP_PASSWORD", "s3cret-pass")
        deliveries = alerts.send(config.alerts, alerts.trial_alert(config, "hubspot:test"))
    assert deliveries == [alerts.Delivery("smtp", True)]
    assert smtp.sessions == 2 and len(smtp.mails) == 1
    assert smtp.mails[0].login == ("clm", "s3cret-pass")
    assert smtp.mails[0].recipients == ["ops@example.com"]


# --- real runs through the CLI ---------------------------------------------------------------------------------


@pytest.fixture
def receivers() -> Iterator[tuple[HttpReceiver, HttpReceiver, SmtpReceiver]]:
    with http_receiver(f"/services/T0001/B0001/{SLACK_SECRET}") as slack, http_receiver() as hook, \
            smtp_receiver() as smtp:
        yield slack, hook, smtp


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            receivers: tuple[HttpReceiver, HttpReceiver, SmtpReceiver]) -> Iterator[tuple[HubSpotEmulator, Any]]:
    slack, hook, smtp = receivers
    data = generate(150, seed=4)
    server, emulator = start_hubspot_sandbox(data.contact_records(), data.deal_records(),
                                             rate_limits=RateLimits.off(), search_lag_ms=0)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HUBSPOT_TOKEN", emulator.token)
    monkeypatch.setenv("CLM_SLACK_WEBHOOK_URL", slack.url)
    monkeypatch.setenv("CLM_ALERT_WEBHOOK_URL", hook.url)
    monkeypatch.setenv("CLM_SMTP_PASSWORD", "smtp-secret-pw")
    assert CliRunner().invoke(cli, ["init", "--crm", "hubspot"]).exit_code == 0
    path = tmp_path / "clm.toml"
    path.write_text(path.read_text().replace('base_url = "https://api.hubapi.com"', f'base_url = "{server.url}"')
                    + f"""
[alerts]
slack_webhook_url_env = "CLM_SLACK_WEBHOOK_URL"
webhook_url_env = "CLM_ALERT_WEBHOOK_URL"
max_rejection_rate = 0.0
timeout_seconds = 3

[alerts.smtp]
host = "127.0.0.1"
port = {smtp.port}
security = "none"
username = "clm-alerts"
password_env = "CLM_SMTP_PASSWORD"
from_address = "clm@example.com"
to = ["revops@example.com", "oncall@example.com"]
""")
    yield emulator, server
    server.stop()


def _no_secret(*texts: str) -> None:
    for text in texts:
        assert SLACK_SECRET not in text and "smtp-secret-pw" not in text


def test_a_partial_run_alerts_every_channel_through_the_cli(
        project: tuple[HubSpotEmulator, Any], receivers: tuple[HttpReceiver, HttpReceiver, SmtpReceiver]) -> None:
    slack, hook, smtp = receivers
    result = CliRunner().invoke(cli, ["-v", "sync", "--max-runtime", "0", "--json"])
    assert result.exit_code == 3, result.output  # partial: the time budget ran out while pulling
    summary = json.loads(result.stdout)
    assert "alert sent through slack" in result.stderr
    assert summary["status"] == "partial"
    assert [d["ok"] for d in summary["alerts"]["deliveries"]] == [True, True, True]

    assert len(slack.bodies) == 1 and slack.paths == [f"/services/T0001/B0001/{SLACK_SECRET}"]
    message = slack.bodies[0]
    assert set(message) == {"text", "blocks"} and "partial" in message["text"]
    assert [b["type"] for b in message["blocks"]] == ["header", "section", "context"]
    assert "time budget" in message["blocks"][1]["text"]["text"]

    generic = hook.bodies[0]
    assert generic["run_id"] == summary["run_id"] and generic["status"] == "partial" and generic["crm"] == "hubspot"
    assert generic["connection"].startswith("hubspot:http://127.0.0.1:")
    assert generic["counts"]["pulled_contacts"] == summary["pulled_contacts"]
    assert [t["rule"] for t in generic["triggers"]] == ["status"]
    assert "http" not in json.dumps(generic).replace(generic["connection"], ""), "no links"

    mail = smtp.mails[0]
    assert mail.recipients == ["revops@example.com", "oncall@example.com"]
    assert mail.login == ("clm-alerts", "smtp-secret-pw")
    assert "partial" in str(mail.message["Subject"]) and f"clm runs show {summary['run_id']}" in \
        mail.message.get_payload()
    shown = CliRunner().invoke(cli, ["runs", "show", str(summary["run_id"]), "--json"])
    assert json.loads(shown.stdout)["summary"]["alerts"]["deliveries"][2] == {"channel": "smtp", "ok": True,
                                                                               "detail": ""}
    state_text = (Path("clm.toml").parent / ".clm" / "state.db").read_bytes().decode("latin-1")
    _no_secret(result.output, shown.output, state_text)


def test_rejections_alert_and_a_run_that_triggers_nothing_sends_nothing(
        project: tuple[HubSpotEmulator, Any], receivers: tuple[HttpReceiver, HttpReceiver, SmtpReceiver]) -> None:
    slack, hook, smtp = receivers
    emulator, _ = project
    first = CliRunner().invoke(cli, ["sync", "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["alerts"] == {}
    assert slack.bodies == [] and hook.bodies == [] and smtp.mails == [] and smtp.sessions == 0
    emulator.bulk_edit("contacts", emulator.ids("contacts")[10:40], {"hs_email_click": 40})  # scores to write
    emulator.add_fault(FaultRule(kind="partial_failure", path_prefix="/crm/v3/objects/contacts/batch/update",
                                 count=1, body={"category": "VALIDATION_ERROR", "message": "Property values were "
                                                "not valid: clm_stage"}))
    second = CliRunner().invoke(cli, ["sync"])
    assert "rejected" in second.output and "alert webhook: sent" in second.output
    assert [t["rule"] for t in hook.bodies[0]["triggers"]] == ["rejection_rate"]
    assert len(slack.bodies) == 1 and len(smtp.mails) == 1


def test_a_failed_run_alerts_and_a_failing_channel_never_fails_the_sync(
        project: tuple[HubSpotEmulator, Any], receivers: tuple[HttpReceiver, HttpReceiver, SmtpReceiver],
        monkeypatch: pytest.MonkeyPatch) -> None:
    slack, hook, _ = receivers
    _, server = project
    assert CliRunner().invoke(cli, ["sync"]).exit_code == 0
    with socket.socket() as probe:  # a port nothing listens on: the SMTP channel fails
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    path = Path("clm.toml")
    path.write_text(path.read_text().replace(f"port = {receivers[2].port}", f"port = {closed}"))
    monkeypatch.setenv("CLM_SLACK_WEBHOOK_URL", slack.url.replace("/services/", "/gone/"))
    slack.statuses = [404]
    server.stop()  # the CRM goes away: connection refused
    result = CliRunner().invoke(cli, ["--log-format", "json", "sync"])
    assert result.exit_code == 1, result.output  # the run's own failure, nothing more
    assert "refused" in result.output
    # Log-based alerting keys on the level: a failed run is an error, not an info line.
    finish = [json.loads(line) for line in result.stderr.splitlines() if '"finish"' in line]
    assert [(f["level"], f["message"].split(":")[0]) for f in finish] == [("error", "run 2 failed")]
    assert hook.bodies[-1]["status"] == "failed" and [t["rule"] for t in hook.bodies[-1]["triggers"]] == ["status"]
    history = json.loads(CliRunner().invoke(cli, ["runs", "--json"]).stdout)
    deliveries = {d["channel"]: d for d in history[0]["summary"]["alerts"]["deliveries"]}
    assert deliveries["webhook"]["ok"]
    assert not deliveries["slack"]["ok"] and "HTTP 404" in deliveries["slack"]["detail"]
    assert not deliveries["smtp"]["ok"] and "cannot reach the SMTP server" in deliveries["smtp"]["detail"]
    assert "alert not sent through smtp" in result.stderr  # a warning: logged without -v
    _no_secret(result.output, json.dumps(history))


def test_alerts_test_sends_to_every_channel_and_check_names_a_missing_variable(
        project: tuple[HubSpotEmulator, Any], receivers: tuple[HttpReceiver, HttpReceiver, SmtpReceiver],
        monkeypatch: pytest.MonkeyPatch) -> None:
    slack, hook, smtp = receivers
    result = CliRunner().invoke(cli, ["alerts", "test"])
    assert result.exit_code == 0, result.output
    assert result.output.count("✓") == 3
    assert hook.bodies[0]["event"] == "test" and len(slack.bodies) == 1 and len(smtp.mails) == 1
    monkeypatch.delenv("CLM_ALERT_WEBHOOK_URL")
    failed = CliRunner().invoke(cli, ["alerts", "test", "--json"])
    assert failed.exit_code == 1
    webhook = next(d for d in json.loads(failed.stdout)["deliveries"] if d["channel"] == "webhook")
    assert "CLM_ALERT_WEBHOOK_URL is not set (named by alerts.webhook_url_env)" in webhook["detail"]
    checked = CliRunner().invoke(cli, ["check", "--json"])
    lines = {line["name"]: line for line in json.loads(checked.stdout)["checks"]}
    assert not lines["alerts: webhook URL in CLM_ALERT_WEBHOOK_URL"]["ok"]
    assert lines["alerts: Slack webhook URL in CLM_SLACK_WEBHOOK_URL"]["ok"]
    _no_secret(result.output, failed.output, checked.output)
