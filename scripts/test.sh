#!/usr/bin/env bash
# The test suite against real PostgreSQL (127.0.0.1:5432, else an embedded pgserver) and replicas.
# Extra arguments go to pytest (e.g. -m slow for the scale tests).
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh" "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/requirements-dev.txt"
# Lint and format first: a quick check that fails before a long suite would.
ruff check . && ruff format --check . || { echo "stage5: ruff found problems (ruff check --fix . && ruff format .)" >&2; exit 1; }
exec python -m pytest "$@"
