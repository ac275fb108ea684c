#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Usage: bench/export_rss.sh   One export run (wrk -t1 -c64, DURATION s) on a fresh copy of the
# N-session template, then where the server's resident memory is: VmRSS/VmHWM, thread count,
# RssAnon/RssFile, the largest mappings by name and the largest anonymous ones (malloc arenas).
# Env: BIN SYNC PORT N, DURATION=6.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
DURATION="${DURATION:-6}"
ensure_bin
WORK="$(mktemp -d /tmp/svbench.XXXXXX)"
trap 'stop_target; rm -rf "$WORK"' EXIT
export NAMES_FILE="$WORK/data/names.txt"
make_template 2>/dev/null
fresh_copy
start_target "$WORK/run.db" "$WORK/run.log"
wait_healthy
sleep 1
echo "idle_kb=$(status_kb "$SRV_PID" VmRSS)"
RUN_ID=1 timeout $(( DURATION + 20 )) wrk -t1 -c64 -d"${DURATION}s" -s "$BENCH_DIR/lua/export.lua" "$URL" | grep '^WRK'
echo "after_kb=$(status_kb "$SRV_PID" VmRSS) hwm_kb=$(status_kb "$SRV_PID" VmHWM) $(grep Threads /proc/"$SRV_PID"/status | tr -d '\t')"
grep -E "RssAnon|RssFile" /proc/"$SRV_PID"/status
awk '/^[0-9a-f]+-/{name=$6; if(name=="") name="[anon]"} /^Rss:/{rss[name]+=$2} END{for(n in rss) if (rss[n]>300) print rss[n], n}' \
  /proc/"$SRV_PID"/smaps | sort -rn | head -8
awk '/^[0-9a-f]+-/{r=$1; name=$6} /^Rss:/{ if ($2>300 && name=="") print $2, r}' /proc/"$SRV_PID"/smaps | sort -rn | head -8
