#!/bin/bash
# usage: threads.sh BIN [CONNS]: per-thread CPU ticks during a 5 s export run
. /tmp/pt/env.sh
BIN=$1; CONNS=${2:-64}
rm -f /tmp/pt/v.db*; cp /tmp/pt/tmpl.db /tmp/pt/v.db
$BIN > /tmp/pt/log 2>&1 &
PID=$!
sleep 0.7
snap(){ for t in /proc/$PID/task/*; do echo "$(basename $t) $(cat $t/comm | tr ' ' _) $(awk '{print $14+$15}' $t/stat)"; done | sort; }
snap > /tmp/pt/s0
NAMES_FILE=/tmp/pt/pre/names.txt wrk -t1 -c$CONNS -d5s -s /work/main/bench/lua/${WL:-export}.lua http://127.0.0.1:18555 | grep WRK
snap > /tmp/pt/s1
join -a2 -e0 -o 2.1,2.2,1.3,2.3 /tmp/pt/s0 /tmp/pt/s1 | awk '{d=$4-$3; if (d>0) print $1, $2, d}'
kill $PID; wait $PID 2>/dev/null
