"""``clm alerts test``: send a test notification to every channel ``[alerts]`` configures."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

from cli import wiring
from cli.commands import config_option
from cli.group import cli
from cli.output import EXIT_FAILURE, emit_json, handles_errors, json_option, say
from core.errors import UsageError
from core.redact import redact
from sync import alerts as sending


@cli.group("alerts")
def alerts_group() -> None:
    """Notifications of unattended runs (Slack, a webhook, e-mail), configured in [alerts]."""


@alerts_group.command("test")
@config_option
@json_option
@handles_errors
def alerts_test(config_path: Path, as_json: bool) -> None:
    """Send a test notification to every configured channel and say which worked (exit 1 if one failed)."""
    config = wiring.load(config_path)
    if not config.alerts.channels():
        raise UsageError("no alert channel is configured",
                         hint="add slack_webhook_url_env, webhook_url_env or [alerts.smtp] under [alerts]")
    deliveries = sending.send(config.alerts, sending.trial_alert(config, wiring.connection_id(config)))
    ok = all(d.ok for d in deliveries)
    if as_json:
        emit_json({"ok": ok, "deliveries": [asdict(d) for d in deliveries]})
    else:
        for d in deliveries:
            mark = ("✓", "green") if d.ok else ("✗", "red")
            say(mark, f" {d.channel}" + ("" if d.ok else f" — {redact(d.detail)}"))
    if not ok:
        sys.exit(EXIT_FAILURE)
