#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Usage: bench/profile.sh   Where the server's CPU goes on the export and create paths.
# PROFILER=perf (default): `perf record -e cpu-clock -g` attached to the server for PROF_SECS (5) s
#   while wrk drives it (-t1 -cCONNS); cpu-clock is a software event, so it works in this VM where
#   hardware counters (`perf stat -e instructions`) are not supported. CALLGRAPH=dwarf for full stacks.
# PROFILER=callgrind: the server runs under `valgrind --tool=callgrind` (instruction counts, exact
#   but ~50x slower), driven by wrk -c4 for PROF_SECS s; the profile is dumped with callgrind_control.
# Writes bench/results/profile-<workload>-<profiler>.txt (top symbols, self time; then by library).
# Env: TARGET BIN SYNC PORT N, WORKLOADS="export create", PROF_SECS=5, CONNS=16; TLS=1 serves HTTPS
# (a throwaway certificate, lib.sh make_certs; perf only) and CONNECTION_CLOSE=1 makes every request a
# new connection (bench/lua/common.lua).
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
PROFILER="${PROFILER:-perf}"; PROF_SECS="${PROF_SECS:-5}"; CONNS="${CONNS:-16}"
WORKLOADS="${WORKLOADS:-export create}"
OUT_DIR="${OUT_DIR:-$BENCH_DIR/results}"; mkdir -p "$OUT_DIR"
[ "$PROF_SECS" -le 60 ] || die "PROF_SECS is capped at 60"
ensure_bin
WORK="$(mktemp -d /tmp/svbench.XXXXXX)"
trap 'stop_target; rm -rf "$WORK"' EXIT
export NAMES_FILE="$WORK/data/names.txt"
make_template
if [ "${TLS:-0}" = 1 ]; then make_certs "$WORK/certs"; tls_on "$WORK/certs"; fi
for w in $WORKLOADS; do
  fresh_copy
  out="$OUT_DIR/profile-$w-$PROFILER.txt"
  if [ "$PROFILER" = perf ]; then
    start_target "$WORK/run.db" "$WORK/run.log"
    wait_healthy || { tail -20 "$WORK/run.log" >&2; exit 1; }
    RUN_ID="p$(date +%s%N)" AUTH_KEY_B64="$(head -c 256 /dev/urandom | base64 -w0)" \
      timeout $(( PROF_SECS + 20 )) wrk -t1 -c"$CONNS" -d"$(( PROF_SECS + 2 ))s" -s "$BENCH_DIR/lua/$w.lua" "$URL" > "$WORK/wrk.out" &
    wrk_pid=$!
    sleep 1
    cg="-g"; [ "${CALLGRAPH:-fp}" = dwarf ] && cg="--call-graph=dwarf,16384"
    timeout $(( PROF_SECS + 30 )) perf record -e cpu-clock -F 999 $cg -p "$SRV_PID" -o "$WORK/perf.data" -- sleep "$PROF_SECS" 2> "$WORK/perf.log"
    wait "$wrk_pid" || true
    stop_target
    { echo "# $w: perf record -e cpu-clock $cg, ${PROF_SECS}s, wrk -t1 -c$CONNS: $(grep WRK "$WORK/wrk.out")"
      echo "## top symbols (self)"
      perf report -i "$WORK/perf.data" --stdio --no-children --sort dso,symbol -g none --percent-limit 0.7 2>/dev/null \
        | grep -v '^$' | sed -e 's/[ -]*$//' | cut -c1-170
      echo "## by library (self)"
      perf report -i "$WORK/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | sed -e 's/[ -]*$//' | head -15
      echo "## system calls (inclusive: kernel time spent inside each, from the call graph)"
      perf report -i "$WORK/perf.data" --stdio --children --sort symbol -g none 2>/dev/null \
        | grep -E '\] (__x64_sys|__do_sys|do_epoll_wait|ksys_)' | sed -e 's/[ -]*$//' | head -15
      echo "## by thread (self; a serial stage such as the writer shows as one thread near 100/CPUs %)"
      perf report -i "$WORK/perf.data" --stdio --no-children --sort pid -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | sed -e 's/[ -]*$//' | head -12
    } > "$out"
    if [ "${CALLGRAPH:-fp}" = dwarf ]; then
      perf report -i "$WORK/perf.data" --stdio --children --sort symbol -g none --percent-limit 3 2>/dev/null \
        | grep -v '^$' | sed -e 's/[ -]*$//' | cut -c1-170 > "${out%.txt}-inclusive.txt" || true
    fi
  else
    target_cmd "$WORK/run.db"
    valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" "${CMD[@]}" > "$WORK/run.log" 2>&1 &
    SRV_PID=$!
    for _ in $(seq 1 600); do curl -sf -o /dev/null --max-time 1 "$URL/healthz" && break; sleep 0.1; done
    callgrind_control -z "$SRV_PID" > /dev/null 2>&1 || true   # drop start-up costs
    RUN_ID="p$(date +%s%N)" AUTH_KEY_B64="$(head -c 256 /dev/urandom | base64 -w0)" \
      timeout $(( PROF_SECS + 30 )) wrk -t1 -c4 -d"${PROF_SECS}s" --timeout 10s -s "$BENCH_DIR/lua/$w.lua" "$URL" > "$WORK/wrk.out" || true
    callgrind_control -d "$SRV_PID" > /dev/null 2>&1 || true
    stop_target
    { echo "# $w: callgrind (Ir), ${PROF_SECS}s, wrk -t1 -c4: $(grep WRK "$WORK/wrk.out")"
      callgrind_annotate "$(ls -t "$WORK"/cg.out* | head -1)" 2>/dev/null | head -60
    } > "$out"
  fi
  echo "# wrote $out"; head -40 "$out"
done
