#!/usr/bin/env bash
# The test command: installs jaxssl with its test extras into .venv, lints, runs the whole suite.
# Extra arguments go to pytest, e.g. `bash tests/run.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
.venv/bin/ruff check jaxssl tests experiments
.venv/bin/ruff format --check jaxssl tests experiments
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
