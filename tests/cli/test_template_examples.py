"""The commented examples in the starter configurations `clm init` writes are valid once uncommented: the
[alerts] block, sync.write_fields with the optional fields, and the scoring reasons settings."""

from __future__ import annotations

import re
import tomllib

import pytest

from cli.main import starter_config
from core.config import parse_config


def uncommented(text: str, first: str, last: str | None = None) -> str:
    """The commented lines from the one starting with ``first`` (to the one before ``last``), uncommented."""
    start = text.index(first)
    end = text.index(last, start) if last else len(text)
    return "\n".join(re.sub(r"^# ?", "", line) for line in text[start:end].splitlines() if line.startswith("#"))


@pytest.mark.parametrize("crm", ["hubspot", "salesforce", "files"])
def test_commented_examples_validate(crm: str, monkeypatch: pytest.MonkeyPatch) -> None:
    text = starter_config(crm)
    raw = tomllib.loads(text)
    raw["sync"].update(tomllib.loads(uncommented(text, "# write_fields", "# Notifications")))
    raw["scoring"].update(tomllib.loads(uncommented(text, "# reasons_top = ", "\n\n")))
    raw.update(tomllib.loads(uncommented(text, "# [alerts]")))
    if crm == "files":
        raw["files"] = {**raw.get("files", {}), "contacts": "contacts.csv", "deals": "deals.csv"}
    config = parse_config(raw, f"{crm} starter with its examples")
    assert config.alerts.channels() == ["slack", "webhook", "smtp"]
    assert config.alerts.metric[0].name == "churn_rate" and config.alerts.max_unwritten_fields == 0
    assert {"score_reasons", "predictive_reasons"} <= set(config.sync.write_fields or ())
    assert (config.scoring.reasons_top, config.scoring.reasons_max_length) == (3, 255)
