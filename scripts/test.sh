#!/usr/bin/env bash
# The test suite against real PostgreSQL (127.0.0.1:5432, else an embedded pgserver), Redis and replicas,
# in parallel: pytest-xdist with STAGE5_TEST_WORKERS processes (default 3; 0 runs it in one process).
# Extra arguments go to pytest (e.g. -m slow for the scale tests, -m "not integration" for the fast lane).
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh" "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/requirements-dev.txt"
# Lint and format first: a quick check that fails before a long suite would.
ruff check . && ruff format --check . || { echo "stage5: ruff found problems (ruff check --fix . && ruff format .)" >&2; exit 1; }
# Types, strict ([tool.mypy] in pyproject.toml): about 10 s cold, under 1 s from its cache.
mypy stage5 || { echo "stage5: mypy found type errors (see above; pyproject.toml [tool.mypy])" >&2; exit 1; }
# The layers (contracts in pyproject.toml): an import runs down them, never back up.
lint-imports --no-cache --no-logo || { echo "stage5: an import runs against the layers (see above; pyproject.toml [tool.importlinter])" >&2; exit 1; }
# The console's pages, modules and stylesheet: prettier (npm), skipped with a word when it cannot be had.
if command -v npx >/dev/null 2>&1 && npx --yes prettier@3 --version >/dev/null 2>&1; then
  npx --yes prettier@3 --check --log-level warn stage5/web/static \
    || { echo "stage5: prettier found unformatted console files (npx --yes prettier@3 --write stage5/web/static)" >&2; exit 1; }
else
  echo "stage5: prettier skipped (no npx, or the npm registry unreachable): the console files' formatting is not checked" >&2
fi
exec python -m pytest -n "${STAGE5_TEST_WORKERS:-3}" --dist worksteal "$@"
