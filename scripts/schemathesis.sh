#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# OpenAPI conformance: schemathesis against the live binary (memory vault, root token).
#
#   scripts/schemathesis.sh [extra schemathesis args...]
#
# SV_URL / SV_TOKEN: test a vault that is already running (the pytest suite does this; SV_CA is
# the CA file to trust when SV_URL is https); otherwise a memory vault is started on a free
# loopback port and stopped afterwards.
# SV_MAX_EXAMPLES (default 25) bounds the run. Checks: all, except
#   positive_data_acceptance        the spec cannot express some rules (one of session_string or
#                                   dc_id+auth_key; sessions/prefixes unless admin-only; one peer
#                                   filter at a time; username/IP syntax): known gaps, see the report;
#   unsupported_method              TRACE answers 501 (HTTP layer), not 405;
#   missing_required_header,        unauthenticated probes trip the failed-auth throttle (429 for
#   ignored_auth                    60 s), which then answers everything; auth is covered by
#                                   Tests/integration/api/test_auth.py instead;
#   use_after_free                  revoked tokens and sessions stay readable as tombstones by design.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=".venv-test"
ST="$VENV/bin/schemathesis"
if [ ! -x "$ST" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r Tests/integration/requirements.txt
fi

server_pid=""
cleanup() { if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi; }
trap cleanup EXIT

if [ -z "${SV_URL:-}" ]; then
    bin="${SESSION_VAULT_BIN:-.build/debug/session-vault}"
    [ -x "$bin" ] || swift build --product session-vault
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    SV_TOKEN="svt_$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
    log=$(mktemp)
    SESSION_VAULT_STORAGE=memory SESSION_VAULT_LISTEN="127.0.0.1:$port" SESSION_VAULT_ROOT_TOKEN="$SV_TOKEN" \
        SESSION_VAULT_MASTER_KEY="$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')" \
        "$bin" serve >"$log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
    SV_URL="http://127.0.0.1:$port"
fi

EXCLUDED="positive_data_acceptance,unsupported_method,missing_required_header,ignored_auth,use_after_free"
tls=()
if [ -n "${SV_CA:-}" ]; then tls=(--tls-verify "$SV_CA"); fi
exec_status=0
repo="$PWD"
scratch=$(mktemp -d)  # schemathesis keeps a .schemathesis/ folder in its working directory
cd "$scratch"
NO_PROXY='*' no_proxy='*' "$repo/$ST" --config-file "$repo/Tests/integration/api/schemathesis.toml" run "$repo/openapi.yaml" \
    --url "$SV_URL" -H "Authorization: Bearer $SV_TOKEN" \
    --checks all --exclude-checks "$EXCLUDED"  \
    --max-examples "${SV_MAX_EXAMPLES:-25}" --workers 1 --request-timeout 10 --seed "${SV_SEED:-1}" \
    --no-color "${tls[@]}" "$@" || exec_status=$?
cd "$repo"
rm -rf "$scratch"
exit "$exec_status"
