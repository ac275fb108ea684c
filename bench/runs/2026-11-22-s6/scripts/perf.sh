#!/bin/bash
# usage: perf.sh BIN [CONNS]: perf record of the whole server during a 6 s export run (10k names)
. /tmp/pt/env.sh
BIN=$1; CONNS=${2:-64}
rm -f /tmp/pt/v.db*; cp /tmp/pt/tmpl.db /tmp/pt/v.db
$BIN > /tmp/pt/log 2>&1 &
PID=$!
sleep 0.7
(NAMES_FILE=${NAMES:-/tmp/pt/names10k.txt} wrk -t1 -c$CONNS -d7s -s /work/main/bench/lua/export.lua http://127.0.0.1:18555 | grep WRK) &
sleep 1
perf record -F 4999 -g -p $PID -o /tmp/pt/perf.data -- sleep 5 2>/dev/null >/dev/null
sleep 2
kill $PID; wait $PID 2>/dev/null
