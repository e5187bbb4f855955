"""Logs never carry a token or an email, in text or JSON."""

from __future__ import annotations

import json
import logging

import pytest

from cli.logs import configure, redact


@pytest.mark.parametrize(
    "line",
    [
        "Authorization: Bearer pat-na1-11111111-2222-3333-4444-555555555555",
        "GET /crm/v3/objects/contacts?access_token=abc123secret",
        "login as jane.doe+crm@example.com failed",
        "token=s3cr3t&limit=100",
    ],
)
def test_redact_removes_secrets_and_emails(line: str) -> None:
    cleaned = redact(line)
    for secret in ("pat-na1-1111", "abc123secret", "jane.doe", "s3cr3t"):
        assert secret not in cleaned


def test_json_logs_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure("json", verbose=True)
    logging.getLogger("clm.sync").info("contact %s rejected with token=%s", "bob@example.org", "xyz-secret",
                                       extra={"run_id": 7})
    err = capsys.readouterr().err.strip().splitlines()[-1]
    payload = json.loads(err)
    assert payload["run_id"] == 7 and payload["level"] == "info"
    assert "bob@example.org" not in err and "xyz-secret" not in err


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_logged_traceback_is_redacted_and_kept(log_format: str, capsys: pytest.CaptureFixture[str]) -> None:
    # ``-v`` logs a failure with its traceback (exc_info): the exception's text is CRM or client text too.
    configure(log_format, verbose=True)
    try:
        raise RuntimeError("401 for jane.doe@example.org with Authorization: Bearer pat-na1-11111111-2222-3333")
    except RuntimeError:
        logging.getLogger("clm.sync").exception("write failed for %s", "bob@example.org")
    err = capsys.readouterr().err
    for secret in ("jane.doe@example.org", "bob@example.org", "pat-na1-1111"):
        assert secret not in err
    assert "RuntimeError: 401 for [email]" in err and "Traceback" in err
