#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Usage: bench/run.sh            (from anywhere; loopback only)
#
# Builds the release binary (unless BIN=...), makes a template database by starting the server on a
# fresh file in a temp dir and preloading N sessions through POST /v1/sessions (bench/preload.py),
# then for every workload: copies the template, starts a fresh process, records its idle RSS, runs a
# wrk warm-up and a measured run (wrk -t$THREADS -c$CONNS, capped by `timeout`), records CPU and
# peak RSS, stops the process. One key=value line per workload on stdout; rows appended to $RESULTS.
#
# Env (defaults):
#   TARGET=vault           vault | hb-grdb | hb-grdb-sync | hb-raw   (see lib.sh)
#   BIN=                   session-vault binary; empty = build (SCRATCH=<repo>/.build)
#   SYNC=normal            SESSION_VAULT_SYNCHRONOUS (normal | full); the peers run NORMAL
#   STORAGE=file           file | memory (memory: preload on every start, no template)
#   N=10000                preloaded sessions
#   WORKLOADS="healthz export metadata list create"
#   DURATION=10 WARMUP=2 CONNS=64 THREADS=1 LIST_LIMIT=100 PORT=18480
#   OTHER_MAX=15           flag a run noisy when other processes used more than this % of one core
#   RETRIES=1 RETRY_WAIT=15  a noisy run is repeated (fresh process) up to RETRIES times; all rows kept
#   RESULTS=bench/results/results.tsv   LABEL=  (free text stored with each row, e.g. rep=2)
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

N="${N:-10000}"
WORKLOADS="${WORKLOADS:-healthz export metadata list create}"
DURATION="${DURATION:-10}"; WARMUP="${WARMUP:-2}"; CONNS="${CONNS:-64}"; THREADS="${THREADS:-1}"
OTHER_MAX="${OTHER_MAX:-15}"; LABEL="${LABEL:-}"; RETRIES="${RETRIES:-1}"; RETRY_WAIT="${RETRY_WAIT:-15}"
RESULTS="${RESULTS:-$BENCH_DIR/results/results.tsv}"
export LIST_LIMIT="${LIST_LIMIT:-100}"
[ "$DURATION" -le 120 ] || die "DURATION is capped at 120 s"

command -v wrk > /dev/null || die "wrk not installed (apt-get install -y wrk)"
ensure_bin
WORK="$(mktemp -d /tmp/svbench.XXXXXX)"
trap 'stop_target; rm -rf "$WORK"' EXIT
export NAMES_FILE="$WORK/data/names.txt"

preload() { python3 "$BENCH_DIR/preload.py" "$URL" "$WORK/data" -n "$N" >&2; }
# 1. Template database (file storage): fresh file, preloaded through the API, closed cleanly.
if [ "$STORAGE" = file ]; then make_template; fi

wrk_run() {  # $1 workload, $2 seconds -> $WORK/wrk.out, $WORK/wrk.time
  RUN_ID="$(date +%s%N)" AUTH_KEY_B64="$(head -c 256 /dev/urandom | base64 -w0)" \
  timeout $(( $2 + 20 )) /usr/bin/time -f "%U %S %e" -o "$WORK/wrk.time" \
    wrk -t"$THREADS" -c"$CONNS" -d"${2}s" --timeout 5s -s "$BENCH_DIR/lua/$1.lua" "$URL" > "$WORK/wrk.out"
}
kv() { tr ' ' '\n' <<< "$1" | awk -F= -v k="$2" '$1==k{print $2}'; }

mkdir -p "$(dirname "$RESULTS")"
[ -s "$RESULTS" ] || printf 'when\ttarget\tsync\tstorage\tn\tworkload\tthreads\tconns\tsecs\trps\tp50_ms\tp90_ms\tp99_ms\tmax_ms\trequests\tnon2xx\tsock_errors\tsrv_cpu\twrk_cpu\tsys_busy\tother_cpu\tnoisy\trss_idle_kb\trss_hwm_kb\trss_end_kb\tlabel\n' > "$RESULTS"

measure() {  # $1 workload, $2 attempt; sets noisy/other
  local w="$1"
  # 2. Fresh process on a fresh copy of the template.
  rm -f "$WORK"/run.db*
  if [ "$STORAGE" = file ]; then fresh_copy; fi
  start_target "$WORK/run.db" "$WORK/run.log"
  wait_healthy || { tail -20 "$WORK/run.log" >&2; exit 1; }
  if [ "$STORAGE" = memory ]; then preload; fi
  rss_idle="$(status_kb "$SRV_PID" VmRSS)"
  if [ "$WARMUP" -gt 0 ]; then wrk_run "$w" "$WARMUP"; fi
  s0="$(proc_ticks "$SRV_PID")"; read -r tot0 idle0 <<< "$(sys_ticks)"; t0="$(date +%s%N)"
  wrk_run "$w" "$DURATION"
  s1="$(proc_ticks "$SRV_PID")"; read -r tot1 idle1 <<< "$(sys_ticks)"; t1="$(date +%s%N)"
  hwm="$(status_kb "$SRV_PID" VmHWM)"; rss_end="$(status_kb "$SRV_PID" VmRSS)"
  stop_target
  wall_ms=$(( (t1 - t0) / 1000000 ))
  srv=$(( 100 * 1000 * (s1 - s0) / TCK / wall_ms ))
  busy=$(( 100 * ((tot1 - tot0) - (idle1 - idle0)) / (tot1 - tot0) ))
  wcpu="$(awk '{ if ($3 > 0) printf "%d", 100*($1+$2)/$3; else print 0 }' "$WORK/wrk.time")"
  other=$(( NCPU * busy - srv - wcpu ))
  noisy=no; [ "$other" -gt "$OTHER_MAX" ] && noisy=yes
  res="$(grep '^WRK ' "$WORK/wrk.out" | sed 's/^WRK //')" || { cat "$WORK/wrk.out" >&2; die "wrk failed ($w)"; }
  echo "workload=$w target=$TARGET sync=$SYNC storage=$STORAGE n=$N threads=$THREADS conns=$CONNS secs=$DURATION $res" \
       "srv_cpu=${srv}% wrk_cpu=${wcpu}% sys_busy=${busy}% other_cpu=${other}% noisy=$noisy" \
       "rss_idle_kb=$rss_idle rss_hwm_kb=$hwm rss_end_kb=$rss_end"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$(date -u +%FT%TZ)" "$TARGET" "$SYNC" "$STORAGE" "$N" "$w" "$THREADS" "$CONNS" "$DURATION" \
    "$(kv "$res" rps)" "$(kv "$res" p50_ms)" "$(kv "$res" p90_ms)" "$(kv "$res" p99_ms)" "$(kv "$res" max_ms)" \
    "$(kv "$res" requests)" "$(kv "$res" non2xx)" "$(kv "$res" sock_errors)" "$srv" "$wcpu" "$busy" "$other" \
    "$noisy" "$rss_idle" "$hwm" "$rss_end" "$LABEL${LABEL:+ }attempt=$2" >> "$RESULTS"
}

for w in $WORKLOADS; do
  [ -f "$BENCH_DIR/lua/$w.lua" ] || die "unknown workload $w"
  if [ "$TARGET" != vault ] && { [ "$w" = metadata ] || [ "$w" = list ]; }; then
    echo "workload=$w target=$TARGET skipped (route not implemented by the peer)"; continue
  fi
  for attempt in $(seq 0 "$RETRIES"); do
    measure "$w" "$attempt"
    if [ "$noisy" = no ] || [ "$attempt" -ge "$RETRIES" ]; then break; fi
    echo "# noisy (other_cpu=${other}%), retrying in ${RETRY_WAIT}s" >&2; sleep "$RETRY_WAIT"
  done
done
