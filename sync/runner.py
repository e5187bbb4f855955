"""One sync run end to end: pull → mirror → enrich → plan → write → record.

Progress is committed as it goes (each pulled page, each written batch), so a run stopped anywhere — a
daily limit, the time budget, a crash, ``kill -9`` — leaves a state the next run resumes from: it pulls what
changed (including our own writes, whose values then show up as already current), recomputes, and writes
only what is still different. Nothing is written twice by mistake and nothing is skipped.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors.base import BulkWriter, Connector, FieldAccess, FieldUpdate, WriteResult, WritesOneByOne
from core.config import ClmConfig
from core.errors import AuthError, ConnectorError, RateLimited, TimeBudgetReached, UsageError
from core.fields import OPTIONAL_OUTPUT_FIELDS, OUTPUT_FIELDS
from core.models import FieldSpec
from sync import preflight
from sync.planner import DesiredColumns, Plan, make_plan, values_hash
from sync.state import Rejection, StateStore

if TYPE_CHECKING:  # the engine is imported when a run computes (see compute), not when the CLI starts
    from core.engine import EnrichResult

Progress = Callable[[str, int, int | None], None]
"""``progress(step, done, total)``: called as pages are pulled and batches written."""

MAX_LISTED = 20
"""Problems a run summary keeps (each names its fix; more say nothing new)."""
MAX_RECORDS_LISTED = 1_000
"""Rejected, conflicting and held-back records a run summary keeps for ``clm runs show`` and its export (the counts
are always complete)."""
#: Records per bulk write (a connector's Bulk API job): one checkpoint each, so a stop loses at most this much
#: progress, which the next run finds already in the CRM when it pulls, and does not write again.
BULK_CHUNK = 10_000
#: How long a check that all our fields exist is trusted (see ``SyncRunner._ensure_fields``).
FIELDS_RECHECK = timedelta(days=1)
FIELDS_MARKER = "fields_ensured"
#: How far ahead of the clock an as-of may be (clock skew between machines), no more.
AS_OF_MARGIN = timedelta(minutes=10)
log = logging.getLogger("clm.sync")


@dataclass
class SyncOptions:
    """How to run: full rebuild, dry run, time budget, fixed as-of time (tests), plan export path."""

    full: bool = False
    dry_run: bool = False
    max_runtime: float | None = None
    as_of: datetime | None = None
    export_plan: Path | None = None


@dataclass
class RunSummary:
    """What a run did, for the terminal, ``--json`` and the run history."""

    run_id: int
    status: str
    mode: str
    as_of: str
    pulled_contacts: int = 0
    pulled_deals: int = 0
    deleted: int = 0
    mirror: dict[str, int] = field(default_factory=dict)
    planned: bool = False
    """Whether the run got as far as planning (a pull, or a stop while pulling, did not)."""
    planned_records: int = 0
    planned_fields: dict[str, int] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    stage_moves: list[dict[str, Any]] = field(default_factory=list)
    """The plan's stage changes counted by (CRM stage now -> planned stage), most frequent first; ``from`` is None
    where the CRM holds no stage of ours yet."""
    written_records: int = 0
    already_current: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    rejected_count: int = 0
    held_back: int = 0
    gone: int = 0
    conflicts: int = 0
    conflict_samples: list[dict[str, Any]] = field(default_factory=list)
    held_back_samples: list[dict[str, Any]] = field(default_factory=list)
    """Records not sent because the CRM refused the same values before (see ``clm runs show``)."""
    write_calls: int = 0
    api_calls: int = 0
    retries: int = 0
    throttled: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    unwritten_fields: list[str] = field(default_factory=list)
    """Our fields this run did not write at all (a missing property, a field of another type, no permission);
    ``problems`` names each with its fix."""
    diagnostics: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    alerts: dict[str, Any] = field(default_factory=dict)
    """The alert rules the run triggered and each channel's delivery (:mod:`sync.alerts`); empty: none sent."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


def output_specs(config: ClmConfig) -> list[FieldSpec]:
    """Our fields, with enumeration options from the configured stage model and actions."""
    stages = tuple(s.name for s in config.stages)
    actions = tuple(sorted({s.action for s in config.stages} | {a.action for a in config.actions}))
    wanted = set(config.sync.write_fields) if config.sync.write_fields else None
    out = []
    # Optional fields are written only when listed.
    optional = [spec for spec in OPTIONAL_OUTPUT_FIELDS if wanted is not None and spec.name in wanted]
    for spec in (*OUTPUT_FIELDS, *optional):
        if wanted is not None and spec.name not in wanted and spec.name != "computed_at":
            continue
        if spec.name == "conversion_probability" and not config.predictive.enabled:
            continue  # a field nothing fills would read as "no chance" in every CRM view that sorts by it
        if spec.name == "stage":
            spec = spec.model_copy(update={"options": stages})
        elif spec.name == "next_best_action":
            spec = spec.model_copy(update={"options": actions})
        out.append(spec)
    return out


class SyncRunner:
    """Runs syncs for one configuration, connector and state file."""

    def __init__(self, config: ClmConfig, connector: Connector, state: StateStore,
                 progress: Progress | None = None) -> None:
        self.config = config
        self.connector = connector
        self.state = state
        self.progress = progress or (lambda step, done, total: None)
        self.specs = output_specs(config)

    def run(self, options: SyncOptions | None = None) -> RunSummary:
        """One run under the state's run lock (one run per CRM connection at a time)."""
        options = options or SyncOptions()
        with self.state.run_lock():
            return self._run(options)

    def _run(self, options: SyncOptions) -> RunSummary:
        started = time.monotonic()
        deadline = None if options.max_runtime is None else started + options.max_runtime
        # Work that waits on the CRM (a queued Bulk job) stops at the same deadline as the run.
        self.connector.deadline = deadline
        as_of = options.as_of or datetime.now(UTC)
        if as_of > datetime.now(UTC) + AS_OF_MARGIN:
            # A future as-of would stamp future stage_since/computed_at that later, correct runs carry forward.
            raise UsageError(f"the as-of time {as_of.isoformat()} is in the future",
                             hint="leave it unset (now) or give a past time to backtest")
        self.state.mark_interrupted_runs()
        in_flight = self.state.in_flight()
        self.state.close_plans()
        full = options.full or not self.state.cursor() or self.state.full_pull_in_progress()
        mode = ("dry-run " if options.dry_run else "") + ("full" if full else "incremental")
        run_id = self.state.start_run(mode, as_of)
        summary = RunSummary(run_id=run_id, status="running", mode=mode, as_of=as_of.isoformat())
        metrics: dict[str, Any] | None = None
        calls_before = self._api_counters()
        try:
            wanted = [s.name for s in self.specs]
            if not options.dry_run:
                self._ensure_fields(summary)
            # A misspelled property reads as empty everywhere: never write scores computed from it.
            self.specs = preflight.withhold(self.config, self.connector, self.specs, summary.problems)
            kept = {s.name for s in self.specs}
            summary.unwritten_fields = [name for name in wanted if name not in kept]
            stopped = self._pull(full, summary, deadline, restart=options.full)
            if stopped or (deadline is not None and time.monotonic() > deadline):
                summary.status, summary.message = "partial", "time budget used up while pulling; will resume"
                return summary
            result, metrics, diagnostics = self.compute(as_of, persist=not options.dry_run, run_id=run_id)
            summary.diagnostics = diagnostics
            desired = DesiredColumns(result, self.specs)
            current = self.state.owned_values()
            plan = make_plan(
                desired, current, self.state.written(), self.specs,
                in_flight=in_flight, rejections=self.state.rejections(),
                on_conflict=self.config.sync.on_conflict, tolerance=self.config.sync.numeric_tolerance,
            )
            if self.config.crm.kind == "hubspot" and self.config.hubspot.write_native_lifecyclestage:
                self._native_lifecycle(plan, result)
            self._describe_plan(plan, summary, current)
            if options.export_plan is not None:
                export_plan(plan, options.export_plan, current)
            if options.dry_run:
                summary.status, summary.message = "ok", "dry run: nothing was written to the CRM"
                return summary
            if plan.already_current:
                self.state.record_written(run_id, plan.already_current)
            self._write(run_id, plan, summary, deadline)
            if summary.status == "running":
                summary.status = "ok"
            return summary
        except RateLimited as exc:
            summary.status = "partial"
            summary.message = f"{exc.message}; {exc.hint or 'run again later to resume'}"
            return summary
        except TimeBudgetReached as exc:
            # Before the pull (field checks, preflight): a slow pace used the budget up; nothing was computed.
            summary.status, summary.message = "partial", f"{exc.message}; will resume"
            return summary
        except (AuthError, ConnectorError) as exc:
            summary.status = "failed"
            summary.message = f"{exc.message}; progress so far is saved and the next run resumes"
            raise
        finally:
            self.connector.deadline = None
            summary.seconds = round(time.monotonic() - started, 3)
            summary.mirror = self.state.counts()
            after = self._api_counters()
            summary.api_calls, summary.retries, summary.throttled = (a - b for a, b in zip(after, calls_before,
                                                                                            strict=True))
            if summary.status == "running":
                # Ctrl-C is a stop, not a failure: what was written is checkpointed and the next run resumes.
                summary.status = "interrupted" if isinstance(sys.exc_info()[1], KeyboardInterrupt) else "failed"
            # Alerts once the status is final and before it is recorded, so their deliveries are recorded too.
            from sync.alerts import notify_run

            summary.alerts = notify_run(self.config, self.state, summary.to_dict(), metrics)
            self.state.finish_run(run_id, summary.status, summary.to_dict(), metrics)
            # A failed run is an error in the log, a stopped or incomplete one a warning: log-based alerting keys on it.
            level = (logging.ERROR if summary.status == "failed" else logging.WARNING
                     if summary.status != "ok" or summary.unwritten_fields else logging.INFO)
            log.log(level, "run %s %s: pulled %s contacts, %s deals; wrote %s records (%s rejected) in %.1fs",
                    run_id, summary.status, summary.pulled_contacts, summary.pulled_deals,
                    summary.written_records, summary.rejected_count, summary.seconds,
                    extra={"run_id": run_id, "step": "finish"})

    def pull_only(self, full: bool = False) -> RunSummary:
        """Pull into the mirror without computing or writing (``clm pull``)."""
        with self.state.run_lock():
            started = time.monotonic()
            restart = full
            full = full or not self.state.cursor() or self.state.full_pull_in_progress()
            mode = "pull " + ("full" if full else "incremental")
            run_id = self.state.start_run(mode, datetime.now(UTC))
            summary = RunSummary(run_id=run_id, status="failed", mode=mode, as_of=datetime.now(UTC).isoformat())
            try:
                self._pull(full, summary, None, restart=restart)
                summary.status = "ok"
            finally:
                summary.seconds = round(time.monotonic() - started, 3)
                summary.mirror = self.state.counts()
                self.state.finish_run(run_id, summary.status, summary.to_dict(), None)
            return summary

    def _ensure_fields(self, summary: RunSummary) -> None:
        """Make sure our fields can be written: create missing ones (idempotent), or, for a CRM where that is an
        admin step (:class:`FieldAccess`, e.g. Salesforce), only read which ones the logged-in user may write.

        A field no object lets us write (missing, not granted, of another type) is not written this run; one
        writable on some objects is kept. Each object it cannot be written on is a run problem naming the fix.

        Reading every property definition of the portal on every run is wasted calls (and megabytes on a large
        portal): once all our fields were found in order, they are checked again only when the field set
        changes, a day has passed, or the CRM rejected a write because a property is missing.
        """
        fingerprint = values_hash({s.name: [s.type.value, list(s.options)] for s in self.specs})
        marker = self.state.meta_value(FIELDS_MARKER)
        if marker is not None:
            known, _, at = marker.partition("|")
            if known == fingerprint and datetime.now(UTC) - datetime.fromisoformat(at) < FIELDS_RECHECK:
                return
        statuses = (self.connector.field_access(self.specs) if isinstance(self.connector, FieldAccess)
                    else self.connector.ensure_fields(self.specs))
        failing = [s for s in statuses if s.action in ("conflict", "failed")]
        # Checked again next run until everything is in order: an admin may grant the rest at any time.
        self.state.set_meta(FIELDS_MARKER, None if failing else f"{fingerprint}|{datetime.now(UTC).isoformat()}")
        for status in failing:
            summary.problems.append(f"field {status.crm_name} not written: {status.detail}")
        writable = {s.name for s in statuses if s.action not in ("conflict", "failed")}
        broken = {s.name for s in failing} - writable
        self.specs = [spec for spec in self.specs if spec.name not in broken]

    def _api_counters(self) -> tuple[int, int, int]:
        stats = getattr(getattr(self.connector, "transport", None), "stats", None)
        return (stats.calls, stats.retries, stats.throttled) if stats is not None else (0, 0, 0)

    # --- steps -------------------------------------------------------------------------------------------

    def _pull(self, full: bool, summary: RunSummary, deadline: float | None, restart: bool = False) -> bool:
        """Pull into the mirror, page by page, each page with its cursor in one transaction; True when the time
        budget stopped it (the mirror is then incomplete: nothing may be computed from it this run).

        A full pull left unfinished by an earlier run (time budget, crash) is resumed from the cursors its pages
        stored, unless ``restart`` (``--full``) asks for a new one.
        """
        owned = {self.connector.crm_field_name(s.name): s.name for s in self.specs}
        keep = set(self.config.data.contact_properties) | set(self.config.data.deal_properties) | {
            v for v in self.config.meddic.model_dump().values() if v}
        if self.config.hubspot.write_native_lifecyclestage and self.config.crm.kind == "hubspot":
            keep.add("lifecyclestage")
        if full and (restart or not self.state.full_pull_in_progress()):
            self.state.start_full_pull()
        complete = True
        try:
            for page in self.connector.pull(self.state.cursor() or None):
                if page.live_contact_ids is not None or page.live_deal_ids is not None:
                    # A reconciling sweep: what the CRM no longer holds, not even in a delete log, leaves the mirror
                    # (before the page's cursor records the sweep as done).
                    summary.deleted += sum(self.state.retain(page.live_contact_ids, page.live_deal_ids))
                changed_contacts, changed_deals = self.state.apply_page(
                    page.contacts, page.deals, page.deleted_contact_ids, page.deleted_deal_ids, page.cursor, owned,
                    keep, page.merged_contacts)
                summary.pulled_contacts += changed_contacts
                summary.pulled_deals += changed_deals
                summary.deleted += len(page.deleted_contact_ids) + len(page.deleted_deal_ids)
                if page.problems and len(summary.problems) < MAX_LISTED:
                    summary.problems.extend(page.problems[: MAX_LISTED - len(summary.problems)])
                self.progress("pull", summary.pulled_contacts + summary.pulled_deals, None)
                if deadline is not None and time.monotonic() > deadline:
                    complete = False
                    break
        except TimeBudgetReached as exc:
            # The pages stored so far keep their cursors: the next run resumes from there.
            complete = False
            log.info("pull stopped: %s", exc.message, extra={"step": "pull"})
        if full and complete:
            dropped = self.state.finish_full_pull()
            summary.deleted += sum(dropped)
        return not complete

    def compute(self, as_of: datetime, persist: bool = False, run_id: int | None = None
                ) -> tuple[EnrichResult, dict[str, Any], dict[str, Any]]:
        """Enrich the whole mirror as of a time; with ``persist``, remember the stages for the next run (and,
        for ``run_id``, the stage moves since the last computation, which the report's stage flow composes)."""
        from core.engine import PreviousState, enrich

        previous_rows = self.state.stages()
        previous = PreviousState.from_rows(previous_rows) if previous_rows else None
        # Per-field lists straight from the store: no record objects between the mirror and the engine's columns.
        deal_properties = set(self.config.data.deal_properties) | {
            v for v in self.config.meddic.model_dump().values() if v}
        result = enrich(self.state.contact_rows(self.config.data.contact_properties),
                        self.state.deal_rows(sorted(deal_properties)), self.config, as_of, previous=previous)
        from core.series import chart_series

        metrics = result.metrics.to_dict()
        metrics["charts"] = chart_series(result.table)
        if persist:
            if previous is not None and run_id is not None:
                from core.metrics import run_moves

                self.state.save_stage_moves(run_id, run_moves(previous.ids, previous.stage, result.ids,
                                                              result.columns["stage"]))
            self.state.save_stages(zip(result.ids.tolist(), result.columns["stage"].tolist(),
                                       result.columns["stage_since"].tolist(), strict=True))
        return result, metrics, result.diagnostics_dict()

    def _native_lifecycle(self, plan: Plan, result: EnrichResult) -> None:
        """Move HubSpot's own ``lifecyclestage`` forward from our stage, through the stage's mapping.

        HubSpot only lets an integration move the stage forward (moving back needs clearing it first,
        knowledge.hubspot.com/records/use-lifecycle-stages), so backward moves are never sent.
        """
        from core.stages import is_forward_move

        mapping = {s.name: s.hubspot_lifecyclestage for s in self.config.stages}
        current = {c.id: c.properties.get("lifecyclestage") for c in self.state.contacts()}
        changes = dict(plan.writes)
        for index, (contact_id, stage) in enumerate(zip(result.ids.tolist(), result.columns["stage"].tolist(),
                                                        strict=True)):
            target = mapping.get(stage)
            now = current.get(contact_id)
            if target and target != now and is_forward_move(str(now) if now else None, target):
                if contact_id not in changes:
                    changes[contact_id] = {"computed_at": result.row(index)["computed_at"]}
                    plan.writes.append((contact_id, changes[contact_id]))
                changes[contact_id]["lifecyclestage"] = target

    def _describe_plan(self, plan: Plan, summary: RunSummary, current: Mapping[str, Mapping[str, Any]]) -> None:
        summary.planned = True
        summary.planned_records = len(plan.writes)
        summary.planned_fields = plan.field_counts()
        summary.already_current = len(plan.already_current)
        summary.held_back = len(plan.held_back)
        summary.conflicts = len(plan.conflicts)
        summary.samples = [
            {"record_id": rid, "before": {k: current.get(rid, {}).get(k) for k in values},
             "after": {k: _jsonable(v) for k, v in values.items()}}
            for rid, values in plan.writes[:5]
        ]
        moves = Counter((current.get(rid, {}).get("stage"), values["stage"]) for rid, values in plan.writes
                        if "stage" in values)
        summary.stage_moves = [{"from": before, "to": after, "contacts": n} for (before, after), n in
                               sorted(moves.items(), key=lambda item: (-item[1], str(item[0][0]), str(item[0][1])))]
        summary.held_back_samples = [{"record_id": r.record_id, "field": r.field, "reason": r.reason}
                                     for r in plan.held_back[:MAX_RECORDS_LISTED]]
        summary.conflict_samples = [
            {"record_id": c.record_id, "field": c.field, "crm": c.current, "we_wrote": c.written,
             "we_want": _jsonable(c.desired)}
            for c in plan.conflicts[:MAX_RECORDS_LISTED]
        ]

    def _write(self, run_id: int, plan: Plan, summary: RunSummary, deadline: float | None) -> None:
        if not plan.writes:
            return
        self.state.save_plan(run_id, plan.writes)
        bulk = self.connector if isinstance(self.connector, BulkWriter) and \
            len(plan.writes) > self.connector.bulk_write_threshold else None
        size = BULK_CHUNK if bulk is not None else self.connector.batch_size
        batches = [plan.writes[i:i + size] for i in range(0, len(plan.writes), size)]
        if bulk is not None:
            log.info("writing %s records through bulk jobs of up to %s", len(plan.writes), size,
                     extra={"run_id": run_id, "step": "write"})
        stopped = False

        def budgeted() -> Iterator[list[tuple[str, dict[str, Any]]]]:
            nonlocal stopped
            for batch in batches:
                if deadline is not None and time.monotonic() > deadline:
                    stopped = True
                    return
                yield batch

        def send(batch: list[tuple[str, dict[str, Any]]]) -> tuple[list[tuple[str, dict[str, Any]]],
                                                                   list[WriteResult]]:
            updates = [FieldUpdate(rid, values) for rid, values in batch]
            return batch, bulk.write_bulk(updates) if bulk is not None else self.connector.write(updates)

        transport = getattr(self.connector, "transport", None)
        # A bulk job already runs server-side in parallel: one at a time keeps each chunk a checkpoint.
        mapper: Callable[..., Iterator[Any]] = transport.map if transport is not None and bulk is None else map
        one_by_one = isinstance(self.connector, WritesOneByOne) and bulk is None
        done = 0
        try:
            for batch, results in mapper(send, budgeted()):
                self._settle(run_id, batch, results, summary)
                summary.write_calls += len(results) if one_by_one else 1
                done += len(results)
                # Fewer results than records: the budget ended inside the batch; the rest stays planned.
                stopped = stopped or len(results) < len(batch)
                self.progress("write", done, len(plan.writes))
                log.info("wrote batch: %s/%s records", done, len(plan.writes),
                         extra={"run_id": run_id, "step": "write", "count": done})
        except TimeBudgetReached:
            # Raised before a batch was sent (the limiter would have waited past the budget): nothing of it was
            # written. Batches in flight beside it that did land are found equal in the CRM by the next run.
            stopped = True
        if stopped:
            summary.status = "partial"
            remaining = len(plan.writes) - done
            summary.message = f"time budget reached with {remaining} records left to write; will resume"

    def _settle(self, run_id: int, batch: Sequence[tuple[str, dict[str, Any]]], results: Sequence[WriteResult],
                summary: RunSummary) -> None:
        values = dict(batch)
        written: dict[str, dict[str, Any]] = {}
        rejected: list[tuple[Rejection, int]] = []
        gone: list[str] = []
        for result in results:
            if result.ok:
                written[result.record_id] = values[result.record_id]
            elif result.gone:
                gone.append(result.record_id)
            else:
                reason = result.reason or "rejected"
                if "PROPERTY_DOESNT_EXIST" in reason or "does not exist" in reason:
                    self.state.set_meta(FIELDS_MARKER, None)  # someone deleted a field of ours: check next run
                rejected.append((Rejection(result.record_id, result.field, reason, result.transient,
                                           values_hash(values[result.record_id]), 1), run_id))
                if len(summary.rejected) < MAX_RECORDS_LISTED:
                    summary.rejected.append({"record_id": result.record_id, "field": result.field, "reason": reason,
                                             "transient": result.transient})
        # What we wrote is now the CRM's value of our fields: recorded with the checkpoint, in one transaction. The
        # values are the saved plan's (``_write`` saved ``plan.writes`` before sending), so the store reads them there.
        self.state.settle_batch(run_id, written, rejected, gone, now_current=True, planned=True)
        summary.written_records += len(written)
        summary.rejected_count += len(rejected)
        summary.gone += len(gone)


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


# The plan export lives with the other exports (private files, CSV cells neutralised); `_run` calls it and
# `from sync.runner import export_plan` keeps working.
from sync.exports import export_plan  # noqa: E402
