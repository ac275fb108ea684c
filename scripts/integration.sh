#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Black-box integration tests: the real session-vault binary on loopback, driven by pytest.
#
#   scripts/integration.sh [pytest args...]     (default: -q Tests/integration)
#
# Uses SESSION_VAULT_BIN if set, otherwise (re)builds .build/debug/session-vault incrementally.
# The virtualenv .venv-test is created on first use and reused afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTEST_VERSION="9.0.3"
VENV=".venv-test"

if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV"
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import pytest, sys; sys.exit(pytest.__version__ != '$PYTEST_VERSION')" 2>/dev/null; then
    echo "== installing pytest==$PYTEST_VERSION into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "pytest==$PYTEST_VERSION"
fi
# The API suites' pinned dependencies (openapi-spec-validator, schemathesis); pip is a no-op when satisfied.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r Tests/integration/requirements.txt

if [ -z "${SESSION_VAULT_BIN:-}" ]; then
    # Incremental: a no-op when the binary is up to date, and never a stale binary.
    echo "== building session-vault"
    swift build --product session-vault
    export SESSION_VAULT_BIN="$PWD/.build/debug/session-vault"
fi
echo "== integration and CLI tests against $SESSION_VAULT_BIN"

if [ "$#" -eq 0 ]; then
    set -- -q Tests/integration Tests/cli
fi
status=0
"$VENV/bin/python" -m pytest -p no:cacheprovider "$@" || status=$?
exit "$status"
