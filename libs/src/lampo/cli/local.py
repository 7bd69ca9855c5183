"""The configuration `make up` gave the local suite, found by the CLI as the services found it.

``deploy/local/services.sh`` keeps its state in ``.run/`` of the checkout (or LAMPO_STATE_DIR):
``master.key`` and ``api/<caller>.token``, and starts each service with LAMPO_KEYS_DATABASE =
``lampo_<service>_keys``. When the operator's shell has no LAMPO_MASTER_KEY and that state exists,
the CLI reads the same values, so the commands `make demo` prints work as printed. Anything set
in the environment wins; nothing is read when there is no local state.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_USED = "_LAMPO_CLI_LOCAL_STATE"  # set when the local state was read (for the keys database)


def state_dir() -> Path:
    """LAMPO_STATE_DIR, else ``.run`` beside the virtual environment the CLI runs from (as
    services.sh: ``$repo/.run`` and ``$repo/.venv/bin/lampo``)."""
    given = os.environ.get("LAMPO_STATE_DIR")
    return Path(given) if given else Path(sys.prefix).parent / ".run"


def use_local_state() -> None:
    if os.environ.get("LAMPO_MASTER_KEY"):
        return
    state = state_dir()
    try:
        key = (state / "master.key").read_text().strip()
    except OSError:  # no local suite here: the settings say what is missing
        return
    if key:
        os.environ["LAMPO_MASTER_KEY"] = key
        os.environ[_USED] = str(state)


def keys_database_default(target: str) -> None:
    """Before the commands of ``target`` ("lampo.<service>.cli:app") run on local state: the
    keys database and API token services.sh gave that service, unless the environment has them."""
    state = os.environ.get(_USED)
    parts = target.split(":", maxsplit=1)[0].split(".")
    if not state or len(parts) != 3 or parts[0] != "lampo" or parts[2] != "cli":
        return
    service = parts[1]
    if service in {"cli", "db", "messaging"}:  # the platform's own commands belong to no service
        return
    os.environ.setdefault("LAMPO_KEYS_DATABASE", f"lampo_{service}_keys")
    token = Path(state) / "api" / f"{service}.token"
    if "LAMPO_API_TOKEN" not in os.environ and token.is_file():
        os.environ["LAMPO_API_TOKEN"] = token.read_text().strip()


def local_keys_database(service: str) -> str | None:
    """The keys database services.sh gave ``service`` when the CLI runs on local state (for the
    commands that name the service themselves, e.g. ``lampo keys rotate``)."""
    if os.environ.get("LAMPO_KEYS_DATABASE") or not os.environ.get(_USED):
        return None
    return f"lampo_{service}_keys"
