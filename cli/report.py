"""The run report: a terminal summary and one self-contained HTML page with charts (inline SVG, no scripts,
no network), optionally comparing two runs: before vs after on the CLM method's metrics, and the stage flow
between them (who moved where, from the stage moves the runs recorded)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from rich.console import Console
from rich.table import Table

from cli import charts
from cli.model_charts import model_fit_charts
from cli.output import literal
from core.fields import option_label
from core.metrics import GONE, NEW, Snapshot, compare, net_moves, transition_matrix
from core.redact import redact
from sync.state import RunRecord

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1360px;color:#111}
h1{font-size:22px;margin-bottom:4px} h2{font-size:16px;margin:28px 0 8px} .muted{color:#666;font-size:13px}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px;margin:16px 0}
.kpi{border:1px solid #e5e7eb;border-radius:8px;padding:10px 14px}
.kpi b{display:block;font-size:20px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(660px,1fr));gap:8px}
section{border:1px solid #eee;border-radius:8px;padding:8px 12px}
table{border-collapse:collapse;font-size:13px} td,th{padding:4px 10px;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child{text-align:left} .up{color:#15803d} .down{color:#b91c1c}
.note{font-size:12px;color:#444;margin:4px 4px 6px;max-width:640px}
table.flow td.stay{color:#888} table.flow th{font-weight:600;font-size:12px}
table.unwritten td,table.unwritten th{text-align:left}
.flowrow{display:flex;flex-wrap:wrap;gap:8px} .flowrow section.matrix{flex:1 1 560px;overflow-x:auto}
table.flow td,table.flow th{padding:4px 6px}
"""


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    return f"{value:,.0f}" if isinstance(value, int | float) else str(value)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}%"


def _kpis(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    customers = metrics.get("customers", {})
    retention = customers.get("retention", {})
    clv = metrics.get("clv", {})
    return [
        ("contacts", _num(metrics.get("contacts"))),
        ("customers", _num(customers.get("total"))),
        ("repeat buyers", _pct(customers.get("repeat_share"))),
        ("retention (1 y)", _pct(retention.get("retention_rate"))),
        ("churn (1 y)", _pct(retention.get("churn_rate"))),
        ("predicted CLV total", _num(clv.get("total"))),
        ("CLV mean / customer", _num(clv.get("mean"))),
        ("top 10% share of CLV", _pct(clv.get("top10_share"))),
    ]


#: What the colours mean: progress stages blue, at risk amber, churn red, reactivation teal; active green.
KIND_COLOURS = {"progress": "#2563eb", "decline": "#d97706", "reactivation": "#0891b2"}
ACTIVE, AT_RISK, CHURN = "#16a34a", "#d97706", "#dc2626"
#: Rows of each kind of unwritten record listed on the page; the rest are counted (`clm runs show` has them).
LISTED = 10


def stage_label(stage: str) -> str:
    """A stage as the CRM shows it ("Marketing qualified"); the flow's new-contact row and removed column."""
    if stage == NEW:
        return "(new contacts)"
    return "(removed)" if stage == GONE else option_label(stage)


def _stage_colour(stage: str, kind: str | None, churn: str | None) -> str:
    return CHURN if stage == churn else KIND_COLOURS.get(kind or "progress", KIND_COLOURS["progress"])


def _funnel_charts(metrics: dict[str, Any]) -> list[str]:
    stages: list[str] = metrics.get("stages", [])
    counts = metrics.get("stage_counts", {})
    funnel: list[dict[str, Any]] = metrics.get("funnel_stages") or []
    if not funnel:  # a snapshot from before the funnel was measured apart from the post-sale states
        return [charts.hbar([stage_label(s) for s in stages], [float(counts.get(s, 0)) for s in stages],
                            "Contacts per stage")]
    notes = [(f"{_pct(step['step_rate'])} of previous step" if step["step_rate"] is not None else "all contacts")
             + f" · {step['in_stage']:,} there now" for step in funnel]
    out = [charts.hbar([stage_label(s["stage"]) for s in funnel], [float(s["reached"]) for s in funnel],
                       "Sales funnel: contacts who reached each stage (there now or beyond)", notes,
                       label_width=150)]
    post: list[dict[str, Any]] = metrics.get("post_sale") or []
    if post:
        churn = metrics.get("customers", {}).get("churn_stage")
        out.append(charts.hbar([stage_label(s["stage"]) for s in post], [float(s["contacts"]) for s in post],
                               "After the first purchase: customers per state",
                               [f"{_pct(s['share_of_customers'])} of customers" for s in post],
                               [_stage_colour(s["stage"], s.get("kind"), churn) for s in post]))
    return out


def _time_charts(metrics: dict[str, Any]) -> list[str]:
    days = metrics.get("days_in_stage", {})
    median = metrics.get("days_in_stage_median", {})
    timed = [s for s in metrics.get("stages", []) if days.get(s) is not None]
    out = []
    if timed:
        out.append(charts.hbar([stage_label(s) for s in timed], [float(round(days[s])) for s in timed],
                               "Average days in the current stage (from first touch and purchase dates)",
                               [f"median {median[s]:,.0f}" if median.get(s) is not None else "" for s in timed],
                               colour="#7c3aed"))
    life = metrics.get("lifecycle", {})
    rows = [("first touch → first purchase", "median_days_to_first_purchase", ""),
            ("first → second purchase", "median_days_first_to_second_purchase", ""),
            ("buying span (repeat buyers)", "median_buying_span_days", ""),
            ("whole lifecycle, ended", "median_lifecycle_days_ended",
             f"{life.get('customers_ended') or 0:,.0f} churned customers"),
            ("whole lifecycle, running", "median_lifecycle_days_running",
             f"so far, {life.get('customers_running') or 0:,.0f} customers")]
    known = [(label, float(round(life[key])), note) for label, key, note in rows if life.get(key) is not None]
    if known:
        out.append(charts.hbar([k[0] for k in known], [k[1] for k in known], "Lifecycle length (median days)",
                               [k[2] for k in known], colour="#7c3aed", label_width=200))
    return out


def _score_charts(scores: dict[str, Any]) -> list[str]:
    out = []
    bins = scores.get("lead_score_bins", [])
    if bins:
        labels = [f"{bins[i]:.0f}–{bins[i + 1]:.0f}" for i in range(len(bins) - 1)]
        width = (bins[-1] - bins[0]) / (len(bins) - 1)
        marks = [((float(value) - bins[0]) / width, f"{name.upper()} {value:g}")
                 for name, value in (scores.get("thresholds") or {}).items()]
        out.append(charts.columns(labels, [("contacts", [float(c) for c in scores.get("lead_score_histogram", [])])],
                                  "Lead score distribution", "contacts", marks=marks))
    grades = scores.get("grade_counts") or {}
    if grades:
        ordered = sorted(grades)
        out.append(charts.columns(ordered, [("contacts", [float(grades[g]) for g in ordered])],
                                  "Grade distribution (A: best fit and engagement)", "contacts"))
    return out


def _p_alive_note(diagnostics: dict[str, Any] | None) -> str:
    model = ((diagnostics or {}).get("clv") or {}).get("model")
    # BG/NBD lets a customer drop out only right after a purchase, so one with no repeat purchase has P(alive) = 1
    # (Fader, Hardie & Lee 2005); MBG/NBD and Pareto/NBD do not, hence the model-specific sentence.
    extra = (" BG/NBD also counts a customer who never bought again as alive (P(alive) = 1 until a second "
             "purchase), which lifts the line wherever such customers are many.") if model == "bgnbd" else ""
    return ("<p class=note>Why the line can rise: P(alive) weighs each customer's silence against their own buying "
            "rate. Those silent longest are mostly customers who bought rarely, for whom a long gap is usual; a "
            f"frequent buyer silent as long is judged more likely gone.{extra}</p>")


def _sections(metrics: dict[str, Any], diagnostics: dict[str, Any] | None = None) -> list[str]:
    out = [*_funnel_charts(metrics), *_time_charts(metrics), *_score_charts(metrics.get("scores", {}))]
    series = metrics.get("charts", {})
    hist = series.get("clv_histogram")
    if hist:
        edges = hist["edges"]
        labels = [f"{charts._fmt(edges[i])}+" for i in range(len(edges) - 1)]
        out.append(charts.columns(labels, [("customers", [float(c) for c in hist["counts"]])],
                                  "Predicted CLV distribution (log-spaced bins)", "customers"))
    if series.get("clv_concentration"):
        points = [(x * 100, y * 100) for x, y in series["clv_concentration"]]
        out.append(charts.line(points, "CLV concentration: share of total CLV held by the top x% of customers",
                               "top % of customers", "% of CLV", diagonal=True, y_max=100))
    customers = metrics.get("customers", {})
    retention = customers.get("retention", {})
    out.append(charts.hbar(["active", "at risk", "churned", "retained (1 y cohort)", "lost (1 y cohort)"],
                           [float(customers.get("active") or 0), float(customers.get("at_risk") or 0),
                            float(customers.get("churned") or 0), float(retention.get("retained") or 0),
                            float((retention.get("cohort") or 0) - (retention.get("retained") or 0))],
                           f"Retention and churn (churn rate {_pct(retention.get('churn_rate'))})",
                           colour=[ACTIVE, AT_RISK, CHURN, ACTIVE, CHURN]))
    if series.get("p_alive_by_recency"):
        out.append(charts.line([(x, y) for x, y in series["p_alive_by_recency"]],
                               "P(alive) by days since last purchase", "days since last purchase",
                               "mean P(alive)", y_max=1.0) + _p_alive_note(diagnostics))
    actions = metrics.get("actions", {})
    if actions:
        out.append(charts.hbar([stage_label(a) for a in actions], [float(v) for v in actions.values()],
                               "Next best actions"))
    return out


def _unwritten_html(run: RunRecord) -> str:
    """What the run could not write, from its record: rejected and conflicting records (the first
    :data:`LISTED` of each kind, the rest counted), held-back ones, unwritten fields and problems."""
    s = run.summary
    kinds = [
        ("rejected", int(s.get("rejected_count") or 0),
         [(r["record_id"], r.get("field"), r["reason"]) for r in s.get("rejected") or []]),
        ("conflict", int(s.get("conflicts") or 0),
         [(c["record_id"], c.get("field"), f"the CRM has {c.get('crm')!r}, we wrote {c.get('we_wrote')!r}, we "
           f"want {c.get('we_want')!r}") for c in s.get("conflict_samples") or []]),
        ("held back", int(s.get("held_back") or 0),
         [(h["record_id"], h.get("field"), h["reason"]) for h in s.get("held_back_samples") or []]),
    ]
    unwritten: list[str] = list(s.get("unwritten_fields") or [])
    problems: list[str] = [str(p) for p in s.get("problems") or []]
    head = "<h2>What this run could not write</h2><section>"
    if not any(total or listed for _, total, listed in kinds) and not unwritten and not problems:
        return head + "<p class=muted>Nothing rejected, no conflicts, every field written.</p></section>"
    counts = " · ".join(f"{name}: {total:,}" for name, (_, total, _) in zip(("rejected", "conflicts", "held back"),
                                                                            kinds, strict=True))
    parts = [f"<p>{escape(counts)}</p>"]
    if unwritten:
        parts.append(f"<p>Fields not written: {escape(', '.join(unwritten))} (see the problems below)</p>")
    if problems:
        parts.append("<ul>" + "".join(f"<li>{escape(redact(p))}</li>" for p in problems[:LISTED]) + "</ul>")
    rows = []
    more = []
    for kind, total, listed in kinds:
        css = kind.replace(" ", "_")
        rows += [f"<tr class={css}><td>{escape(str(record))}</td><td>{escape(field or '')}</td>"
                 f"<td>{escape(kind)}</td><td>{escape(redact(str(detail)))}</td></tr>"
                 for record, field, detail in listed[:LISTED]]
        rest = total - min(len(listed), LISTED)
        if rest > 0:
            more.append(f"… and {rest:,} more {kind}")
    if rows:
        parts.append("<table class=unwritten><tr><th>record</th><th>field</th><th>kind</th><th>detail</th></tr>"
                     + "".join(rows) + "</table>")
    if more:
        parts.append(f"<p class=muted>{escape('; '.join(more))} (all of them: clm runs show {run.id} --export "
                     "FILE)</p>")
    return head + "".join(parts) + "</section>"


Moves = Sequence[tuple[str, str | None, str | None]]


def render_html(run: RunRecord, before: RunRecord | None = None, moves: Moves | None = None) -> str:
    """The whole report page for a run (and, with ``before``, the comparison of the two; with ``moves``, the
    stage moves the state recorded between them, the stage flow too)."""
    metrics = run.metrics or {}
    diagnostics = run.summary.get("diagnostics")
    kpis = "".join(f'<div class="kpi"><span class="muted">{escape(k)}</span><b>{escape(v)}</b></div>'
                   for k, v in _kpis(metrics))
    charts_html = "".join(f"<section>{svg}</section>" for svg in
                          [*_sections(metrics, diagnostics), *model_fit_charts(diagnostics)])
    comparison_html = _comparison_html(before, run, moves) if before is not None else ""
    summary = run.summary
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>crm-lifecycle report — run {run.id}</title><style>{_CSS}</style></head><body>"
        f"<h1>Customer lifecycle report</h1><div class=muted>run {run.id} · {escape(run.mode)} · as of "
        f"{escape(run.as_of[:19])} · status {escape(run.status)} · wrote {_num(summary.get('written_records'))} "
        f"records</div><div class=kpis>{kpis}</div>{comparison_html}<div class=grid>{charts_html}</div>"
        f"{_unwritten_html(run)}</body></html>"
    )


_COMPARED = [
    ("contacts", "contacts"), ("customers.total", "customers"), ("customers.repeat_share", "share of repeat buyers"),
    ("customers.retention.retention_rate", "retention rate"), ("customers.retention.churn_rate", "churn rate"),
    ("sales.won_deals", "won deals (period)"), ("sales.won_amount", "sales volume (period)"),
    ("sales.repeat_buyer_share", "buyers who bought more than once (period)"),
    ("clv.total", "predicted CLV total"), ("clv.mean", "predicted CLV mean"),
]


def comparison(before: RunRecord, after: RunRecord) -> list[dict[str, Any]]:
    """The before-vs-after rows of two runs (the CLM method's step 4), one per compared metric, with the values
    as numbers and as text: counts and amounts whole with their relative change, rates as percentages and
    their change in points."""
    if not before.metrics or not after.metrics:
        return []
    diff = compare(Snapshot.from_dict(before.metrics), Snapshot.from_dict(after.metrics)).to_dict()
    changes = diff.get("changes", diff)
    rows = []
    stages = [(f"stage_counts.{stage}", f"contacts in {stage_label(stage)}")
              for stage in after.metrics.get("stages", [])]
    for key, label in [*_COMPARED, *stages]:
        change = changes.get(key)
        if not change:
            continue
        old, new, delta = change.get("before"), change.get("after"), change.get("absolute")
        relative = change.get("relative")
        if key.endswith(("_rate", "_share")):
            texts = (_pct(old), _pct(new), "–" if delta is None else f"{100 * delta:+.1f} pts")
        else:
            shown = "–" if delta is None else f"{delta:+,.0f}"
            if delta and relative is not None:
                shown += f" ({100 * relative:+.1f}%)"
            texts = (_num(old), _num(new), shown)
        rows.append({"metric": key, "label": label, "before": old, "after": new, "change": delta,
                     "relative": relative, "text": dict(zip(("before", "after", "change"), texts, strict=True))})
    return rows


def stage_flow(after: RunRecord, moves: Moves) -> dict[str, Any]:
    """Who moved where between two runs, from the stage moves recorded by the runs after the first up to
    ``after``: each contact's net move (``moves``: from -> to -> contacts, most first; from None for new
    contacts, to None for removed ones), the transition matrix (rows: stage at the first run, with
    :data:`NEW`; columns: stage at the second, with :data:`GONE`), and the counts."""
    metrics = after.metrics or {}
    stages: list[str] = metrics.get("stages", [])
    net = net_moves(moves)
    matrix = transition_matrix(stages, metrics.get("stage_counts", {}), net)
    counted = Counter(net.values())
    listed = [{"from": a, "to": b, "contacts": n}
              for (a, b), n in sorted(counted.items(), key=lambda item: (-item[1], str(item[0][0]), str(item[0][1])))]
    return {"stages": stages, "moved": sum(n for (a, b), n in counted.items() if a is not None and b is not None),
            "new": sum(n for (a, _), n in counted.items() if a is None),
            "removed": sum(n for (_, b), n in counted.items() if b is None), "moves": listed, "matrix": matrix}


#: Bands coloured by what the move means for the business.
FLOW_COLOURS = {"forward": "#2563eb", "back": "#f97316", "into decline": "#dc2626", "reactivated": "#0891b2",
                "new or removed": "#9ca3af"}


def _band_colour(source: str | None, target: str | None, order: Mapping[str, int], kinds: Mapping[str, str],
                 churn: str | None) -> str:
    if source is None or target is None:
        return FLOW_COLOURS["new or removed"]
    kind = kinds.get(target, "progress")
    if target == churn or kind == "decline":
        return FLOW_COLOURS["into decline"]
    if kind == "reactivation":
        return FLOW_COLOURS["reactivated"]
    forward = order.get(target, 0) > order.get(source, 0) or kinds.get(source) != "progress"
    return FLOW_COLOURS["forward" if forward else "back"]


def _flow_html(before: RunRecord, after: RunRecord, flow: dict[str, Any]) -> str:
    stages: list[str] = flow["stages"]
    metrics = after.metrics or {}
    kinds: dict[str, str] = metrics.get("stage_kinds", {})
    churn = metrics.get("customers", {}).get("churn_stage")
    order = {s: i for i, s in enumerate(stages)}
    head = (f"<h2>Stage flow: run {before.id} → run {after.id}</h2><p class=muted>{flow['moved']:,} contacts "
            f"changed stage, {flow['new']:,} new, {flow['removed']:,} removed (from the stage moves each run "
            "records)</p>")
    if not flow["moves"]:
        return head
    bands = [(stage_label(m["from"] or NEW), stage_label(m["to"] or GONE), int(m["contacts"]),
              _band_colour(m["from"], m["to"], order, kinds, churn)) for m in flow["moves"]]
    # Largest moves first in the matrix order so bands stack by stage, not by size.
    rank = {s: i for i, s in enumerate([*stages, NEW, GONE])}
    bands.sort(key=lambda b: (rank.get(b[0], 99), rank.get(b[1], 99)))
    names = [stage_label(s) for s in [*stages, NEW]]
    diagram = charts.flow(bands, names, [stage_label(s) for s in [*stages, GONE]],
                          f"Stage flow: who moved where, run {before.id} → run {after.id}",
                          [(k, v) for k, v in FLOW_COLOURS.items()
                           if any(b[3] == v for b in bands)])
    matrix: dict[str, dict[str, int]] = flow["matrix"]
    columns = [*stages, GONE]
    rows_used = [r for r in [*stages, NEW] if any(matrix.get(r, {}).values())]
    cols_used = [c for c in columns if any(matrix.get(r, {}).get(c) for r in matrix)]
    top = max((n for r in matrix for c, n in matrix[r].items() if r != c), default=0) or 1
    cells = []
    for r in rows_used:
        tds = []
        for c in cols_used:
            n = matrix[r].get(c, 0)
            style = "" if r == c or not n else f' style="background:rgba(37,99,235,{0.12 + 0.5 * n / top:.2f})"'
            tds.append(f"<td class={'stay' if r == c else 'move'}{style}>{n:,}</td>" if n else "<td></td>")
        cells.append(f"<tr><th>{escape(stage_label(r))}</th>{''.join(tds)}</tr>")
    table = ('<table class="flow"><tr><th>from ↓ to →</th>'
             + "".join(f"<th>{escape(stage_label(c))}</th>" for c in cols_used) + "</tr>" + "".join(cells)
             + "</table><p class=muted>Rows: stage at the first run; columns: stage at the second; the diagonal "
             "(grey) stayed.</p>")
    return f"{head}<div class=flowrow><section>{diagram}</section><section class=matrix>{table}</section></div>"


def _judged(metric: str, delta: float, kinds: Mapping[str, str]) -> str:
    """``up`` (green) for a change for the better, ``down`` (red) for the worse, nothing where a change is
    neither: fewer churned or at-risk customers and a lower churn rate are good; contacts leaving a funnel
    stage is neither (they may have moved on)."""
    if not delta:
        return ""
    good = 1
    if metric.startswith("stage_counts."):
        kind = kinds.get(metric[len("stage_counts."):])
        good = -1 if kind == "decline" else 1 if kind == "reactivation" else 0
    elif metric.endswith("churn_rate"):
        good = -1
    return "" if not good else "up" if delta * good > 0 else "down"


def _comparison_html(before: RunRecord, after: RunRecord, moves: Moves | None) -> str:
    if not before.metrics or not after.metrics:
        return "<p class=muted>One of the runs has no metrics snapshot (dry run or failed run).</p>"
    rows = []
    kinds = after.metrics.get("stage_kinds", {})
    for row in comparison(before, after):
        css = _judged(row["metric"], row["change"] or 0, kinds)
        text = row["text"]
        rows.append(f"<tr><td>{escape(row['label'])}</td><td>{escape(text['before'])}</td>"
                    f"<td>{escape(text['after'])}</td><td class={css}>{escape(text['change'])}</td></tr>")
    stages = after.metrics.get("stages", [])
    stage_chart = charts.paired_hbar([stage_label(s) for s in stages], [
        (f"run {before.id}", [float(before.metrics.get("stage_counts", {}).get(s, 0)) for s in stages]),
        (f"run {after.id}", [float(after.metrics.get("stage_counts", {}).get(s, 0)) for s in stages]),
    ], f"Contacts per stage: run {before.id} vs run {after.id}")
    flow = _flow_html(before, after, stage_flow(after, moves)) if moves is not None else ""
    return (f"<h2>Before vs after: run {before.id} → run {after.id}</h2><div class=grid><section><table>"
            "<tr><th>metric</th><th>before</th><th>after</th><th>change</th></tr>"
            f"{''.join(rows)}</table></section><section>{stage_chart}</section></div>{flow}")


def print_terminal(run: RunRecord, console: Console) -> None:
    """The metrics snapshot of a run as terminal tables: the KPIs, the sales funnel with each step's rate, the
    post-sale states with their share of customers, and the days spent per stage."""
    metrics = run.metrics or {}
    console.print(literal(f"run {run.id} ({run.mode}, {run.status}) as of {run.as_of[:19]}"))
    kpis = Table("metric", "value")
    for name, value in _kpis(metrics):
        kpis.add_row(name, value)
    console.print(kpis)
    days = metrics.get("days_in_stage", {})
    funnel = Table(title="Sales funnel (reached: there now or beyond)")
    funnel.add_column("stage", no_wrap=True)
    for name in ("reached", "there now", "of previous step", "avg days"):
        funnel.add_column(name, justify="right")
    for step in metrics.get("funnel_stages") or []:
        stage = step["stage"]
        funnel.add_row(literal(stage_label(stage)), _num(step["reached"]), _num(step["in_stage"]),
                       _pct(step["step_rate"]) if step["step_rate"] is not None else "",
                       _num(days.get(stage)))
    console.print(funnel)
    post = Table(title="After the first purchase")
    post.add_column("state", no_wrap=True)
    for name in ("customers", "of customers", "avg days"):
        post.add_column(name, justify="right")
    for state in metrics.get("post_sale") or []:
        post.add_row(literal(stage_label(state["stage"])), _num(state["contacts"]),
                     _pct(state["share_of_customers"]), _num(days.get(state["stage"])))
    console.print(post)
    life = metrics.get("lifecycle", {})
    if life.get("median_lifecycle_days_ended") is not None or life.get("median_lifecycle_days_running") is not None:
        console.print(literal(f"lifecycle, median days: first touch → first purchase "
                              f"{_num(life.get('median_days_to_first_purchase'))};\n  whole lifecycle "
                              f"{_num(life.get('median_lifecycle_days_ended'))} where it ended (churned), "
                              f"{_num(life.get('median_lifecycle_days_running'))} so far where it runs"))


def print_comparison(before: RunRecord, after: RunRecord, console: Console, moves: Moves | None = None) -> None:
    """The before-vs-after table of two runs in the terminal, and with ``moves`` the stage flow: the moves
    from -> to and the transition matrix of the stages involved."""
    rows = comparison(before, after)
    if not rows:
        console.print(literal(f"run {before.id} or run {after.id} has no metrics snapshot (a pull or a failed run): "
                              "nothing to compare"))
        return
    table = Table("metric", f"run {before.id}", f"run {after.id}", "change",
                  title=literal(f"Before vs after: run {before.id} ({before.as_of[:10]}) → run {after.id} "
                                f"({after.as_of[:10]})"))
    for row in rows:
        table.add_row(literal(row["label"]), row["text"]["before"], row["text"]["after"], row["text"]["change"])
    console.print(table)
    if moves is None:
        return
    flow = stage_flow(after, moves)
    console.print(literal(f"Stage flow: run {before.id} → run {after.id}: {flow['moved']:,} contacts changed stage, "
                          f"{flow['new']:,} new, {flow['removed']:,} removed"))
    if not flow["moves"]:
        return
    listing = Table("move", "contacts")
    for move in flow["moves"]:
        listing.add_row(literal(f"{stage_label(move['from'] or NEW)} → {stage_label(move['to'] or GONE)}"),
                        f"{move['contacts']:,}")
    console.print(listing)
    matrix: dict[str, dict[str, int]] = flow["matrix"]
    involved = {s for m in flow["moves"] for s in (m["from"], m["to"]) if s is not None}
    keep = [s for s in flow["stages"] if s in involved]
    rows_used = [*keep, *([NEW] if any(m["from"] is None for m in flow["moves"]) else [])]
    cols_used = [*keep, *([GONE] if any(m["to"] is None for m in flow["moves"]) else [])]
    # Columns are numbered as the rows, so the matrix fits 80 columns whatever the stage names.
    number = {stage: str(i) for i, stage in enumerate(keep, 1)} | {NEW: "new", GONE: "gone"}
    grid = Table(title=f"Transition matrix: run {before.id} stage (rows) → run {after.id} stage (columns), "
                       "diagonal = stayed")
    grid.add_column("from", no_wrap=True)
    for c in cols_used:
        grid.add_column(number[c], justify="right")
    for r in rows_used:
        grid.add_row(literal(f"{number[r]} {stage_label(r)}" if r != NEW else stage_label(r)),
                     *(f"{matrix[r].get(c, 0):,}" if matrix[r].get(c) else "·" for c in cols_used))
    console.print(grid)
