"""How commands talk to people and machines: rich text on a terminal, one JSON document with ``--json``,
and ClmError printed without a traceback with the documented exit codes."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import click
from rich.console import Console

from core.errors import ClmError, ConfigError

P = ParamSpec("P")
R = TypeVar("R")

#: Exit codes: 0 success, 1 run failure, 2 usage or configuration error, 3 partial (will resume).
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def emit_json(payload: Any) -> None:
    """Write one JSON document to stdout (for ``--json``)."""
    click.echo(json.dumps(payload, indent=2, default=str, sort_keys=False))


def json_option(func: Callable[P, R]) -> Callable[P, R]:
    """Add ``--json`` (machine-readable output) to a command."""
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")(func)


def handles_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Print ClmError (message and hint, or JSON with --json) without a traceback and exit with its code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ClmError as exc:
            if kwargs.get("as_json"):
                payload: dict[str, Any] = {"ok": False, "error": type(exc).__name__, "message": exc.message,
                                           "hint": exc.hint}
                if isinstance(exc, ConfigError):
                    payload["problems"] = [{"path": p.path, "message": p.message} for p in exc.problems]
                emit_json(payload)
            else:
                err_console.print(f"[bold red]error:[/] {exc.message}", markup=True, soft_wrap=True)
                if exc.hint:
                    err_console.print(f"[dim]hint:[/] {exc.hint}", soft_wrap=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            err_console.print("interrupted; progress so far is saved and the next run resumes")
            sys.exit(130)

    return wrapper
