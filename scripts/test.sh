#!/usr/bin/env bash
# The whole test suite, as CI runs it (the README's test command). Every stage runs; the script
# exits non-zero if any stage failed. Stages can be skipped for quick local runs:
#   SKIP_SANITIZERS=1 SKIP_FUZZ=1 SKIP_INTEROP=1 SKIP_API_MATRIX=1 scripts/test.sh
set -uo pipefail
cd "$(dirname "$0")/.."

export INTEROP_REQUIRE_VAULT=1  # the interop suite must reach the real vault
passed=0
failed=0
failures=()
stage() {
    local name=$1; shift
    echo
    echo "=== stage: $name"
    local start=$SECONDS
    if "$@"; then
        passed=$((passed + 1))
        echo "=== stage $name: ok ($((SECONDS - start)) s)"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "=== stage $name: FAILED ($((SECONDS - start)) s)"
    fi
}

build() {
    # Package.swift treats every warning as an error; the import check enforces module boundaries.
    swift build --build-tests --explicit-target-dependency-import-check error
}

lint() {
    local bad
    bad=$(grep -rlE '^\s*(@_implementationOnly |internal |public |package )?import (CSQLite|COpenSSL|CLibPQ)\b' Sources | grep -v '^Sources/VaultCore/' || true)
    [ -z "$bad" ] || { echo "C modules imported outside VaultCore: $bad"; return 1; }
    bad=$(grep -rlE '^\s*(@_implementationOnly |internal |public |package )?import COpenSSLTLS\b' Sources | grep -v '^Sources/HTTPServerTLS/' || true)
    [ -z "$bad" ] || { echo "libssl imported outside HTTPServerTLS: $bad"; return 1; }
    bad=$(grep -rlE '^\s*(internal |public |package )?import (VaultCore|VaultAPI)\b' Sources/HTTPServer || true)
    [ -z "$bad" ] || { echo "HTTPServer imports the domain: $bad"; return 1; }
    bad=$(grep -rnE 'try!|as! |fatalError\(' Sources || true)
    [ -z "$bad" ] || { echo "forbidden constructs in Sources:"; echo "$bad"; return 1; }
    # ThreadSanitizer cannot see Synchronization.Mutex's futex on Linux and reports what it guards
    # as races (scripts/sanitizers.sh); shared state locks with pthread mutexes (Locked, Shared,
    # PThreadLocked, NSLock) so every TSan report stays a real one.
    bad=$(grep -rnE '\bMutex(<|\()' Sources Tests || true)
    [ -z "$bad" ] || { echo "Synchronization.Mutex is invisible to TSan; use a pthread-based lock:"; echo "$bad"; return 1; }
    # openapi.yaml is validated by Tests/integration/api/test_openapi.py (a failing check, not a lint hint).
}

# A throwaway PostgreSQL cluster (scripts/pg.sh) for the store contract tests' postgres engine;
# removed at exit. Tests/integration/api/test_postgres.py starts its own (it stops and restarts it).
if [ -z "${SESSION_VAULT_TEST_POSTGRES_URL:-}" ] && ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    pg_dir=$(mktemp -d /tmp/sv-pg-XXXXXX)
    trap 'scripts/pg.sh destroy "$pg_dir" >/dev/null 2>&1' EXIT
    if url=$(scripts/pg.sh start "$pg_dir"); then
        export SESSION_VAULT_TEST_POSTGRES_URL=$url SESSION_VAULT_TEST_POSTGRES_PASSWORD_FILE=$pg_dir/password
        echo "test PostgreSQL cluster: $url"
    fi
fi

stage build build
stage lint lint
stage "swift test" swift test
[ -n "${SKIP_SANITIZERS:-}" ] || { [ -x scripts/sanitizers.sh ] && stage sanitizers scripts/sanitizers.sh; }
[ -n "${SKIP_FUZZ:-}" ] || { [ -x scripts/fuzz.sh ] && stage fuzz scripts/fuzz.sh; }
[ -x scripts/integration.sh ] && stage "integration + cli (real binary)" scripts/integration.sh
[ -x scripts/client.sh ] && stage "python client (clients/python)" scripts/client.sh
[ -n "${SKIP_INTEROP:-}" ] || { [ -x scripts/interop.sh ] && stage "interop (real client libraries)" scripts/interop.sh; }

# The API suite again over HTTPS and on PostgreSQL (Tests/integration/api/matrix.py), against the
# debug binary the integration stage tested. The PostgreSQL one needs the cluster started above:
# without one it is left out, except on CI, where that is a failure.
debug_binary="$PWD/.build/debug/session-vault"
api_over_https() {
    SESSION_VAULT_BIN=$debug_binary SESSION_VAULT_TEST_SCHEME=https scripts/integration.sh -q -rs Tests/integration/api
}
api_on_postgresql() {
    [ -n "${SESSION_VAULT_TEST_POSTGRES_URL:-}" ] || { echo "no PostgreSQL test cluster (scripts/pg.sh could not start one)"; return 1; }
    SESSION_VAULT_BIN=$debug_binary SESSION_VAULT_TEST_BACKEND=postgres scripts/integration.sh -q -rs Tests/integration/api
}
if [ -z "${SKIP_API_MATRIX:-}" ] && [ -x scripts/integration.sh ]; then
    stage "api over https" api_over_https
    if [ -n "${SESSION_VAULT_TEST_POSTGRES_URL:-}" ] || [ -n "${CI:-}" ]; then
        stage "api on postgresql" api_on_postgresql
    else
        echo; echo "=== stage api on postgresql: left out (no PostgreSQL test cluster; apt-get install postgresql)"
    fi
fi

# On CI (a fresh clone), running the tests must not change a tracked file.
tracked_files_unchanged() {
    local changed
    changed=$(git status --porcelain --untracked-files=no)
    [ -z "$changed" ] || { echo "the tests modified tracked files:"; echo "$changed"; return 1; }
}
if [ -n "${CI:-}" ] && git rev-parse --git-dir >/dev/null 2>&1; then stage "tracked files unchanged" tracked_files_unchanged; fi

echo
if [ "$failed" -gt 0 ]; then echo "failed stages: ${failures[*]}"; fi
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
