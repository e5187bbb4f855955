"""How commands talk to people and machines: rich text on a terminal, one JSON document with ``--json``,
and ClmError printed without a traceback with the documented exit codes.

The two consoles below are the only writers of terminal text, and they never interpret what they print: CRM
values, rejection reasons, config keys, paths and error messages may contain ``[red]``, ``[/x]`` or
``[link=...]`` and must print as they are (issue 14: a deal amount ``[/x]`` raised MarkupError after all writes,
CRM text became links, error messages lost every ``[...]``). So markup and emoji codes are off on both consoles,
control characters are shown escaped (an ESC in CRM text could restyle the terminal or open an OSC 8 link), and
our own colours come only from :func:`styled` parts.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import click
from rich.console import Console
from rich.text import Text

from core.errors import ClmError, ConfigError

P = ParamSpec("P")
R = TypeVar("R")

#: Exit codes: 0 success, 1 run failure, 2 usage or configuration error, 3 partial (will resume), 4 finished
#: without writing some of our fields (a missing property, a field of another type, no permission): a scheduler
#: that only looks at the exit code must not read that as success.
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_PARTIAL, EXIT_INCOMPLETE = 0, 1, 2, 3, 4

console = Console(highlight=False, markup=False, emoji=False)
err_console = Console(stderr=True, highlight=False, markup=False, emoji=False)

#: C0 and C1 control characters except newline and tab: shown escaped, never sent to the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

Part = str | tuple[str, str]
"""A piece of a line: text printed literally, or ``(text, style)`` for our own styled words."""


def literal(value: object) -> str:
    """``value`` as text that shows exactly what it holds: control characters escaped (``\\x1b``)."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(value))


def styled(*parts: Part) -> Text:
    """One line from parts: plain strings literally (never markup, links or emoji codes), ``(text, style)`` styled."""
    line = Text()
    for part in parts:
        if isinstance(part, tuple):
            line.append(literal(part[0]), style=part[1])
        else:
            line.append(literal(part))
    return line


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 call``, ``2 calls``, ``1,000 records``: a count with its noun in agreement."""
    return f"{count:,} {noun if count == 1 else many or noun + 's'}"


def say(*parts: Part, err: bool = False) -> None:
    """Print one line of :func:`styled` parts on stdout (or stderr), wrapped only by the terminal."""
    (err_console if err else console).print(styled(*parts), soft_wrap=True)


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
                say(("error:", "bold red"), " ", exc.message, err=True)
                if exc.hint:
                    say(("hint:", "dim"), " ", exc.hint, err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            say("interrupted; progress so far is saved and the next run resumes", err=True)
            sys.exit(130)

    return wrapper
