"""``clm clv``: the CLV models on a transaction file, without a CRM (model comparison by holdout)."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import numpy as np

from cli.group import cli
from cli.output import emit_json, handles_errors, json_option, literal
from core.clv import compare_by_holdout
from core.clv.selection import LABELS, Criterion
from core.clv.summary import TimeUnit
from core.errors import DataError, UsageError


@cli.group()
def clv() -> None:
    """Customer lifetime value models on your own transactions."""


@clv.command("holdout")
@click.option("--transactions", "-t", "path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV with a header row: one purchase per line (customer, date, amount).")
@click.option("--calibration-end", required=True, metavar="DATE",
              help="Last day of the calibration period (YYYY-MM-DD or YYYYMMDD); purchases dated on or before it "
                   "calibrate the models.")
@click.option("--holdout-end", required=True, metavar="DATE",
              help="Last day of the holdout period the models must predict.")
@click.option("--customer-column", default="customer_id", show_default=True,
              help="The column holding the customer's id.")
@click.option("--date-column", default="date", show_default=True,
              help="The column holding the purchase date (ISO 8601, or YYYYMMDD).")
@click.option("--amount-column", default="amount", show_default=True,
              help="The column holding the purchase amount.")
@click.option("--unit", type=click.Choice(["weeks", "days"]), default="weeks", show_default=True,
              help="The time unit the models count in (the literature reports CDNOW in weeks).")
@click.option("--criterion", type=click.Choice(["mae", "rmse", "total"]), default="mae", show_default=True,
              help="Error the chosen model minimises: per-customer MAE or RMSE, or the error of the total.")
@json_option
@handles_errors
def clv_holdout(path: Path, calibration_end: str, holdout_end: str, customer_column: str, date_column: str,
                amount_column: str, unit: TimeUnit, criterion: Criterion, as_json: bool) -> None:
    """Fit BG/NBD, MBG/NBD and Pareto/NBD on the calibration period and compare their forecasts of each
    customer's repeat purchases in the holdout period (what ``clv.model = "auto"`` does in a sync)."""
    start = _day(calibration_end, "--calibration-end")
    end = _day(holdout_end, "--holdout-end")
    if not end > start:
        raise UsageError(f"--holdout-end {holdout_end} must be after --calibration-end {calibration_end}")
    data = read_transactions(path, customer_column, date_column, amount_column)
    report = compare_by_holdout(data.customer, data.time, data.amount, data.n_customers, start, end, unit=unit,
                                criterion=criterion)
    if as_json:
        payload: dict[str, Any] = {
            "ok": True,
            "calibration_end": calibration_end,
            "holdout_end": holdout_end,
            "unit": unit,
            "holdout_length": report.holdout_length,
            "customers": report.n_customers,
            "actual": report.actual_total,
            "criterion": criterion,
            "chosen": report.chosen,
            "models": {s.model: {"label": LABELS[s.model], "fitted": s.fit is not None, "error": s.error,
                                 "parameters": s.fit.parameters if s.fit else None,
                                 "standard_errors": s.fit.standard_errors if s.fit else None,
                                 "log_likelihood": s.fit.log_likelihood if s.fit else None,
                                 "predicted": _finite(s.predicted_total), "mae": _finite(s.mae),
                                 "rmse": _finite(s.rmse)}
                       for s in report.scores},
            "by_frequency": [{"x": row.label, "customers": row.customers, "actual": row.actual,
                              "predicted": row.predicted} for row in report.by_frequency],
            "tracking": report.tracking.to_dict() if report.tracking is not None else None,
        }
        emit_json(payload)
        return
    click.echo(literal(report.table()))


@dataclass(frozen=True)
class Transactions:
    """Purchases as columns: customer index (0..n-1 in order of first appearance), epoch seconds, amount."""

    customer: np.ndarray
    time: np.ndarray
    amount: np.ndarray
    n_customers: int


def read_transactions(path: Path, customer_column: str, date_column: str, amount_column: str) -> Transactions:
    """Read a CSV of purchases; a missing column, an unreadable date or amount names the line and column."""
    index: dict[str, int] = {}
    customer: list[int] = []
    time: list[float] = []
    amount: list[float] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [c for c in (customer_column, date_column, amount_column) if c not in header]
        if missing:
            raise DataError(f"{path}: no column {', '.join(repr(c) for c in missing)} in the header "
                            f"({', '.join(header) or 'empty file'})",
                            hint="name the columns with --customer-column, --date-column and --amount-column")
        for line, row in enumerate(reader, start=2):
            who = (row[customer_column] or "").strip()
            if not who:
                raise DataError(f"{path} line {line}: {customer_column} is empty")
            customer.append(index.setdefault(who, len(index)))
            time.append(_when(row[date_column] or "", f"{path} line {line}, {date_column}"))
            amount.append(_amount(row[amount_column] or "", f"{path} line {line}, {amount_column}"))
    if not customer:
        raise DataError(f"{path}: no purchases after the header")
    return Transactions(np.array(customer, dtype=np.int64), np.array(time), np.array(amount), len(index))


def _day(text: str, option: str) -> float:
    try:
        return _parse_date(text)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a date — write YYYY-MM-DD") from None


def _when(text: str, where: str) -> float:
    try:
        return _parse_date(text)
    except ValueError:
        raise DataError(f"{where}: {text!r} is not a date (YYYY-MM-DD, an ISO time, or YYYYMMDD)") from None


def _parse_date(text: str) -> float:
    """Midnight UTC of a date (YYYY-MM-DD or YYYYMMDD), or an ISO time (UTC unless it says otherwise)."""
    text = text.strip()
    if len(text) == 8 and text.isdigit():
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _amount(text: str, where: str) -> float:
    try:
        value = float(text) if text.strip() else 0.0
    except ValueError:
        raise DataError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: {text!r} is not a finite amount")
    return value


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
