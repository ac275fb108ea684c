#!/bin/bash
# usage: ctx.sh BIN CONNS [env...]: wrk's and the server's context switches per request over 6 s of export
. /tmp/pt/env.sh
BIN=$1; CONNS=$2; shift 2
pkill -x session-vault 2>/dev/null; sleep 0.3
rm -f /tmp/pt/v.db*; cp /tmp/pt/tmpl.db /tmp/pt/v.db
env "$@" $BIN > /tmp/pt/log 2>&1 &
PID=$!
sleep 0.7
NAMES_FILE=/tmp/pt/names10k.txt wrk -t1 -c$CONNS -d6s -s /work/main/bench/lua/export.lua http://127.0.0.1:18555 > /tmp/pt/wrk.out &
WPID=$!
sleep 5.5
w=$(cat /proc/$WPID/task/*/status | awk '/^voluntary_ctxt_switches/{v+=$2} /nonvoluntary/{n+=$2} END{print v, n}')
s=$(cat /proc/$PID/task/*/status | awk '/^voluntary_ctxt_switches/{v+=$2} /nonvoluntary/{n+=$2} END{print v, n}')
wait $WPID
req=$(grep WRK /tmp/pt/wrk.out | sed 's/.*requests=\([0-9]*\).*/\1/'); rps=$(grep WRK /tmp/pt/wrk.out | sed 's/.*rps=\([0-9]*\).*/\1/')
echo "rps=$rps wrk_ctx(vol,invol)=$w server_ctx(vol,invol)=$s per_req: wrk_vol=$(python3 -c "print(round(${w% *}/$req*6/5.5,3))")"
kill $PID; wait $PID 2>/dev/null
