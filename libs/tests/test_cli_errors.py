"""The operator CLI answers a missing configuration with one line, never a traceback (the
command `make demo` prints is run as printed, from a shell that has no LAMPO_* variables)."""

import os
import subprocess
import sys
from pathlib import Path

from lampo.crypto import new_master_key

LAMPO = Path(sys.executable).parent / "lampo"


def test_a_missing_master_key_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMPO_")}
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
