#!/usr/bin/env bash
# The test command: installs jaxssl with its test extras into .venv, lints, runs the suite on two
# pytest-xdist workers (XLA:CPU compiles on one thread, so two workers keep two cores busy).
#   bash tests/run.sh            everything but the tests marked slow (547 tests; README: timings)
#   bash tests/run.sh --all      also the 11 slow ones: signals, 2-process FixMatch, learning runs (CI)
# Other arguments go to pytest, e.g. `bash tests/run.sh -k flexmatch`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
.venv/bin/ruff check jaxssl tests experiments
.venv/bin/ruff format --check jaxssl tests experiments
marker=(-m 'not slow')
if [ "${1:-}" = --all ]; then
  marker=()
  shift
fi
exec .venv/bin/python -m pytest -q -p no:cacheprovider -n "${JAXSSL_TEST_WORKERS:-2}" --dist loadgroup \
  "${marker[@]}" "$@"
