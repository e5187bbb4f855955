"""Logging for people (plain) or machines (``--log-format json``), never with a token or an email in it."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from core.redact import redact


class _Redacting(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        # A traceback repeats the exception's text (a CRM error body, a URL with its token) and source lines:
        # formatted here, redacted, and set as the text the formatters print instead of formatting it again.
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            payload["exception"] = record.exc_text
        for key in ("run_id", "step", "count"):
            if hasattr(record, key):
                payload[key] = getattr(record, key)
        return json.dumps(payload)


def configure(log_format: str, verbose: bool) -> None:
    """Send logs to stderr as text or JSON lines, redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_Redacting())
    handler.setFormatter(_JsonFormatter() if log_format == "json" else logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose or log_format == "json" else logging.WARNING)
    # The official clients log request bodies at DEBUG; keep them quiet whatever the level.
    for noisy in ("urllib3", "hubspot", "simple_salesforce"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
