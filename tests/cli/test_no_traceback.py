"""No traceback from any ``clm`` command (issue 14): every command of the click group, found by walking it, runs
with broken inputs — an unknown option, a configuration that is missing, a folder, not UTF-8 or names a state
path that cannot be created, an output path that cannot be written — and ends with a message and exit code 2,
never a Python traceback.

The broken inputs are derived from each command's own options (every ``--config``, every path option), so a new
option is covered as soon as it exists; a new command fails :func:`test_every_command_is_covered` until it has an
entry in :data:`VALID` (the arguments that make it runnable, to which the broken ones are added).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cli.main import cli  # registers every command module

#: For each command, arguments that make a call valid but for the broken input added to them (kept small: a
#: broken input must stop the command before it does any work).
VALID: dict[str, list[str]] = {
    "init": ["--crm", "hubspot"],
    "config check": [],
    "check": [],
    "fields ensure": [],
    "sync": ["--dry-run"],
    "pull": [],
    "score": ["-o", "scores.csv"],
    "runs": [],
    "runs show": ["1"],
    "state rebind": [],
    "report": [],
    "demo": ["--contacts", "20"],
    "sandbox serve": ["--contacts", "5"],
    "alerts test": [],
    "clv holdout": ["--calibration-end", "2024-06-30", "--holdout-end", "2024-12-31"],
}


def walk(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    """Every runnable command below ``group``, by its full name (``fields ensure``)."""
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        full = f"{prefix}{name}"
        if isinstance(command, click.Group):
            if command.invoke_without_command:  # runnable itself too (`clm runs`, `clm runs show N`)
                found[full] = command
            found.update(walk(command, f"{full} "))
        else:
            found[full] = command
    return found


COMMANDS = walk(cli)

# Broken configurations: how to make each one inside the test's folder; the path to pass.
Maker = Callable[[Path], Path]


def _missing(root: Path) -> Path:
    return root / "nowhere" / "clm.toml"


def _folder(root: Path) -> Path:
    (root / "conf").mkdir()
    return root / "conf"


def _not_utf8(root: Path) -> Path:
    (root / "latin1.toml").write_bytes('[crm]\nkind = "hubspot"\n# caf\xe9\n'.encode("latin-1"))
    return root / "latin1.toml"


def _state_under_a_file(root: Path) -> Path:
    (root / "notes.txt").write_text("not a folder")
    text = (root / "clm.toml").read_text().replace('state_path = ".clm/state.db"', 'state_path = "notes.txt/state.db"')
    (root / "bad-state.toml").write_text(text)
    return root / "bad-state.toml"


BROKEN_CONFIGS: dict[str, Maker] = {"missing": _missing, "folder": _folder, "not UTF-8": _not_utf8,
                                    "state path under a file": _state_under_a_file}


def _under_a_file(root: Path) -> Path:
    (root / "blocker").write_text("a file where a folder is needed")
    return root / "blocker" / "out.csv"


def _existing_folder(root: Path) -> Path:
    (root / "outdir").mkdir()
    return root / "outdir"


def _existing_file(root: Path) -> Path:
    (root / "plain-file").write_text("a file where a folder is needed")
    return root / "plain-file"


BROKEN_OUTPUTS: dict[str, Maker] = {"under a file": _under_a_file, "a folder": _existing_folder,
                                    "a file": _existing_file}


def broken_outputs(option: click.Option) -> list[str]:
    """How to break a path option: a file option gets a folder, a folder option (``--workdir``) a file."""
    assert isinstance(option.type, click.Path)
    return ["under a file", "a folder" if option.type.file_okay else "a file"]


def output_options(command: click.Command) -> list[click.Option]:
    """Options naming a path the command writes (every path option but ``--config``)."""
    return [p for p in command.params if isinstance(p, click.Option) and isinstance(p.type, click.Path)
            and p.name != "config_path"]


def takes_config(command: click.Command) -> bool:
    return any(p.name == "config_path" for p in command.params)


def cases() -> list[pytest.param]:  # type: ignore[valid-type]
    out = [pytest.param(name, "usage", None, None, id=f"{name}: unknown option") for name in COMMANDS]
    for name, command in COMMANDS.items():
        if takes_config(command) or name == "config check":
            out += [pytest.param(name, "config", kind, None, id=f"{name}: config {kind}") for kind in BROKEN_CONFIGS]
        for option in output_options(command):
            out += [pytest.param(name, "output", kind, option.opts[0], id=f"{name}: {option.opts[0]} {kind}")
                    for kind in broken_outputs(option)]
    return out


def test_every_command_is_covered() -> None:
    assert set(COMMANDS) == set(VALID), (
        "each clm command needs an entry in VALID so its broken inputs are tried: "
        f"missing {sorted(set(COMMANDS) - set(VALID))}, stale {sorted(set(VALID) - set(COMMANDS))}")


def test_the_cases_cover_every_command_and_output_option() -> None:
    ids = [p.id for p in cases()]
    assert len(ids) >= len(COMMANDS) * 2
    for name, command in COMMANDS.items():
        assert f"{name}: unknown option" in ids
        for option in output_options(command):
            assert f"{name}: {option.opts[0]} under a file" in ids


@pytest.mark.parametrize(("name", "kind", "variant", "option"), cases())
def test_broken_input_gives_a_message_and_exit_2_never_a_traceback(
        name: str, kind: str, variant: str | None, option: str | None, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # A token, so a command that got past its broken input would not stop at the missing variable instead.
    monkeypatch.setenv("HUBSPOT_TOKEN", "test-token-not-used")
    runner = CliRunner()
    assert runner.invoke(cli, ["init", "--crm", "hubspot"]).exit_code == 0
    args = [*name.split(), *VALID[name]]
    if kind == "usage":
        args.append("--no-such-option")
    elif kind == "config":
        assert variant is not None
        path = str(BROKEN_CONFIGS[variant](tmp_path))
        args += [path] if name == "config check" else ["--config", path]
    else:
        assert variant is not None and option is not None
        target = BROKEN_OUTPUTS[variant](tmp_path)
        args += [option, str(target)]
        if name == "init":
            args.append("--force")
    # A command that got past its broken input may run on (``sandbox serve`` serves until interrupted).
    signal.signal(signal.SIGALRM, _too_long)
    signal.alarm(60)
    try:
        result = runner.invoke(cli, args)
    finally:
        signal.alarm(0)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"clm {' '.join(args)} raised {result.exception!r}\n{result.output}")
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == 2, (args, result.exit_code, result.output)
    assert result.output.strip(), "a message says what was wrong"
    if kind == "output":
        assert target.name in result.output, f"the message names the path: {result.output}"


def _too_long(signum: int, frame: object) -> None:
    raise TimeoutError("the command ran on despite its broken input")
