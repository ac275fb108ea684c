#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Python client package (clients/python): install it into its own virtualenv the way a user
# would (`pip install ./clients/python`), then run its tests against the in-process fake vault.
# Its proof with the real libraries and the real binary is in the interop stage
# (Tests/interop/test_storage_engines.py).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=".venv-client"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r clients/python/requirements-test.txt
# Non-editable, like a user's install; --force-reinstall so the tests run today's sources.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --force-reinstall --no-deps ./clients/python
"$VENV/bin/python" -m pytest -q -p no:cacheprovider clients/python/tests "$@"
