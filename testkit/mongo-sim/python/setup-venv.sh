#!/usr/bin/env bash
# Creates the project-local virtualenv (.venv at the repository root) with the pinned packages
# the mongo-sim Python tests need. Safe to re-run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
  done
fi
if [ -z "$python" ]; then
  echo "setup-venv.sh: no python3 found (CPython 3.11 expected)" >&2
  exit 1
fi
if [ ! -x "$root/.venv/bin/python" ]; then
  "$python" -m venv "$root/.venv"
fi
"$root/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
"$root/.venv/bin/python" -c "import pymongo; print('pymongo', pymongo.version, 'in', '$root/.venv')"
