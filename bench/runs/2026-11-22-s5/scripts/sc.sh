#!/bin/bash
# usage: sc.sh BIN: syscall counts per export request (strace -c), 10k template
. /tmp/pt/env.sh
BIN=$1
pkill -x session-vault 2>/dev/null; sleep 0.3
rm -f /tmp/pt/v.db*; cp /tmp/pt/tmpl.db /tmp/pt/v.db
$BIN > /tmp/pt/log 2>&1 &
PID=$!
sleep 0.7
NAMES_FILE=/tmp/pt/pre/names.txt wrk -t1 -c16 -d2s -s /work/main/bench/lua/${WL:-export}.lua http://127.0.0.1:18555 >/dev/null
timeout -s INT 4 strace -f -c -p $PID -o /tmp/pt/strace.txt &
sleep 0.5
out=$(NAMES_FILE=/tmp/pt/pre/names.txt wrk -t1 -c16 -d3s -s /work/main/bench/lua/${WL:-export}.lua http://127.0.0.1:18555 | grep WRK)
wait %2 2>/dev/null; sleep 1
echo "$out"
head -20 /tmp/pt/strace.txt
kill $PID; wait $PID 2>/dev/null
