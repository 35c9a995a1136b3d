#!/usr/bin/env bash
# Sourced by scripts/demo.sh and scripts/test.sh: makes .venv on first use and installs the pinned
# requirements and stage5 itself (editable, so the `stage5` command works), again only when a
# requirements file or pyproject.toml changes. Needs python3 (3.11+) with venv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQUIREMENTS="${1:-$ROOT/requirements.txt}"

if ! command -v python3 >/dev/null 2>&1; then
  echo "stage5: python3 is needed (3.11 or newer); install it, then run this again" >&2
  exit 2
fi
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "stage5: python3 is $(python3 --version 2>&1); stage5 needs 3.11 or newer" >&2
  exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "stage5: creating $VENV" >&2
  python3 -m venv "$VENV" || { echo "stage5: python3 -m venv failed; install the venv module (Debian: apt-get install python3-venv)" >&2; exit 2; }
fi
STAMP="$VENV/.installed-$(cat "$ROOT"/requirements*.txt "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)-$(basename "$REQUIREMENTS")"
if [ ! -f "$STAMP" ]; then
  echo "stage5: installing $(basename "$REQUIREMENTS") into .venv (first run only)" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$ROOT"
  touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
