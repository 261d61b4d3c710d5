#!/usr/bin/env bash
# The test command: installs what it needs (scripts/env.sh), checks style, runs the whole suite.
# Extra arguments go to pytest, e.g. `bash tests/run.sh -m "not slow"` for the fast tests only.
# Tests run in NMT_TEST_WORKERS processes (default 2; each test itself uses one thread).
# The page's browser tests need Chromium (scripts/browser.sh installs it from Debian's packages).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/browser.sh  # Chromium for the page's browser tests, where it is missing and can be installed
ruff check nmt tests bench
ruff format --check nmt tests bench
python -m pytest -n "${NMT_TEST_WORKERS:-2}" "$@"
