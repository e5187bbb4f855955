"""One redactor (core.redact) for logs, the state file and exports (issue 14): a CRM rejection message and a bad
CRM value carrying an e-mail address and credentials are stored, logged, printed and exported redacted."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli  # first: it registers the commands' modules
from connectors.sandbox.faults import FaultRule
from connectors.sandbox.generator import generate
from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits, start_hubspot_sandbox
from connectors.sandbox.server import SandboxServer
from core.redact import redact, redact_values
from sync import exports
from tests.projects import hubspot_project

EMAIL = "jane.doe+crm@example.com"
HUBSPOT_TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
SESSION_ID = "00D5g000004ABCDE!AR8AQJXg.Yk_4rT-9bQzW1x2y3"
PASSWORD = "hunter2horse"
#: What a CRM (or a proxy in front of it) may echo back in a rejection message.
MESSAGE = (f"Property values were not valid: contact {EMAIL} is owned by another user; sent with "
           f"Authorization: Bearer {HUBSPOT_TOKEN}, sid {SESSION_ID}, via https://proxy:{PASSWORD}@proxy.example/x "
           "\x1b[31m")
SECRETS = (EMAIL, "jane.doe", HUBSPOT_TOKEN, SESSION_ID, PASSWORD)


@pytest.mark.parametrize("text", [
    f"Authorization: Bearer {HUBSPOT_TOKEN}", f"Authorization: OAuth {SESSION_ID}", f"session {SESSION_ID} expired",
    f"GET /services/data?access_token={PASSWORD}&x=1", f"login as {EMAIL} failed", f"token={PASSWORD}&limit=100",
    f"https://admin:{PASSWORD}@crm.example.com/api", f'{{"access_token": "{PASSWORD}", "instance_url": "x"}}',
    f"key {HUBSPOT_TOKEN.upper()}", f"password={PASSWORD}",
])
def test_redact_removes_every_kind_of_secret(text: str) -> None:
    cleaned = redact(text)
    assert not any(secret in cleaned or secret.upper() in cleaned for secret in SECRETS), cleaned
    assert "[redacted]" in cleaned or "[email]" in cleaned


@pytest.mark.parametrize("text", ["0035g00000ABCDEAAA", "2025-01-01T00:00:00+00:00", "-12.5", "renewal_offer",
                                  "deal 123, field amount: '$12' is not a number; the deal is skipped",
                                  "https://api.hubapi.com/crm/v3", "status code=500"])
def test_redact_keeps_ordinary_text(text: str) -> None:
    assert redact(text) == text


def test_control_characters_are_shown_escaped_not_kept() -> None:
    assert redact("a\x1b]8;;http://evil\x1b\\b\x00c\x9b") == "a\\x1b]8;;http://evil\\x1b\\b\\x00c\\x9b"


def test_redact_values_walks_json_documents() -> None:
    doc = {"problems": [MESSAGE], "n": 3, "samples": [{"reason": EMAIL, "before": {"x": None, "y": 1.5}}]}
    cleaned = redact_values(doc)
    assert cleaned["n"] == 3 and cleaned["samples"][0]["before"] == {"x": None, "y": 1.5}
    assert not any(secret in json.dumps(cleaned) for secret in SECRETS)


def test_log_lines_use_the_same_redactor(capsys: pytest.CaptureFixture[str]) -> None:
    from cli.logs import configure

    configure("text", verbose=True)
    logging.getLogger("clm.test").info("pull stopped: %s", MESSAGE)
    err = capsys.readouterr().err
    assert "pull stopped" in err and "[email]" in err
    assert not any(secret in err for secret in SECRETS), err


@pytest.fixture
def sandbox() -> Iterator[tuple[SandboxServer, HubSpotEmulator]]:
    data = generate(150, seed=19)
    server, emulator = start_hubspot_sandbox(data.contact_records(), data.deal_records(),
                                             rate_limits=RateLimits.off())
    yield server, emulator
    server.stop()


def state_text(state: Path) -> str:
    """Everything the state file holds: its SQL dump and the raw bytes of the file and its WAL."""
    db = sqlite3.connect(state)
    try:
        dump = "\n".join(db.iterdump())
    finally:
        db.close()
    raw = b"".join(p.read_bytes() for p in (state, state.with_name(state.name + "-wal")) if p.exists())
    return dump + raw.decode("latin-1")


def test_secrets_in_crm_text_are_redacted_in_state_logs_output_and_exports(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: tuple[SandboxServer, HubSpotEmulator]) -> None:
    server, emulator = sandbox
    runner = CliRunner()
    hubspot_project(tmp_path, monkeypatch, server.url, emulator.token)
    # A CRM value that does not fit its type, quoted in the run's problems, and a rejection quoting secrets.
    deal = emulator.store.resolve("deals", emulator.ids("deals")[0])
    assert deal is not None
    emulator.store.tables["deals"].put(deal, "amount", f"ask {EMAIL}")
    emulator.add_fault(FaultRule(kind="partial_failure", path_prefix="/crm/v3/objects/contacts/batch/update",
                                 count=1, body={"category": "VALIDATION_ERROR", "message": MESSAGE}))

    synced = runner.invoke(cli, ["-v", "sync", "--export-plan", "plan.csv"])
    assert synced.exit_code == 0, synced.output
    assert "rejected" in synced.output and "[email]" in synced.output and "INFO" in synced.output
    scored = runner.invoke(cli, ["score", "--no-pull", "-o", "scores.jsonl"])
    assert scored.exit_code == 0, scored.output
    listed = runner.invoke(cli, ["runs", "--json"])
    assert listed.exit_code == 0, listed.output

    state = tmp_path / ".clm" / "state.db"
    assert state.exists(), list(tmp_path.rglob("*"))
    stored = state_text(state)
    places = {"clm -v sync output and logs": synced.output, "state file": stored, "runs --json": listed.output,
              "plan export": (tmp_path / "plan.csv").read_text(),
              "scores export": (tmp_path / "scores.jsonl").read_text()}
    for place, content in places.items():
        leaked = [secret for secret in SECRETS if secret in content]
        assert not leaked, f"{place} holds {leaked}"
    # Redacted, not dropped: the rejection, the data problem and the action are still there to read.
    db = sqlite3.connect(state)
    reasons = [r for (r,) in db.execute("SELECT reason FROM rejections")]
    summary = json.loads(db.execute("SELECT summary FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0])
    db.close()
    assert len(reasons) == 1 and "Bearer [redacted]" in reasons[0] and "[email]" in reasons[0], reasons
    assert "\x1b" not in reasons[0]
    assert any("field amount: 'ask [email]'" in p for p in summary["problems"]), summary["problems"]


def test_exports_redact_text_cells(tmp_path: Path) -> None:
    # Exports hold our values, not CRM text; a user's text (an action name) with an address in it is redacted too.
    exports.write_csv(tmp_path / "x.csv", ["id", "note"], [["1", f"={EMAIL}"], ["2", 3.5]])
    exports.write_jsonl(tmp_path / "x.jsonl", [{"id": "1", "note": [f"token={PASSWORD}"]}])
    assert (tmp_path / "x.csv").read_text().splitlines() == ["id,note", "1,'=[email]", "2,3.5"]
    assert json.loads((tmp_path / "x.jsonl").read_text()) == {"id": "1", "note": ["token=[redacted]"]}
