#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Usage: bench/rss.sh   Resident memory of one server process through its life: empty, after
# preloading N sessions, restarted idle on that database, peak under LOAD (wrk export, CONNS
# connections, DURATION s; and create), and again after IDLE_AFTER s of rest (does it give memory back?).
# Env: TARGET BIN SYNC PORT N, CONNS=64 DURATION=10 IDLE_AFTER=5.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
CONNS="${CONNS:-64}"; DURATION="${DURATION:-10}"; IDLE_AFTER="${IDLE_AFTER:-5}"
ensure_bin
WORK="$(mktemp -d /tmp/svbench.XXXXXX)"
trap 'stop_target; rm -rf "$WORK"' EXIT
export NAMES_FILE="$WORK/data/names.txt"
make_template 2> >(grep '^# template' >&2)
fresh_copy
start_target "$WORK/run.db" "$WORK/run.log"
wait_healthy || { tail -20 "$WORK/run.log" >&2; exit 1; }
sleep 1
r_idle="$(status_kb "$SRV_PID" VmRSS)"
for w in export create; do
  RUN_ID="$(date +%s%N)" AUTH_KEY_B64="$(head -c 256 /dev/urandom | base64 -w0)" \
    timeout $(( DURATION + 20 )) wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s -s "$BENCH_DIR/lua/$w.lua" "$URL" \
    | grep '^WRK' | sed "s/^WRK/# $w:/"
  eval "r_$w=$(status_kb "$SRV_PID" VmRSS) h_$w=$(status_kb "$SRV_PID" VmHWM)"
done
sleep "$IDLE_AFTER"
echo "rss target=$TARGET sync=$SYNC n=$N idle_kb=$r_idle after_export_kb=$r_export hwm_after_export_kb=$h_export" \
     "after_create_kb=$r_create hwm_after_create_kb=$h_create idle_after_${IDLE_AFTER}s_kb=$(status_kb "$SRV_PID" VmRSS)"
