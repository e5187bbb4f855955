"""The project's one error hierarchy.

Every error carries what happened (the message), where (record/field/key path inside the message) and what to
do (``hint``). The CLI prints ``message`` and ``hint`` without a traceback and exits with ``exit_code``.
"""

from __future__ import annotations

from datetime import datetime


class ClmError(Exception):
    """Base of every error this project raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


class ConfigProblem:
    """One problem in a configuration file: where (a key path such as ``stages[3].criteria[0].op``) and what."""

    __slots__ = ("message", "path")

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def __repr__(self) -> str:
        return f"ConfigProblem({self.path!r}, {self.message!r})"


class ConfigError(ClmError):
    """The configuration is invalid; carries every problem found, not only the first."""

    exit_code = 2

    def __init__(self, problems: list[ConfigProblem], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(
            f"{len(problems)} problem(s){where}:\n{lines}",
            hint="fix the keys above; `clm init` writes a commented starter file",
        )


class UsageError(ClmError):
    """The command was called in a way that cannot work (missing file, conflicting options)."""

    exit_code = 2


class AuthError(ClmError):
    """Credentials are missing, invalid or expired and could not be refreshed."""


class ConnectorError(ClmError):
    """A CRM answered in a way we cannot continue from (after retries where retrying made sense)."""


class RateLimited(ConnectorError):
    """A rate limit stopped the run; ``resets_at`` says when it is worth trying again."""

    def __init__(self, message: str, resets_at: datetime | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.resets_at = resets_at


class DailyLimitReached(RateLimited):
    """The CRM's daily API allowance (or our reserve of it) is used up: stop cleanly, resume after reset."""


class TimeBudgetReached(ClmError):
    """The run's time budget (``--max-runtime``) ran out while waiting on the CRM (e.g. a queued Bulk job):
    the run stops cleanly with what it has and the next run resumes."""


class RecordRejected(ClmError):
    """The CRM refused one record; the sync reports it and carries on with the others."""

    def __init__(self, record_id: str, reason: str, field: str | None = None, transient: bool = False) -> None:
        where = f"record {record_id}" + (f", field {field}" if field else "")
        super().__init__(f"{where}: {reason}")
        self.record_id = record_id
        self.field = field
        self.reason = reason
        self.transient = transient


class DataError(ClmError):
    """Input data cannot be used as it is (e.g. a deal amount that is not a number)."""


class FitError(ClmError):
    """A statistical model could not be fitted (no convergence, too little data, degenerate data)."""


class StateError(ClmError):
    """The local state store is locked by another run, corrupt, or from an incompatible version."""
