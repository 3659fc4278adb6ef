#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: set-up, lint, types, tests.
#   bash tests/run.sh              everything
#   bash tests/run.sh -k stores    extra arguments go to pytest
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash deploy/setup.sh --dev
echo "==> ruff"
.venv/bin/ruff check .
echo "==> mypy (strict)"
.venv/bin/mypy
echo "==> import layers"
.venv/bin/lint-imports
echo "==> pytest"
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
