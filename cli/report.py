"""The run report: a terminal summary and one self-contained HTML page with charts (inline SVG, no scripts,
no network), optionally comparing two runs (before vs after)."""

from __future__ import annotations

from html import escape
from typing import Any

from rich.console import Console
from rich.table import Table

from cli import charts
from cli.model_charts import model_fit_charts
from cli.output import literal
from core.metrics import Snapshot, compare
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


def _sections(metrics: dict[str, Any]) -> list[str]:
    stages: list[str] = metrics.get("stages", [])
    counts = metrics.get("stage_counts", {})
    funnel = metrics.get("funnel", {})
    notes = []
    for i, stage in enumerate(stages):
        step = funnel.get(f"{stages[i - 1]}->{stage}") if i else None
        notes.append(f"({_pct(step['rate'])} from {stages[i - 1]})" if step else "")
    out = [charts.hbar(stages, [float(counts.get(s, 0)) for s in stages], "Contacts per stage (funnel)", notes)]
    days = metrics.get("days_in_stage", {})
    out.append(charts.hbar(stages, [float(days.get(s) or 0) for s in stages],
                           "Average days in current stage (grows from the second run on)", colour="#7c3aed"))
    scores = metrics.get("scores", {})
    bins = scores.get("lead_score_bins", [])
    if bins:
        labels = [f"{bins[i]:.0f}–{bins[i + 1]:.0f}" for i in range(len(bins) - 1)]
        out.append(charts.columns(labels, [("contacts", [float(c) for c in scores.get("lead_score_histogram", [])])],
                                  "Lead score distribution", "contacts"))
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
                           f"Retention and churn (churn rate {_pct(retention.get('churn_rate'))})", colour="#16a34a"))
    if series.get("p_alive_by_recency"):
        out.append(charts.line([(x, y) for x, y in series["p_alive_by_recency"]],
                               "P(alive) by days since last purchase", "days since last purchase",
                               "mean P(alive)", y_max=1.0))
    actions = metrics.get("actions", {})
    if actions:
        out.append(charts.hbar(list(actions), [float(v) for v in actions.values()], "Next best actions"))
    return out


def render_html(run: RunRecord, before: RunRecord | None = None) -> str:
    """The whole report page for a run (and, with ``before``, the comparison of the two)."""
    metrics = run.metrics or {}
    kpis = "".join(f'<div class="kpi"><span class="muted">{escape(k)}</span><b>{escape(v)}</b></div>'
                   for k, v in _kpis(metrics))
    charts_html = "".join(f"<section>{svg}</section>" for svg in
                          [*_sections(metrics), *model_fit_charts(run.summary.get("diagnostics"))])
    comparison = _comparison_html(before, run) if before is not None else ""
    summary = run.summary
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>crm-lifecycle report — run {run.id}</title><style>{_CSS}</style></head><body>"
        f"<h1>Customer lifecycle report</h1><div class=muted>run {run.id} · {escape(run.mode)} · as of "
        f"{escape(run.as_of[:19])} · status {escape(run.status)} · wrote {_num(summary.get('written_records'))} "
        f"records</div><div class=kpis>{kpis}</div>{comparison}<div class=grid>{charts_html}</div>"
        "</body></html>"
    )


_COMPARED = [
    ("contacts", "contacts"), ("customers.total", "customers"), ("customers.repeat_share", "share of repeat buyers"),
    ("customers.retention.retention_rate", "retention rate"), ("customers.retention.churn_rate", "churn rate"),
    ("sales.won_deals", "won deals (period)"), ("sales.won_amount", "sales volume (period)"),
    ("clv.total", "predicted CLV total"), ("clv.mean", "predicted CLV mean"),
]


def comparison(before: RunRecord, after: RunRecord) -> list[dict[str, Any]]:
    """The before-vs-after rows of two runs (the CLM method's step 4), one per compared metric, with the values
    as numbers and as text: counts and amounts whole, rates as percentages and their change in points."""
    if not before.metrics or not after.metrics:
        return []
    diff = compare(Snapshot.from_dict(before.metrics), Snapshot.from_dict(after.metrics)).to_dict()
    changes = diff.get("changes", diff)
    rows = []
    stages = [(f"stage_counts.{stage}", f"contacts in {stage}") for stage in after.metrics.get("stages", [])]
    for key, label in [*_COMPARED, *stages]:
        change = changes.get(key)
        if not change:
            continue
        old, new, delta = change.get("before"), change.get("after"), change.get("absolute")
        rate = key.endswith(("_rate", "_share"))
        if rate:
            texts = (_pct(old), _pct(new), "–" if delta is None else f"{100 * delta:+.1f} pts")
        else:
            texts = (_num(old), _num(new), "–" if delta is None else f"{delta:+,.0f}")
        rows.append({"metric": key, "label": label, "before": old, "after": new, "change": delta,
                     "relative": change.get("relative"), "text": dict(zip(("before", "after", "change"), texts,
                                                                         strict=True))})
    return rows


def _comparison_html(before: RunRecord, after: RunRecord) -> str:
    if not before.metrics or not after.metrics:
        return "<p class=muted>One of the runs has no metrics snapshot (dry run or failed run).</p>"
    rows = []
    for row in comparison(before, after):
        delta = row["change"] or 0
        css = "up" if delta > 0 else "down" if delta < 0 else ""
        text = row["text"]
        rows.append(f"<tr><td>{escape(row['label'])}</td><td>{escape(text['before'])}</td>"
                    f"<td>{escape(text['after'])}</td><td class={css}>{escape(text['change'])}</td></tr>")
    stages = after.metrics.get("stages", [])
    stage_chart = charts.columns(stages, [
        (f"run {before.id}", [float(before.metrics.get("stage_counts", {}).get(s, 0)) for s in stages]),
        (f"run {after.id}", [float(after.metrics.get("stage_counts", {}).get(s, 0)) for s in stages]),
    ], f"Contacts per stage: run {before.id} vs run {after.id}", "contacts")
    return (f"<h2>Before vs after: run {before.id} → run {after.id}</h2><div class=grid><section><table>"
            "<tr><th>metric</th><th>before</th><th>after</th><th>change</th></tr>"
            f"{''.join(rows)}</table></section><section>{stage_chart}</section></div>")


def print_terminal(run: RunRecord, console: Console) -> None:
    """The metrics snapshot of a run as terminal tables."""
    metrics = run.metrics or {}
    console.print(literal(f"run {run.id} ({run.mode}, {run.status}) as of {run.as_of[:19]}"))
    kpis = Table("metric", "value")
    for name, value in _kpis(metrics):
        kpis.add_row(name, value)
    console.print(kpis)
    stages = Table("stage", "contacts", "share", "conversion from previous")
    funnel = metrics.get("funnel", {})
    names = metrics.get("stages", [])
    for i, stage in enumerate(names):
        step = funnel.get(f"{names[i - 1]}->{stage}") if i else None
        stages.add_row(literal(stage), _num(metrics.get("stage_counts", {}).get(stage)),
                       _pct(metrics.get("stage_shares", {}).get(stage)), _pct(step["rate"]) if step else "")
    console.print(stages)


def print_comparison(before: RunRecord, after: RunRecord, console: Console) -> None:
    """The before-vs-after table of two runs in the terminal."""
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
