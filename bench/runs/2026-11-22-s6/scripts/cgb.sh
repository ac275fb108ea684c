#!/bin/bash
# callgrind of the export path: preload 1000 sessions with the normal binary, then profile under valgrind
set -e
. /tmp/pt/env.sh
pkill -f sv-nodbg || true; pkill -f "bench-build/release/session-vault" || true; sleep 0.5
strip -g -o /tmp/pt/sv-nodbg ${BIN:-/tmp/bench-build/release/session-vault}
rm -rf /tmp/pt/v.db* /tmp/pt/cg.out* /tmp/pt/pre; mkdir -p /tmp/pt/pre
(${BIN:-/tmp/bench-build/release/session-vault} > /tmp/pt/log 2>&1 &)
sleep 1
python3 /work/main/bench/preload.py http://127.0.0.1:18555 /tmp/pt/pre -n 1000 > /dev/null
pkill -f "${BIN:-bench-build/release/session-vault}"; sleep 1
(valgrind --tool=callgrind --callgrind-out-file=/tmp/pt/cg.out /tmp/pt/sv-nodbg > /tmp/pt/vg.log 2>&1 &)
for i in $(seq 1 150); do curl -sf -o /dev/null --max-time 1 127.0.0.1:18555/healthz && break; sleep 0.2; done
PID=$(pgrep -f "sv-nodbg" | head -1)
callgrind_control -z $PID >/dev/null
NAMES_FILE=/tmp/pt/pre/names.txt wrk -t1 -c${CONNS:-16} -d${SECS:-10}s --timeout 10s -s /work/main/bench/lua/export.lua http://127.0.0.1:18555 | tail -1
callgrind_control -d $PID >/dev/null; sleep 1
kill $PID
