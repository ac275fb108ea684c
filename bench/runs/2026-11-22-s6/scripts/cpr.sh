#!/bin/bash
# usage: cpr.sh BIN CONNS [env...]: fresh server on the 10k template, export for 8 s; prints rps and server CPU µs per request
. /tmp/pt/env.sh
BIN=$1; CONNS=$2; shift 2
pkill -x session-vault 2>/dev/null; sleep 0.3
rm -f /tmp/pt/v.db*; cp /tmp/pt/tmpl.db /tmp/pt/v.db
env "$@" $BIN > /tmp/pt/log 2>&1 &
PID=$!
sleep 0.7
t0=$(awk '{print $14+$15}' /proc/$PID/stat)
out=$(NAMES_FILE=${NAMES:-/tmp/pt/names10k.txt} wrk -t1 -c$CONNS -d8s -s /work/main/bench/lua/${WL:-export}.lua http://127.0.0.1:18555 | grep WRK)
t1=$(awk '{print $14+$15}' /proc/$PID/stat)
req=$(echo "$out" | sed 's/.*requests=\([0-9]*\).*/\1/'); rps=$(echo "$out" | sed 's/.*rps=\([0-9]*\).*/\1/')
p99=$(echo "$out" | sed 's/.*p99_ms=\([0-9.]*\).*/\1/')
hwm=$(grep VmHWM /proc/$PID/status | awk '{print $2}')
echo "rps=$rps p99=$p99 cpu_us_per_req=$(python3 -c "print(round(($t1-$t0)*10000/$req,2))") hwm_kib=$hwm"
kill $PID; wait $PID 2>/dev/null
