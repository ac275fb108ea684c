#!/bin/bash
# usage: io.sh BIN: bytes written/read through syscalls per export (/proc/PID/io wchar, rchar) over a 5 s run at c64
. /tmp/pt/env.sh
BIN=$1
rm -f /tmp/pt/v.db*; cp /tmp/pt/tmpl.db /tmp/pt/v.db
$BIN > /tmp/pt/log 2>&1 &
PID=$!
sleep 0.7
w0=$(awk '/^wchar/{print $2}' /proc/$PID/io); r0=$(awk '/^rchar/{print $2}' /proc/$PID/io)
out=$(NAMES_FILE=/tmp/pt/names10k.txt wrk -t1 -c64 -d5s -s /work/main/bench/lua/export.lua http://127.0.0.1:18555 | grep WRK)
w1=$(awk '/^wchar/{print $2}' /proc/$PID/io); r1=$(awk '/^rchar/{print $2}' /proc/$PID/io)
req=$(echo "$out" | sed 's/.*requests=\([0-9]*\).*/\1/'); rps=$(echo "$out" | sed 's/.*rps=\([0-9]*\).*/\1/')
echo "rps=$rps wchar/req=$(( (w1-w0)/req )) rchar/req=$(( (r1-r0)/req ))"
kill $PID; wait $PID 2>/dev/null
