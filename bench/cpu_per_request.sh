#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Usage: BINS="/path/a /path/b" bench/cpu_per_request.sh
# Server CPU time per request, binaries interleaved: for each of REPS rounds and each binary, a
# fresh copy of one template database (N sessions, loaded through the API once), the release
# binary started on it, `wrk -t1 -cCONNS -dSECS` on WORKLOAD, and the server's utime+stime from
# /proc/PID/stat before and after. On a shared, noisy machine throughput swings by ±30 % between
# runs while CPU per request moves far less, so this is the figure to compare changes with.
# Prints one line per run: binary, rps, p99, server CPU µs per request, peak RSS.
# Env: BINS (required), WORKLOAD=export, CONNS=64, SECS=8, REPS=3, N=10000, SYNC=normal, PORT.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
[ -n "${BINS:-}" ] || die "set BINS to one or more release binaries"
WORKLOAD="${WORKLOAD:-export}"; CONNS="${CONNS:-64}"; SECS="${SECS:-8}"; REPS="${REPS:-3}"
[ "$SECS" -le 60 ] && [ "$REPS" -le 10 ] || die "SECS is capped at 60 and REPS at 10"
TARGET=vault
read -r -a bins <<< "$BINS"
BIN="${bins[0]}"
WORK="$(mktemp -d /tmp/svbench.XXXXXX)"
trap 'stop_target; rm -rf "$WORK"' EXIT
export NAMES_FILE="$WORK/data/names.txt"
make_template
hz="$(getconf CLK_TCK)"
for rep in $(seq 1 "$REPS"); do
  for BIN in "${bins[@]}"; do
    fresh_copy
    start_target "$WORK/run.db" "$WORK/run.log"
    wait_healthy || { tail -20 "$WORK/run.log" >&2; exit 1; }
    t0="$(proc_ticks "$SRV_PID")"
    RUN_ID="c$(date +%s%N)" AUTH_KEY_B64="$(head -c 256 /dev/urandom | base64 -w0)" \
      timeout $(( SECS + 30 )) wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$BENCH_DIR/lua/$WORKLOAD.lua" "$URL" > "$WORK/wrk.out" || true
    t1="$(proc_ticks "$SRV_PID")"
    hwm="$(status_kb "$SRV_PID" VmHWM)"
    stop_target
    line="$(grep WRK "$WORK/wrk.out" || echo "WRK rps=0 requests=0")"
    requests="$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<< "$line")"
    rps="$(sed -n 's/.*rps=\([0-9]*\).*/\1/p' <<< "$line")"
    p99="$(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' <<< "$line")"
    us="$(awk -v a="$t0" -v b="$t1" -v r="${requests:-0}" -v hz="$hz" 'BEGIN{ if (r > 0) printf "%.1f", (b - a) * 1e6 / hz / r; else print "-" }')"
    echo "rep=$rep bin=$BIN workload=$WORKLOAD conns=$CONNS rps=$rps p99_ms=$p99 server_cpu_us_per_req=$us peak_rss_kib=$hwm"
  done
done
