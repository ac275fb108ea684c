#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Usage: bench/backlog.sh   Does read load leave write work behind? Every export queues deferred
# writes (last-exported time, audit event) for the single writer. This runs the export workload
# for DURATION s (CONNS connections), then at once times one create (curl) and follows, every 0.5 s
# for at most 60 s, the server's RSS, its CPU, and the DB+WAL size, until the server is idle
# (CPU < 5 % over one interval). Also times a create before the load, as the baseline.
# Env: TARGET BIN SYNC PORT N, DURATION=10 CONNS=64.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
DURATION="${DURATION:-10}"; CONNS="${CONNS:-64}"
ensure_bin
WORK="$(mktemp -d /tmp/svbench.XXXXXX)"
trap 'stop_target; rm -rf "$WORK"' EXIT
export NAMES_FILE="$WORK/data/names.txt"
make_template 2> >(grep '^# template' >&2)
fresh_copy
start_target "$WORK/run.db" "$WORK/run.log"
wait_healthy || { tail -20 "$WORK/run.log" >&2; exit 1; }
key="$(head -c 256 /dev/urandom | base64 -w0)"
create_ms() {  # $1 name -> "status ms"
  curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 60 -H "Authorization: Bearer $SV_BENCH_TOKEN" \
    -H 'Content-Type: application/json' \
    -d "{\"name\":\"$1\",\"dc_id\":2,\"api_id\":1,\"test_mode\":false,\"user_id\":1,\"is_bot\":false,\"auth_key\":\"$key\"}" \
    "$URL/v1/sessions" | awk '{printf "%s %.1f", $1, $2*1000}'
}
dbsize() { du -cb "$WORK"/run.db* | tail -1 | cut -f1; }
echo "before: create=$(create_ms bl-before) rss_kb=$(status_kb "$SRV_PID" VmRSS) db_bytes=$(dbsize)"
timeout $(( DURATION + 20 )) wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s -s "$BENCH_DIR/lua/export.lua" "$URL" \
  | grep '^WRK' | sed 's/^WRK/export:/'
echo "after:  create=$(create_ms bl-after) rss_kb=$(status_kb "$SRV_PID" VmRSS) db_bytes=$(dbsize)"
t0="$(date +%s%N)"; prev="$(proc_ticks "$SRV_PID")"
for i in $(seq 1 120); do
  sleep 0.5
  cur="$(proc_ticks "$SRV_PID")"; cpu=$(( 100 * (cur - prev) * 2 / TCK )); prev="$cur"
  echo "  t=$(( ($(date +%s%N) - t0) / 1000000 ))ms cpu=${cpu}% rss_kb=$(status_kb "$SRV_PID" VmRSS) db_bytes=$(dbsize)"
  [ "$cpu" -lt 5 ] && break
done
echo "idle:   create=$(create_ms bl-idle) rss_kb=$(status_kb "$SRV_PID" VmRSS) db_bytes=$(dbsize)"
