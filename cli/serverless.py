"""Serverless entry point: ``cli.serverless.handler(event, context)`` with the AWS Lambda signature.

It runs one sync within the invocation's remaining time and returns the run summary as JSON. A run that
hits the budget stops at a checkpoint and reports ``partial``; the next scheduled invocation resumes.

Configuration: ``CLM_CONFIG`` (path of clm.toml, default ``clm.toml``; ``event["config"]`` overrides),
``CLM_STATE_PATH`` (where the state lives: on Lambda, a mounted EFS path, since /tmp does not survive cold
starts), and the secrets the configuration names (e.g. ``HUBSPOT_TOKEN``) from the function's environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cli import wiring
from core.errors import ClmError
from sync.runner import SyncOptions

#: Seconds kept back from the remaining time to checkpoint, record the run and return.
SAFETY_MARGIN = 15.0


def _budget(context: Any, event: dict[str, Any]) -> float | None:
    if "max_runtime" in event:
        return float(event["max_runtime"])
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    return max(1.0, float(remaining()) / 1000.0 - SAFETY_MARGIN)


def handler(event: dict[str, Any] | None, context: Any) -> dict[str, Any]:
    """Run one sync; return ``{"ok", "status", "summary"}`` (or the error) as a JSON-ready dict."""
    event = event or {}
    config_path = Path(str(event.get("config") or os.environ.get("CLM_CONFIG", "clm.toml")))
    try:
        config = wiring.load(config_path)
        state_path = os.environ.get("CLM_STATE_PATH")
        if state_path:
            config = config.model_copy(update={"sync": config.sync.model_copy(
                update={"state_path": Path(state_path)})})
        runner = wiring.build_runner(config, wiring.build_connector(config))
        summary = runner.run(SyncOptions(full=bool(event.get("full")), dry_run=bool(event.get("dry_run")),
                                         max_runtime=_budget(context, event)))
    except ClmError as exc:
        return {"ok": False, "status": "failed", "error": type(exc).__name__, "message": exc.message,
                "hint": exc.hint}
    # Fields left unwritten need a person (a property to fix, a permission to grant): not ok, as exit 4 on the CLI.
    ok = summary.status in ("ok", "partial") and not summary.unwritten_fields
    return {"ok": ok, "status": summary.status, "summary": summary.to_dict()}
