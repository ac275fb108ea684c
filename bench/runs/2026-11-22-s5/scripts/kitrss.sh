#!/bin/bash
# usage: kitrss.sh BIN [workload]: like the shared kit: fresh vault, preload 10k via API, then wrk -c64 10 s; HWM after each phase
BIN=$1; W=${2:-export}
K=/tmp/sv/bench/load
rm -f /tmp/pt/k.sqlite3*
( set -a; . $K/bench.env; set +a
  SESSION_VAULT_SYNCHRONOUS=${SYNC:-normal} SESSION_VAULT_MAX_REQUESTS_PER_CONNECTION=1000000 SESSION_VAULT_LISTEN=127.0.0.1:18556 SESSION_VAULT_STORAGE=file:/tmp/pt/k.sqlite3 \
  SESSION_VAULT_MASTER_KEY="$BENCH_MASTER_KEY" SESSION_VAULT_ROOT_TOKEN="$BENCH_TOKEN" exec $BIN serve ) > /tmp/pt/klog 2>&1 &
PID=$!
for i in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:18556/healthz && break; sleep 0.1; done
hwm(){ grep -E 'VmHWM|VmRSS|RssAnon|RssFile' /proc/$PID/status | tr -s ' \n\t' ' '; }
echo "start: $(hwm)"
python3 $K/preload.py http://127.0.0.1:18556 2>&1
echo "preloaded: $(hwm)"
( set -a; . $K/bench.env; set +a; cd $K; wrk -t1 -c64 -d10s -s $K/$W.lua http://127.0.0.1:18556 | tail -3 )
echo "after $W: $(hwm)"
kill $PID; wait $PID 2>/dev/null
