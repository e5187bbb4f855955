"""The ``clm`` command group, on its own so that every command module can register on it without importing
:mod:`cli.main` (which imports them all: a cycle that broke whichever module was imported first)."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="crm-lifecycle", prog_name="clm")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Logs on stderr as text or JSON lines (tokens and emails are always redacted).")
@click.option("--verbose", "-v", is_flag=True, help="Log progress at INFO level.")
def cli(log_format: str, verbose: bool) -> None:
    """crm-lifecycle: lifecycle stages, lead scores and CLV for every contact, written back to your CRM.

    Start with `clm demo` (no account needed), then `clm init`, `clm check` and `clm sync --dry-run`.

    Exit codes: 0 ok, 1 run failed, 2 usage or configuration error, 3 partial run (will resume), 4 some of
    our fields were not written (see the run's problems).
    """
    from cli.logs import configure

    configure(log_format, verbose)
