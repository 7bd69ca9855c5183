"""The operator CLI answers a missing configuration with one line, never a traceback (the
command `make demo` prints is run as printed, from a shell that has no LAMPO_* variables)."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lampo.crypto import new_master_key

LAMPO = Path(sys.executable).parent / "lampo"


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """The local-state functions set LAMPO_* variables in this process as the CLI does in its own:
    put the environment back, so no later test runs with this one's keys database or token."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_a_missing_master_key_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMPO_")}
    env["LAMPO_STATE_DIR"] = str(tmp_path / "no-local-suite")
    done = subprocess.run(
        [str(LAMPO), "dsar", "package", "req-none", "--out", str(tmp_path / "p.zip")],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("lampo: LAMPO_MASTER_KEY is not set") and ".run/master.key" in line
    assert not (tmp_path / "p.zip").exists()


def test_a_database_that_does_not_exist_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMPO_")}
    env |= {"LAMPO_MASTER_KEY": new_master_key(), "LAMPO_DATABASE": "lampo_no_such_database"}
    done = subprocess.run(
        [str(LAMPO), "dsar", "status", "req-none"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    [line] = done.stderr.strip().splitlines()
    assert "lampo_no_such_database" in line and "does not exist" in line


def test_an_unreachable_database_server_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMPO_")}
    env |= {"LAMPO_MASTER_KEY": new_master_key(), "LAMPO_PG_URL": "postgresql://lampo:lampo@127.0.0.1:1/postgres"}
    done = subprocess.run(
        [str(LAMPO), "dsar", "status", "req-none"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("lampo: cannot reach a required service") and "127.0.0.1', 1" in line


def test_a_bad_argument_is_one_line_naming_the_command_and_exit_2() -> None:
    done = subprocess.run(
        [str(LAMPO), "dsar", "status"], capture_output=True, text=True, timeout=60, check=False
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    [line] = done.stderr.strip().splitlines()
    assert line == "lampo: lampo dsar status: Missing argument 'request_id'. (see lampo dsar status --help)"


def test_the_cli_finds_the_master_key_make_up_keeps(tmp_path: Path) -> None:
    """As `make up` left it (deploy/local/services.sh: .run/master.key), from a shell with no
    LAMPO_* variables: the command gets past the key and on to the database."""
    (tmp_path / "master.key").write_text(new_master_key() + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMPO_")}
    env |= {"LAMPO_STATE_DIR": str(tmp_path), "LAMPO_DATABASE": "lampo_no_such_database"}
    done = subprocess.run(
        [str(LAMPO), "dsar", "package", "req-none", "--out", str(tmp_path / "p.zip")],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    [line] = done.stderr.strip().splitlines()
    assert "LAMPO_MASTER_KEY" not in line and "lampo_no_such_database" in line and "does not exist" in line


def test_local_state_gives_a_service_its_keys_database_and_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lampo.cli.local import keys_database_default, use_local_state

    key = new_master_key()
    (tmp_path / "master.key").write_text(key + "\n")
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "dsar.token").write_text("token-of-dsar\n")
    for name in ["LAMPO_MASTER_KEY", "LAMPO_KEYS_DATABASE", "LAMPO_API_TOKEN", "_LAMPO_CLI_LOCAL_STATE"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LAMPO_STATE_DIR", str(tmp_path))
    use_local_state()
    keys_database_default("lampo.dsar.cli:app")
    assert os.environ["LAMPO_MASTER_KEY"] == key
    assert os.environ["LAMPO_KEYS_DATABASE"] == "lampo_dsar_keys"  # as services.sh starts the service
    assert os.environ["LAMPO_API_TOKEN"] == "token-of-dsar"


def test_a_master_key_in_the_environment_wins_over_local_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lampo.cli.local import keys_database_default, use_local_state

    (tmp_path / "master.key").write_text(new_master_key())
    mine = new_master_key()
    monkeypatch.delenv("_LAMPO_CLI_LOCAL_STATE", raising=False)
    monkeypatch.delenv("LAMPO_KEYS_DATABASE", raising=False)
    monkeypatch.setenv("LAMPO_MASTER_KEY", mine)
    monkeypatch.setenv("LAMPO_STATE_DIR", str(tmp_path))
    use_local_state()
    keys_database_default("lampo.dsar.cli:app")
    assert os.environ["LAMPO_MASTER_KEY"] == mine and "LAMPO_KEYS_DATABASE" not in os.environ
