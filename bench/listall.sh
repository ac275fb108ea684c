#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Usage: bench/listall.sh   Time to page through all N sessions with GET /v1/sessions?limit=LIMIT
# (default 1000) following next_after, RUNS times (default 5) on one connection (listall.py).
# Env: TARGET=vault only, BIN SYNC PORT N RUNS LIMIT.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
RUNS="${RUNS:-5}"; LIMIT="${LIMIT:-1000}"
[ "$TARGET" = vault ] || die "list needs TARGET=vault"
ensure_bin
WORK="$(mktemp -d /tmp/svbench.XXXXXX)"
trap 'stop_target; rm -rf "$WORK"' EXIT
make_template
fresh_copy
start_target "$WORK/run.db" "$WORK/run.log"
wait_healthy || { tail -20 "$WORK/run.log" >&2; exit 1; }
python3 "$BENCH_DIR/listall.py" "$URL" --limit "$LIMIT" --runs "$RUNS" --expect "$N"
echo "# listall: target=$TARGET n=$N rss_hwm_kb=$(status_kb "$SRV_PID" VmHWM)"
