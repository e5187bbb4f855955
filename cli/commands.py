"""The commands that talk to a CRM: check, fields ensure, pull, score, sync, runs."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli import wiring
from cli.group import cli
from cli.output import (
    EXIT_FAILURE,
    EXIT_INCOMPLETE,
    EXIT_PARTIAL,
    Part,
    console,
    emit_json,
    err_console,
    handles_errors,
    json_option,
    literal,
    plural,
    say,
)
from core.config import ClmConfig
from core.errors import ClmError, ConnectorError, UsageError
from core.redact import redact, redact_values
from sync import exports, preflight
from sync.runner import Progress as ProgressCallback
from sync.runner import RunSummary, SyncOptions, output_specs

config_option = click.option("--config", "-c", "config_path", type=click.Path(path_type=Path),
                             default=Path("clm.toml"), show_default=True, help="Configuration file.")


@contextmanager
def progress_bars(enabled: bool) -> Iterator[ProgressCallback]:
    """Progress bars with counts and rates on a terminal; silent otherwise (cron, CI, --json)."""
    if not enabled or not err_console.is_terminal:
        yield lambda step, done, total: None
        return
    # markup=False: a step name is printed as it is, like every other text (see cli.output).
    columns = (TextColumn("{task.description:<6}", markup=False), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}", markup=False), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=False) as bars:
        tasks: dict[str, TaskID] = {}

        def update(step: str, done: int, total: int | None) -> None:
            if step not in tasks:
                tasks[step] = bars.add_task(step, total=total, rate="")
            task = bars.tasks[tasks[step]]
            elapsed = task.elapsed or 0.0
            rate = f"{done / elapsed:,.0f}/s" if elapsed > 0.5 else ""
            bars.update(tasks[step], completed=done, total=total, rate=rate)

        yield update


@cli.command()
@config_option
@json_option
@handles_errors
def check(config_path: Path, as_json: bool) -> None:
    """Check configuration, credentials, permissions, API reachability and our fields."""
    lines: list[dict[str, Any]] = []
    try:
        config = wiring.load(config_path)
        lines.append({"name": f"configuration {config_path}", "ok": True, "detail": config.crm.kind, "fix": ""})
    except ClmError as exc:
        lines.append({"name": f"configuration {config_path}", "ok": False, "detail": exc.message,
                      "fix": exc.hint or "`clm config check` lists every problem"})
        _print_checks(lines, as_json)
        sys.exit(exc.exit_code)
    exit_code = EXIT_FAILURE
    try:
        connector = wiring.build_connector(config)
        lines.append({"name": "credentials in the environment", "ok": True, "detail": "", "fix": ""})
        results = connector.check(output_specs(config))
        lines.extend(r.__dict__ for r in results)
        if results and results[0].ok:  # the CRM is reachable with these credentials: its properties can be listed
            lines.extend(_property_checks(config, connector))
    except ClmError as exc:
        lines.append({"name": "credentials in the environment", "ok": False, "detail": exc.message,
                      "fix": exc.hint or ""})
        # A variable that is not set is a usage error (exit 2), as the command would be for every other command.
        exit_code = max(exit_code, exc.exit_code)
    state_check = "state file" if config.sync.state_url is None else "state store"
    try:
        state = wiring.open_state(config)
        lines.append({"name": state_check, "ok": True, "detail": state.location, "fix": ""})
        state.close()
    except ClmError as exc:
        lines.append({"name": state_check, "ok": False, "detail": exc.message, "fix": exc.hint or ""})
    from sync.alerts import check as alert_checks

    lines.extend(alert_checks(config))  # variables set and URLs well formed; `clm alerts test` sends
    _print_checks(lines, as_json)
    if not all(line["ok"] for line in lines):
        sys.exit(exit_code)


def _property_checks(config: ClmConfig, connector: Any) -> list[dict[str, Any]]:
    """One line per object type: every configured property exists in the CRM (see :mod:`sync.preflight`)."""
    try:
        missing = preflight.missing_properties(config, connector)
    except ClmError as exc:
        return [{"name": "configured properties readable", "ok": False, "detail": exc.message,
                 "fix": exc.hint or ""}]
    out = []
    for object_type in ("contact", "deal"):
        mine = [m for m in missing if m.object_type == object_type]
        out.append({"name": f"configured {object_type} properties exist in the CRM", "ok": not mine,
                    "detail": "; ".join(m.describe() for m in mine), "missing": [m.__dict__ for m in mine],
                    "fix": _property_fix(mine)})
    return out


def _property_fix(problems: list[preflight.MissingProperty]) -> str:
    fixes = []
    if any(p.crm_type is None for p in problems):
        fixes.append("correct the names under [data] (the CRM's internal names), or create the properties")
    if any(p.crm_type is not None for p in problems):
        fixes.append("declare each mistyped property with the type the CRM holds, or use another property")
    return "; ".join(fixes)


def _print_checks(lines: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        emit_json({"ok": all(line["ok"] for line in lines), "checks": lines})
        return
    for line in lines:
        mark = ("✓", "green") if line["ok"] else ("✗", "red")
        detail = f" — {line['detail']}" if line["detail"] else ""
        say(mark, f" {line['name']}{detail}")
        if not line["ok"] and line["fix"]:
            say(f"    fix: {line['fix']}")


@cli.group()
def fields() -> None:
    """Manage the custom fields crm-lifecycle owns in the CRM."""


@fields.command("ensure")
@config_option
@click.option("--assign-to", "assign_to", metavar="USERNAME", default=None,
              help="Salesforce: the integration user's username, to whom the permission set granting our fields "
                   "is assigned (default: the user logged in, who must be an admin).")
@json_option
@handles_errors
def fields_ensure(config_path: Path, assign_to: str | None, as_json: bool) -> None:
    """Create our fields where missing; leave existing ones alone; report type conflicts.

    On Salesforce this is an admin step, run once with an admin's credentials: syncs, run as the integration
    user, only write the fields it may edit.
    """
    config = wiring.load(config_path)
    if assign_to is not None and config.crm.kind != "salesforce":
        raise UsageError("--assign-to is for Salesforce, where an admin grants our fields to the integration user",
                         hint="leave it out for HubSpot")
    connector = wiring.build_connector(config, **({"assign_to": assign_to} if assign_to else {}))
    statuses = connector.ensure_fields(output_specs(config))
    if as_json:
        emit_json({"ok": all(s.action not in ("conflict", "failed") for s in statuses),
                   "fields": [s.__dict__ for s in statuses]})
    else:
        for s in statuses:
            colour = {"created": "green", "updated": "green", "exists": "dim"}.get(s.action, "red")
            say((f"{s.action:>8}", colour), f" {s.crm_name} {s.detail}")
    if any(s.action in ("conflict", "failed") for s in statuses):
        sys.exit(EXIT_FAILURE)


def _runner_for(config: ClmConfig, progress: ProgressCallback) -> Any:
    return wiring.build_runner(config, wiring.build_connector(config), progress=progress)


@cli.command()
@config_option
@click.option("--full", is_flag=True, help="Rebuild the mirror from a full pull.")
@click.option("--dry-run", is_flag=True, help="Compute and show the plan; write nothing to the CRM.")
@click.option("--max-runtime", type=float, help="Stop cleanly at a checkpoint after this many seconds.")
@click.option("--export-plan", type=click.Path(path_type=Path), help="Write the plan to a .jsonl or .csv file.")
@json_option
@handles_errors
def sync(config_path: Path, full: bool, dry_run: bool, max_runtime: float | None, export_plan: Path | None,
         as_json: bool) -> None:
    """Pull, compute and write back what changed (exit 3: partial, will resume)."""
    config = wiring.load(config_path)
    if export_plan is not None:
        exports.check_writable(export_plan)  # before the run pulls and computes for nothing
    with progress_bars(not as_json) as progress:
        runner = _runner_for(config, progress)
        summary = runner.run(SyncOptions(full=full, dry_run=dry_run, max_runtime=max_runtime,
                                         export_plan=export_plan))
    show_summary(summary, as_json)
    if summary.status == "partial":
        sys.exit(EXIT_PARTIAL)
    if summary.status != "ok":
        sys.exit(EXIT_FAILURE)
    if summary.unwritten_fields:
        sys.exit(EXIT_INCOMPLETE)


PREVIEW_RECORDS = 3
_ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d")
"""How many planned records a dry run shows field by field (all of them: ``--export-plan``)."""


def _shown(value: Any) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if abs(value) < 1e15 else f"{value:.3g}"
    text = str(value)
    if _ISO_TIME.match(text):
        return text[:16].replace("T", " ")  # to the minute: the seconds of a computation time say nothing here
    return literal(redact(text))[:40]


def _show_preview(summary: RunSummary) -> None:
    """What a dry run would change: a few records old -> new, and the stage moves of the whole plan."""
    for sample in summary.samples[:PREVIEW_RECORDS]:
        before, after = sample["before"], sample["after"]
        changes = [f"{name} {_shown(before.get(name))} → {_shown(value)}" for name, value in after.items()
                   if name != "computed_at"]
        say(f"    {literal(sample['record_id'])}: " + "; ".join(changes))
    if len(summary.samples) > PREVIEW_RECORDS or summary.planned_records > len(summary.samples):
        say(f"    … and {summary.planned_records - min(PREVIEW_RECORDS, len(summary.samples)):,} more "
            "(every record old → new: --export-plan plan.csv)")
    if summary.stage_moves:
        say("  stage moves in this plan (CRM now → planned):")
        for move in summary.stage_moves[:10]:
            say(f"    {_shown(move['from']):>20} → {literal(move['to']):<20} {move['contacts']:>9,}")
        if len(summary.stage_moves) > 10:
            rest = sum(m["contacts"] for m in summary.stage_moves[10:])
            say(f"    {len(summary.stage_moves) - 10} other moves: {rest:,} contacts")


def show_summary(summary: RunSummary, as_json: bool) -> None:
    """Print a run summary for people, or as JSON; CRM text in it redacted as in the state file."""
    if as_json:
        emit_json(redact_values(summary.to_dict()))
        return
    colour = {"ok": "green", "partial": "yellow"}.get(summary.status, "red")
    status: Part = (summary.status, colour)
    say(f"run {summary.run_id} (", status, f", {summary.mode}, {summary.seconds:.1f}s)")
    say(f"  pulled {summary.pulled_contacts:,} contacts and {summary.pulled_deals:,} deals"
        f" ({summary.deleted:,} removed); mirror holds {summary.mirror.get('contacts', 0):,} contacts")
    if summary.planned_fields:
        fields_text = ", ".join(f"{k} {v:,}" for k, v in sorted(summary.planned_fields.items()))
        say(f"  plan: {summary.planned_records:,} records to update ({fields_text})")
    elif summary.planned:
        say("  plan: nothing to write — the CRM is up to date")
    if "dry-run" in summary.mode:
        _show_preview(summary)
    # A pull, or a run stopped before it planned, wrote nothing and has nothing to say about writing.
    if summary.planned and "dry-run" not in summary.mode:
        say(f"  wrote {plural(summary.written_records, 'record')} in {plural(summary.write_calls, 'call')}; "
            f"{summary.rejected_count:,} rejected, {summary.gone:,} gone, {summary.already_current:,} already current")
    say(f"  API: {plural(summary.api_calls, 'call')}, {plural(summary.retries, 'retry', 'retries')}"
        f" ({summary.throttled:,} throttled)")
    if summary.conflicts:
        say("  ", (f"{summary.conflicts:,} values were edited in the CRM since we wrote them", "yellow"),
            " (policy: see sync.on_conflict)")
        for c in summary.conflict_samples[:5]:
            say("  ", ("conflict", "yellow"), f" {literal(c['record_id'])} {c['field']}: CRM has "
                f"{_shown(c['crm'])}, we wrote {_shown(c['we_wrote'])}, we want {_shown(c['we_want'])}")
        if summary.conflicts > 5:
            say(f"  … all of them: clm runs show {summary.run_id}")
    for rejection in summary.rejected[:5]:
        say("  ", ("rejected", "red"), f" {rejection['record_id']}: {redact(rejection['reason'])}")
    if summary.unwritten_fields:
        say("  ", ("not written this run", "yellow"), f": {', '.join(summary.unwritten_fields)} (exit 4; see below)")
    for problem in summary.problems[:5]:
        say("  ", ("data", "yellow"), f" {redact(problem)}")
    for line in diagnostic_lines(summary.diagnostics):
        say(f"  {redact(line)}")
    if summary.message:
        say(f"  {redact(summary.message)}")
    for delivery in summary.alerts.get("deliveries", []):
        # What the run's alert rules sent (sync.alerts); a channel that failed is said, never fatal.
        say("  ", ("alert", "green" if delivery["ok"] else "yellow"),
            f" {delivery['channel']}: " + ("sent" if delivery["ok"] else f"not sent — {redact(delivery['detail'])}"))


def diagnostic_lines(diagnostics: dict[str, Any]) -> list[str]:
    """The few model facts a person wants after a run (everything is in --json)."""
    lines = []
    clv = diagnostics.get("clv") or {}
    if clv:
        params = clv.get("bgnbd") or {}
        fitted = ", ".join(f"{k}={params[k]:.3f}" for k in ("r", "alpha", "a", "b") if k in params)
        lines.append(f"CLV model: {clv.get('purchase_model')} + {clv.get('spend_model')}"
                     + (f" ({fitted})" if fitted else "") + (" — fallback: " + "; ".join(clv.get("notes", []))
                                                             if clv.get("fallback") else ""))
    predictive = diagnostics.get("predictive") or {}
    if predictive.get("status") == "ok":
        lines.append(f"predictive score: AUC {predictive.get('auc', 0):.3f}, top-decile lift "
                     f"{predictive.get('lift_top_decile', 0):.1f}")
    elif predictive.get("status") == "refused":
        lines.append(f"predictive score not written: {predictive.get('reason')}")
    # CRM values that did not fit their field or were impossible, one line per field (core.quality).
    lines.extend(str(line) for line in diagnostics.get("data") or []
                 if isinstance(line, str) and line.startswith(("contact.", "deal.")))
    return lines


@cli.command()
@config_option
@click.option("--full", is_flag=True, help="Rebuild the mirror from a full pull.")
@json_option
@handles_errors
def pull(config_path: Path, full: bool, as_json: bool) -> None:
    """Pull contacts and deals into the local mirror without computing or writing."""
    config = wiring.load(config_path)
    with progress_bars(not as_json) as progress:
        runner = _runner_for(config, progress)
        summary = runner.pull_only(full=full)
    show_summary(summary, as_json)


SCORE_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
"""The file types ``clm score`` writes, by extension."""


@cli.command()
@config_option
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True,
              help="Where to write the scores: .csv or .jsonl.")
@click.option("--no-pull", is_flag=True, help="Score the mirror as it is, without pulling first.")
@json_option
@handles_errors
def score(config_path: Path, output: Path, no_pull: bool, as_json: bool) -> None:
    """Compute stages, scores and CLV and export them, without writing to the CRM."""
    config = wiring.load(config_path)
    exports.check_writable(output)  # before the pull and the computation
    if output.suffix.lower() not in SCORE_FORMATS:
        # Anything else got JSON Lines under its name: an .xlsx that Excel then refuses to open.
        raise UsageError(f"cannot write scores as {output.suffix or 'a file without an extension'}: {output}",
                         hint="name the file .csv (opens in Excel and Google Sheets) or .jsonl (JSON Lines)")
    with progress_bars(not as_json) as progress:
        runner = _runner_for(config, progress)
        if not no_pull:
            runner.pull_only(full=False)
        result, _, diagnostics = runner.compute(datetime.now(UTC))
    rows = [r.model_dump(mode="json") for r in result.records()]
    if SCORE_FORMATS[output.suffix.lower()] == "csv":
        exports.write_csv(output, list(rows[0]) if rows else ["contact_id"], (list(row.values()) for row in rows))
    else:
        exports.write_jsonl(output, rows)
    if as_json:
        emit_json({"ok": True, "path": str(output), "contacts": len(rows), "diagnostics": diagnostics})
    else:
        say(f"wrote {len(rows):,} contacts' scores to {output}")


@cli.group(invoke_without_command=True)
@config_option
@click.option("--limit", default=20, show_default=True, help="How many runs to list, newest first.")
@json_option
@click.pass_context
@handles_errors
def runs(ctx: click.Context, config_path: Path, limit: int, as_json: bool) -> None:
    """The run history: when, what mode, what it did (`clm runs show N` for one run's records)."""
    if ctx.invoked_subcommand is not None:
        return
    config = wiring.load(config_path)
    state = wiring.open_state(config)
    history = state.runs(limit)
    if as_json:
        emit_json([{"id": r.id, "started_at": r.started_at, "finished_at": r.finished_at, "status": r.status,
                    "mode": r.mode, "summary": r.summary} for r in history])
        return
    # Sized for an 80-column terminal: a column rich must squeeze is cut to "…", which hid dates and modes.
    table = Table("run", "started (UTC)", "mode", "status", "contacts", "deals", "written", "rejected", "s",
                  box=None, pad_edge=False)
    for r in history:
        s = r.summary
        table.add_row(str(r.id), literal(r.started_at[:16].replace("T", " ")), literal(_short_mode(r.mode)),
                      literal(r.status), f"{s.get('pulled_contacts', 0):,}", f"{s.get('pulled_deals', 0):,}",
                      f"{s.get('written_records', 0):,}", f"{s.get('rejected_count', 0):,}",
                      f"{s.get('seconds', 0):.0f}")
    console.print(table)


def _short_mode(mode: str) -> str:
    return mode.replace("incremental", "incr.").replace("dry-run ", "dry ")


@runs.command("show")
@click.argument("run_id", type=int)
@config_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(0),
              help="How many records of each kind to print (all kept ones go to --export).")
@click.option("--export", "export_path", type=click.Path(path_type=Path), default=None,
              help="Write the run's rejected, conflicting and held-back records to a .csv or .jsonl file.")
@json_option
@handles_errors
def runs_show(run_id: int, config_path: Path, limit: int, export_path: Path | None, as_json: bool) -> None:
    """One run in detail: its counts, problems, the fields it did not write, and the records it could not write —
    rejected (with the CRM's reason), conflicting (edited in the CRM since we wrote them) and held back (refused
    before with the same values, so not sent again)."""
    if export_path is not None:
        exports.check_writable(export_path)
        if export_path.suffix.lower() not in (".csv", ".jsonl"):
            raise UsageError(f"cannot export run records as {export_path.suffix or 'a file without an extension'}",
                             hint="name the file .csv or .jsonl")
    config = wiring.load(config_path)
    record = wiring.open_state(config).run(run_id)
    s = record.summary
    # The summary keeps the first records of each kind (sync.runner.MAX_RECORDS_LISTED); the counts are complete.
    rejected: list[dict[str, Any]] = list(s.get("rejected") or [])
    conflicts: list[dict[str, Any]] = list(s.get("conflict_samples") or [])
    held_back: list[dict[str, Any]] = list(s.get("held_back_samples") or [])
    unwritten: list[str] = list(s.get("unwritten_fields") or [])
    rows = ([{"kind": "rejected", "record_id": r["record_id"], "field": r.get("field"), "detail": r["reason"]}
             for r in rejected]
            + [{"kind": "conflict", "record_id": c["record_id"], "field": c["field"],
                "detail": f"CRM has {c['crm']!r}, we wrote {c['we_wrote']!r}, we want {c['we_want']!r}"}
               for c in conflicts]
            + [{"kind": "held_back", "record_id": h["record_id"], "field": h.get("field"), "detail": h["reason"]}
               for h in held_back])
    if export_path is not None:
        if export_path.suffix.lower() == ".csv":
            exports.write_csv(export_path, ["kind", "record_id", "field", "detail"],
                              ([r["kind"], r["record_id"], r["field"] or "", r["detail"]] for r in rows))
        else:
            exports.write_jsonl(export_path, rows)
    detail = {"id": record.id, "started_at": record.started_at, "finished_at": record.finished_at,
              "status": record.status, "mode": record.mode, "as_of": record.as_of, "summary": s,
              "rejected": rejected, "conflicts": conflicts, "held_back": held_back, "unwritten_fields": unwritten,
              **({"export": str(export_path)} if export_path is not None else {})}
    if as_json:
        emit_json(redact_values(detail))
        return
    say(f"run {record.id} ({record.status}, {record.mode}) started {record.started_at[:19]}, as of "
        f"{record.as_of[:19]}")
    say(f"  pulled {s.get('pulled_contacts', 0):,} contacts and {s.get('pulled_deals', 0):,} deals; planned "
        f"{s.get('planned_records', 0):,}; wrote {s.get('written_records', 0):,}; rejected "
        f"{s.get('rejected_count', 0):,}; conflicts {s.get('conflicts', 0):,}; held back {s.get('held_back', 0):,}")
    if s.get("message"):
        say(f"  {redact(str(s['message']))}")
    if unwritten:
        say("  ", ("not written", "yellow"), f" {', '.join(unwritten)}: see the problems below")
    for problem in s.get("problems") or []:
        say("  ", ("problem", "yellow"), f" {redact(str(problem))}")
    colours = {"rejected": "red", "conflict": "yellow", "held_back": "yellow"}
    for kind, colour in colours.items():
        of_kind = [r for r in rows if r["kind"] == kind]
        _listing(kind.replace("_", " "), colour, [f"{r['record_id']} {r['field'] or ''}: {redact(str(r['detail']))}"
                                                  for r in of_kind[:limit]])
        total = {"rejected": s.get("rejected_count", 0), "conflict": s.get("conflicts", 0),
                 "held_back": s.get("held_back", 0)}[kind]
        if total > min(limit, len(of_kind)):
            where = f"all {len(of_kind):,} kept are in {export_path}" if export_path is not None else \
                "--export FILE writes the ones kept"
            say(f"  … {total - min(limit, len(of_kind)):,} more {kind.replace('_', ' ')} ({where})")
    if export_path is not None:
        say(f"  wrote {plural(len(rows), 'record')} to {export_path}")


def _listing(label: str, colour: str, lines: list[str]) -> None:
    for line in lines:
        say("  ", (label, colour), f" {line}")


@cli.group("state")
def state_group() -> None:
    """The local state file: mirror, cursors, what we wrote, run history."""


@state_group.command("rebind")
@config_option
@click.option("--yes", is_flag=True, help="Confirm the state file's account and the configured one are the same.")
@click.option("--from", "previous", default=None, metavar="CONNECTION",
              help="With a PostgreSQL state store (sync.state_url): the connection id whose state to take over "
                   "(without it, the ones the database holds are listed).")
@json_option
@handles_errors
def state_rebind(config_path: Path, yes: bool, previous: str | None, as_json: bool) -> None:
    """Bind the state file to the configured CRM URL, for the same account reached under a new URL (a sandbox
    restarted on another port, a corrected base_url), keeping the mirror and what was written.

    With a PostgreSQL store shared by several jobs, a changed URL is a new connection id: --from names the old
    one, whose state this configuration's connection then takes over. For another account, do not rebind: give
    it its own sync.state_path (or let it start its own state in the shared database) instead.
    """
    from sync.state import bound_connection, rebind

    config = wiring.load(config_path)
    if config.sync.state_url is not None:
        _rebind_shared(config, previous, yes, as_json)
        return
    if previous is not None:
        raise UsageError("--from is for a PostgreSQL state store (sync.state_url); a state file knows its "
                         "connection", hint="run `clm state rebind` without --from")
    path = config.sync.state_path
    new = wiring.connection_id(config)
    old = bound_connection(path)
    if old is None or old == new:
        if as_json:
            emit_json({"ok": True, "path": str(path), "connection": new, "changed": False})
        else:
            say(f"{path} already belongs to {new}" if old else f"{path} does not exist yet; nothing to rebind")
        return
    if not yes:
        raise UsageError(f"{path} belongs to {old}; this configuration connects to {new}",
                         hint="if both are the same CRM account, run `clm state rebind --yes`; for another account "
                              "set sync.state_path to a new file (rebinding would mix two accounts' records)")
    _check_reachable(config)
    rebind(path, new)
    if as_json:
        emit_json({"ok": True, "path": str(path), "connection": new, "previous": old, "changed": True})
    else:
        say(f"{path} now belongs to {new} (was {old}); the next run resumes from its mirror")


def _check_reachable(config: ClmConfig) -> None:
    """The configured URL answers with these credentials: a rebind to an address that does not work helps nobody."""
    reached = wiring.build_connector(config).check([])
    if not reached or not reached[0].ok:
        failed = reached[0] if reached else None
        raise ConnectorError(f"the CRM at the new URL did not answer: {failed.detail if failed else 'no answer'}",
                             hint=(failed.fix if failed else "") or "run `clm check`; the state is unchanged")


def _rebind_shared(config: ClmConfig, previous: str | None, yes: bool, as_json: bool) -> None:
    """``clm state rebind`` on a PostgreSQL store: this connection id takes over ``previous``'s state."""
    from sync.state_postgres import PostgresState

    state = wiring.open_state(config)
    try:
        assert isinstance(state, PostgresState)  # sync.state_url selects it
        new = wiring.connection_id(config)
        held = [(c, n, last) for c, n, last in state.connections() if c != new]
        if previous is None:
            if as_json:
                emit_json({"ok": True, "connection": new, "changed": False, "connections": [
                    {"connection": c, "contacts": n, "last_run": last} for c, n, last in held]})
                return
            if not held:
                say(f"the state store holds no other connection than {new}; nothing to rebind")
                return
            say(f"connections with a state in the store besides {new}:")
            for c, n, last in held:
                say(f"  {literal(c)}  {n:,} contacts, last run {last or 'never'}")
            say("to take one over (the same CRM account under its new URL): clm state rebind --from CONNECTION --yes")
            return
        if not yes:
            raise UsageError(f"this configuration connects to {new}; taking over the state of {previous}",
                             hint="if both are the same CRM account, add --yes; another account keeps its own state")
        _check_reachable(config)
        moved = state.adopt(previous)
    finally:
        state.close()
    if as_json:
        emit_json({"ok": True, "connection": new, "previous": previous, "changed": True, "contacts": moved})
    else:
        say(f"{new} now has the state of {previous} ({moved:,} contacts); the next run resumes from its mirror")
