"""A files configuration and runner over exports written by each test."""

from __future__ import annotations

import csv
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cli.main import starter_config
from cli.wiring import build_connector, connection_id
from core.config import ClmConfig, parse_config
from sync.runner import SyncRunner
from sync.state import SQLiteState


def files_config(root: Path, files: Mapping[str, Any], **sync: Any) -> ClmConfig:
    """The starter configuration (its scoring rules, stages and CLV settings) with the CRM being files."""
    raw: dict[str, Any] = tomllib.loads(starter_config("hubspot"))
    raw.pop("hubspot", None)
    raw["crm"] = {"kind": "files"}
    raw["files"] = {"output": str(root / "out" / "enrichment.csv"), **files}
    raw["sync"] = {**raw.get("sync", {}), "state_path": str(root / "state.db"), **sync}
    return parse_config(raw, "files test")


def runner(config: ClmConfig) -> SyncRunner:
    """A runner as `clm sync` builds it."""
    return SyncRunner(config, build_connector(config), SQLiteState(config.sync.state_path, connection_id(config)))


def write_csv(path: Path, header: list[str], rows: Iterable[Iterable[Any]]) -> Path:
    """A CSV export."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    """A CSV file as rows by column name."""
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
