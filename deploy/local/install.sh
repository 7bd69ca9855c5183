#!/usr/bin/env bash
# Installs the Python side of the suite into .venv: pinned third-party packages, then libs/ and
# every service as editable packages. Idempotent; fast when nothing changed.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
python="${LAMPO_BOOTSTRAP_PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "[install] creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
stamp=.venv/.lampo-installed
inputs=$(cat requirements.txt constraints.txt libs/pyproject.toml services/*/pyproject.toml | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$inputs" ]; then
  echo "[install] python packages up to date"
  exit 0
fi
echo "[install] installing pinned python packages (first time takes a minute or two)"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -r requirements.txt -c constraints.txt
editables=(-e libs)
for svc in services/*/; do
  [ -f "$svc/pyproject.toml" ] && editables+=(-e "$svc")
done
.venv/bin/python -m pip install -q --no-deps "${editables[@]}"
echo "$inputs" > "$stamp"
echo "[install] done: $(.venv/bin/python -m pip list 2>/dev/null | grep -c .) packages in .venv"
