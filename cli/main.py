"""The ``clm`` command: wires connectors, core and sync; holds no logic of its own."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

import click

from cli.group import cli
from cli.output import EXIT_USAGE, emit_json, handles_errors, json_option, say
from core.config import load_config
from core.errors import UsageError
from sync.exports import cannot_write

#: The CRMs ``clm init`` writes a starter configuration for.
CRMS = ["hubspot", "salesforce", "engagebay", "files"]


def starter_config(crm: str) -> str:
    """The commented starter configuration for a CRM (``hubspot``, ``salesforce``, ``engagebay`` or ``files``)."""
    return resources.files("cli").joinpath("templates", f"{crm}.toml").read_text(encoding="utf-8")


@cli.command()
@click.option("--crm", type=click.Choice(CRMS), help="Which CRM to configure.")
@click.option("--path", "path", type=click.Path(path_type=Path), default=Path("clm.toml"), show_default=True,
              help="Where to write the configuration.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@json_option
@handles_errors
def init(crm: str | None, path: Path, force: bool, as_json: bool) -> None:
    """Write a commented starter clm.toml for HubSpot, Salesforce, EngageBay or exported files."""
    if crm is None:
        if not sys.stdin.isatty() or as_json:
            raise UsageError("--crm is required when not running interactively", hint="clm init --crm hubspot")
        crm = click.prompt("Which CRM?", type=click.Choice(CRMS), default="hubspot")
    if path.exists() and not force:
        raise UsageError(f"{path} already exists", hint="pass --force to overwrite it, or --path to write elsewhere")
    try:
        # Not through the private exports writer: the file holds no secrets and is meant to be shared.
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(starter_config(crm), encoding="utf-8")
    except OSError as exc:
        raise cannot_write(path, exc) from None
    if as_json:
        emit_json({"ok": True, "path": str(path), "crm": crm})
        return
    if crm == "files":
        say(f"wrote {path} for exported files. Next: point [files] at your exports, then `clm check`.")
        return
    env = {"hubspot": "HUBSPOT_TOKEN", "engagebay": "ENGAGEBAY_API_KEY"}.get(crm, "SF_INSTANCE_URL and SF_ACCESS_TOKEN")
    say(f"wrote {path} for {crm}. Next: export {env}, then `clm check`.")


@cli.group()
def config() -> None:
    """Inspect configuration files."""


@config.command("check")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@json_option
def config_check(paths: tuple[Path, ...], as_json: bool) -> None:
    """Validate one or more clm.toml files and print every problem with its key path."""
    from core.errors import ConfigError

    results = []
    for path in paths or (Path("clm.toml"),):
        try:
            cfg = load_config(path)
            results.append({"path": str(path), "ok": True, "crm": cfg.crm.kind, "problems": []})
        except ConfigError as exc:
            results.append({"path": str(path), "ok": False,
                            "problems": [{"path": p.path, "message": p.message} for p in exc.problems]})
    if as_json:
        emit_json({"ok": all(r["ok"] for r in results), "files": results})
    else:
        for r in results:
            if r["ok"]:
                say(("✓", "green"), f" {r['path']}: valid ({r['crm']})")
            else:
                problems = r["problems"]
                assert isinstance(problems, list)
                say(("✗", "red"), f" {r['path']}: {len(problems)} problem(s)")
                for p in problems:
                    where = f"{p['path']}: " if p["path"] else ""
                    say(f"    {where}{p['message']}")
    if not all(r["ok"] for r in results):
        sys.exit(EXIT_USAGE)


def main() -> None:
    """Console-script entry point."""
    cli()


# Commands in other modules register themselves on the group.
from cli import alerts, clv, commands, demo  # noqa: E402, F401

