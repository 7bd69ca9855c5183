"""Every `lampo` command, found by walking the command tree (a new command is covered without
editing this file), answers --help, and fails as an operator expects: with nothing reachable and
no configuration, each ends with one line on stderr and a non-zero exit, never a traceback.
Each runs as the operator runs it: the installed script, as a new process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer import _click as click
from typer.core import TyperGroup, TyperOption

from lampo.cli.main import LazyGroup, command

LAMPO = str(Path(sys.executable).parent / "lampo")
NOWHERE = "127.0.0.1:1"  # nothing listens on port 1

# Commands that need nothing to run (they print a key, a table of the code's own declarations):
# their expected failure is a bad argument.
OFFLINE = {
    ("keygen",): ["--no-such-option"],
    ("signing-keygen",): ["--no-such-option"],
    ("topics", "list"): ["--no-such-option"],
    ("billing", "rules"): ["--no-such-option"],
    ("ropa",): ["--format", "pdf"],
}


def tree() -> list[tuple[tuple[str, ...], click.Command]]:
    root = command()
    assert isinstance(root, LazyGroup)
    root.load_all()

    def walk(path: tuple[str, ...], cmd: click.Command) -> Iterator[tuple[tuple[str, ...], click.Command]]:
        yield path, cmd
        if isinstance(cmd, TyperGroup):
            for name, sub in sorted(cmd.commands.items()):
                yield from walk((*path, name), sub)

    return list(walk((), root))


COMMANDS = tree()
LEAVES = [
    (path, cmd) for path, cmd in COMMANDS if path and (not isinstance(cmd, TyperGroup) or cmd.invoke_without_command)
]


def offline_env(state: Path) -> dict[str, str]:
    """No LAMPO_* setting from the shell, no local suite state, every server unreachable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMPO_")}
    return env | {
        "LAMPO_STATE_DIR": str(state),
        "LAMPO_PG_URL": f"postgresql://lampo:lampo@{NOWHERE}/postgres",
        "LAMPO_KAFKA_BOOTSTRAP": NOWHERE,
        "LAMPO_STAFF_URL": f"http://{NOWHERE}",
        "LAMPO_STAFF_USER": "operator",
        "LAMPO_STAFF_PASSWORD": "not-a-password",
        "COLUMNS": "200",
    }


def lampo(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LAMPO, *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False
    )


def dummy_args(cmd: click.Command, tmp: Path) -> list[str]:
    """A value for each required argument and option (a path under ``tmp``, a number, an id)."""
    args: list[str] = []
    for param in cmd.params:
        if not param.required:
            continue
        if isinstance(param, TyperOption):
            if param.is_flag:
                args.append(param.opts[0])
                continue
            args.append(param.opts[0])
        args.append(dummy_value(param, tmp))
    return args


def dummy_value(param: click.Parameter, tmp: Path) -> str:
    kind = param.type
    choices = getattr(kind, "choices", None)
    if choices:
        return str(getattr(choices[0], "value", choices[0]))
    if kind.name in {"integer", "float"}:
        return "1"
    if kind.name in {"path", "file", "filename"}:
        return str(tmp / f"{param.name}.none")
    return f"{param.name}-none"


def test_the_walk_finds_every_service_group_and_their_commands() -> None:
    paths = {path for path, _ in COMMANDS}
    for expected in [("dsar", "status"), ("dsar", "package"), ("registry", "accuracy"), ("audit", "verify"),
                     ("billing", "purge-due"), ("admin", "approve"), ("keys", "rotate"), ("db", "provision")]:  # fmt: skip
        assert expected in paths
    assert len(LEAVES) > 40


def test_every_command_answers_help() -> None:
    env = offline_env(Path("/nonexistent"))
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda path: (path, lampo([*path, "--help"], env)), [p for p, _ in COMMANDS]))
    for path, result in done:
        said = result.stdout + result.stderr
        assert result.returncode == 0, (path, said)
        assert "Traceback" not in said, path
        assert "Usage: lampo " + " ".join(path) in " ".join(result.stdout.split()), (path, result.stdout)


@pytest.mark.parametrize(("path", "cmd"), LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_every_command_fails_in_one_line_without_a_traceback(
    path: tuple[str, ...], cmd: click.Command, tmp_path: Path
) -> None:
    args = [*path, *(OFFLINE[path] if path in OFFLINE else dummy_args(cmd, tmp_path))]
    result = lampo(args, offline_env(tmp_path / "state"))
    said = result.stdout + result.stderr
    assert result.returncode != 0, (args, said)
    assert "Traceback" not in said, (args, said)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, (args, result.stderr)
    assert lines[0].startswith("lampo"), (args, lines)
