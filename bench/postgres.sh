#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Usage: bench/postgres.sh    Issue 19's benchmark: the PostgreSQL engine beside the SQLite (file)
# engine, in one run, on one throwaway cluster (scripts/pg.sh; default settings, so every commit is
# flushed: synchronous_commit=on; the vault's SQLite runs SYNC=normal, its default).
#
# Part 1 (REPS rounds, the configurations' order rotated every round): export and create at N0
#   sessions (preloaded through the API by preload.py, verified; a fresh copy per run: `cp` of the
#   SQLite template, CREATE DATABASE … TEMPLATE for PostgreSQL) with
#     sqlite  one process on the file engine, one `wrk -t1 -cCONNS`
#     pg1     one instance on PostgreSQL, one `wrk -t1 -cCONNS`
#     pg2     two instances on one database, two wrk processes at once (`-t1 -c$((CONNS/2))`, one per
#             instance); req/s is their sum, p99 the larger of the two
#   DURATION s measured after WARMUP s. One key=value line per run.
# Part 2: for SIZES (sessions) in turn, each engine in turn: grow one database to the size through
#   the API (wrk lua/create.lua at 64 connections in chunks until /v1/sys/status counts it; rows
#   sealed by the vault itself; each chunk's length from the rate of the last, so a size is passed
#   by at most one chunk's overshoot), then start-up (bench/startup.py: process start to the first 200 on
#   /healthz, STARTUP_RUNS starts, median) and export latency at modest load (wrk -t1 -cLAT_CONNS for
#   LAT_SECS s, LAT_REPS runs on a fresh process, medians of p50/p99) on names sampled uniformly
#   from every session of the database. A size whose growth would pass BUDGET seconds since the
#   start is skipped and says so.
# Env: BIN (default: build), PORT=18480 (and PORT+1), N0=10000, REPS=3, DURATION=8, WARMUP=2,
#   CONNS=64, SIZES="10000 100000 1000000", LAT_CONNS=4, LAT_SECS=5, LAT_REPS=3, STARTUP_RUNS=3,
#   BUDGET=1800, PARTS="1 2", ENGINES="sqlite pg" (part 2). Loopback only; stops only the processes it started.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
N0="${N0:-10000}"; REPS="${REPS:-3}"; DURATION="${DURATION:-8}"; WARMUP="${WARMUP:-2}"; CONNS="${CONNS:-64}"
SIZES="${SIZES:-10000 100000 1000000}"; LAT_CONNS="${LAT_CONNS:-4}"; LAT_SECS="${LAT_SECS:-5}"
LAT_REPS="${LAT_REPS:-3}"; STARTUP_RUNS="${STARTUP_RUNS:-3}"; BUDGET="${BUDGET:-1800}"; PARTS="${PARTS:-1 2}"
ENGINES="${ENGINES:-sqlite pg}"
PORT2=$((PORT + 1)); URL2="http://127.0.0.1:$PORT2"
command -v wrk > /dev/null || die "wrk not installed (apt-get install -y wrk)"
ensure_bin
T_START=$(date +%s)
WORK="$(mktemp -d /tmp/svbench.XXXXXX)"
PG_DIR="$(mktemp -d /tmp/svbench-pg.XXXXXX)"   # directly under /tmp: the server runs as `postgres`
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
  bash "$REPO_DIR/scripts/pg.sh" destroy "$PG_DIR" > /dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

PG_URL="$(bash "$REPO_DIR/scripts/pg.sh" start "$PG_DIR")"
PG_BASE="${PG_URL%/*}"
export SESSION_VAULT_DATABASE_PASSWORD_FILE="$PG_DIR/password"
psql_() { PGPASSWORD="$(cat "$PG_DIR/password")" psql "$PG_BASE/postgres" -qAt -v ON_ERROR_STOP=1 -c "$1"; }
echo "# postgres: $(psql_ 'SHOW server_version') synchronous_commit=$(psql_ 'SHOW synchronous_commit')" \
     "shared_buffers=$(psql_ 'SHOW shared_buffers'); commit $(git -C "$REPO_DIR" rev-parse --short HEAD); nproc=$NCPU"

# storage for an engine: sqlite -> file:PATH, pg -> URL of database DB
storage_of() {  # $1 sqlite|pg, $2 file path or database name
  if [ "$1" = sqlite ]; then echo "file:$2"; else echo "$PG_BASE/$2"; fi
}
wait_up() {  # $1 url, $2 pid (bounded: 600 x 0.1 s)
  local i
  for i in $(seq 1 600); do
    curl -sf -o /dev/null --max-time 1 "$1/healthz" && return 0
    kill -0 "$2" 2>/dev/null || { echo "bench: server exited" >&2; return 1; }
    sleep 0.1
  done
  echo "bench: no /healthz after 60 s" >&2; return 1
}
stop_pid() {  # SIGTERM, SIGKILL after 10 s; only a pid this script started
  kill -TERM "$1" 2>/dev/null || return 0
  local i
  for i in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
up() {  # start a vault on port $1 with storage $2 (appended to PIDS), wait for /healthz
  SESSION_VAULT_LISTEN="127.0.0.1:$1" SESSION_VAULT_STORAGE="$2" SESSION_VAULT_MASTER_KEY="$SV_BENCH_MASTER_KEY" \
    SESSION_VAULT_ROOT_TOKEN="$SV_BENCH_TOKEN" SESSION_VAULT_SYNCHRONOUS="$SYNC" "$BIN" serve >> "$WORK/vault.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  wait_up "http://127.0.0.1:$1" "$pid" || { tail -20 "$WORK/vault.log" >&2; exit 1; }
}
down() { local p; for p in "${PIDS[@]}"; do stop_pid "$p"; done; PIDS=(); }
count() {  # sessions in the vault at $1
  curl -sf --max-time 30 -H "Authorization: Bearer $SV_BENCH_TOKEN" "$1/v1/sys/status" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["counts"]["sessions"])'
}
# wrk on $2 (url) with workload $1 for $3 s at $4 connections; output in $5.
wrk_() {
  RUN_ID="$(date +%s%N)" AUTH_KEY_B64="$(head -c 256 /dev/urandom | base64 -w0)" \
    timeout $(( $3 + 30 )) wrk -t1 -c"$4" -d"${3}s" --timeout 5s -s "$BENCH_DIR/lua/$1.lua" "$2" > "$5"
}
kv() { grep '^WRK ' "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1==k{print $2}'; }

# ---- templates at N0 (same seed for both engines: same names and rows) ----
psql_ "CREATE DATABASE tmpl" > /dev/null
for engine in sqlite pg; do
  up "$PORT" "$(storage_of "$engine" "$( [ "$engine" = sqlite ] && echo "$WORK/tmpl.db" || echo tmpl)")"
  python3 "$BENCH_DIR/preload.py" "$URL" "$WORK/data" -n "$N0" --conns 8 2>&1 | sed "s/^/# $engine template: /"
  down
done
export NAMES_FILE="$WORK/data/names.txt"

# ---- part 1: throughput ----
fresh() {  # a fresh copy of the template for engine $1; prints its storage
  if [ "$1" = sqlite ]; then
    rm -f "$WORK"/run.db*
    local f; for f in "$WORK"/tmpl.db*; do cp "$f" "$WORK/run.db${f#"$WORK"/tmpl.db}"; done
    echo "file:$WORK/run.db"
  else
    psql_ "DROP DATABASE IF EXISTS run WITH (FORCE)" > /dev/null
    psql_ "CREATE DATABASE run TEMPLATE tmpl" > /dev/null
    echo "$PG_BASE/run"
  fi
}
throughput() {  # $1 config, $2 workload, $3 round
  local cfg="$1" w="$2" storage rps p99
  storage="$(fresh "$( [ "$cfg" = sqlite ] && echo sqlite || echo pg)")"
  up "$PORT" "$storage"
  if [ "$cfg" = pg2 ]; then
    up "$PORT2" "$storage"
    local secs wp
    for secs in "$WARMUP" "$DURATION"; do
      wrk_ "$w" "$URL" "$secs" $((CONNS / 2)) "$WORK/w1" & wp=$!
      wrk_ "$w" "$URL2" "$secs" $((CONNS / 2)) "$WORK/w2"
      wait "$wp"
    done
    rps=$(awk -v a="$(kv "$WORK/w1" rps)" -v b="$(kv "$WORK/w2" rps)" 'BEGIN{print a+b}')
    p99=$(printf '%s\n%s\n' "$(kv "$WORK/w1" p99_ms)" "$(kv "$WORK/w2" p99_ms)" | sort -g | tail -1)
    non2xx=$(( $(kv "$WORK/w1" non2xx) + $(kv "$WORK/w2" non2xx) ))
  else
    wrk_ "$w" "$URL" "$WARMUP" "$CONNS" "$WORK/w1"
    wrk_ "$w" "$URL" "$DURATION" "$CONNS" "$WORK/w1"
    rps="$(kv "$WORK/w1" rps)"; p99="$(kv "$WORK/w1" p99_ms)"; non2xx="$(kv "$WORK/w1" non2xx)"
  fi
  down
  [ "$non2xx" = 0 ] || { grep -v ' info ' "$WORK/vault.log" | tail -5 | sed 's/^/# vault log: /'; grep -h '^STATUS' "$WORK"/w[12] | sed 's/^/# /'; } || true
  : > "$WORK/vault.log"
  echo "part=1 round=$3 config=$cfg workload=$w n=$N0 conns=$CONNS secs=$DURATION rps=$rps p99_ms=$p99 non2xx=$non2xx"
}
if [[ " $PARTS " == *" 1 "* ]]; then
  configs=(sqlite pg1 pg2)
  for round in $(seq 1 "$REPS"); do
    for i in 0 1 2; do
      cfg="${configs[$(( (i + round - 1) % 3 ))]}"
      for w in export create; do throughput "$cfg" "$w" "$round"; done
    done
  done
  psql_ "DROP DATABASE IF EXISTS run WITH (FORCE)" > /dev/null
fi

# ---- part 2: growth to SIZES ----
# Every session name of engine $1: the template's, plus w<RUN_ID>t1n<i> for 2 <= i < requests - 62 of
# each create chunk ($WORK/chunks-$1): wrk spends n=1 on a check request it never sends, and the
# last 64 may not have been answered when it stopped.
names_sample() {  # $1 engine, $2 how many -> $WORK/names-$1.txt
  python3 - "$WORK/data/names.txt" "$WORK/chunks-$1" "$2" > "$WORK/names-$1.txt" <<'PY'
import random, sys
base = [l.strip() for l in open(sys.argv[1]) if l.strip()]
chunks = [l.split() for l in open(sys.argv[2])] if __import__("os").path.exists(sys.argv[2]) else []
sizes = [len(base)] + [max(0, int(c) - 64) for _, c in chunks]
total, want, rng = sum(sizes), int(sys.argv[3]), random.Random(11)
for k in sorted(rng.sample(range(total), min(want, total))):
    for j, s in enumerate(sizes):
        if k < s:
            print(base[k] if j == 0 else f"w{chunks[j - 1][0]}t1n{k + 2}")
            break
        k -= s
PY
}
grow() {  # $1 engine, $2 storage, $3 target; the instance is up on PORT
  local have rate="${RATE[$1]}" secs run_id out="$WORK/grow.out" t0 t1
  have="$(count "$URL")"
  while [ "$have" -lt "$3" ]; do
    secs=$(( ($3 - have) / rate + 1 )); [ "$secs" -gt 60 ] && secs=60
    run_id="$(date +%s%N)"
    t0=$(date +%s%N)
    RUN_ID="$run_id" AUTH_KEY_B64="$(head -c 256 /dev/urandom | base64 -w0)" \
      timeout $(( secs + 30 )) wrk -t1 -c64 -d"${secs}s" --timeout 10s -s "$BENCH_DIR/lua/create.lua" "$URL" > "$out"
    t1=$(date +%s%N)
    [ "$(kv "$out" non2xx)" = 0 ] || { cat "$out" >&2; die "create failed while growing $1"; }
    echo "$run_id $(kv "$out" requests)" >> "$WORK/chunks-$1"
    rate=$(( $(kv "$out" requests) * 1000000000 / (t1 - t0) + 1 ))
    have="$(count "$URL")"
  done
  GROW_RATE=$rate
  echo "# grown engine=$1 sessions=$have last_rate=${rate}/s elapsed_total=$(( $(date +%s) - T_START ))s"
}
if [[ " $PARTS " == *" 2 "* ]]; then
  psql_ "CREATE DATABASE grow TEMPLATE tmpl" > /dev/null
  for f in "$WORK"/tmpl.db*; do cp "$f" "$WORK/grow.db${f#"$WORK"/tmpl.db}"; done
  declare -A RATE=([sqlite]=8000 [pg]=3000)
  for size in $SIZES; do
    for engine in $ENGINES; do
      storage="$(storage_of "$engine" "$( [ "$engine" = sqlite ] && echo "$WORK/grow.db" || echo grow)")"
      up "$PORT" "$storage"
      have="$(count "$URL")"
      left=$(( BUDGET - ($(date +%s) - T_START) ))
      if [ $(( (size - have) / ${RATE[$engine]} )) -gt "$left" ]; then
        echo "# skipped: engine=$engine size=$size (have $have; growing at ~${RATE[$engine]}/s would pass BUDGET=${BUDGET}s)"
        down; continue
      fi
      GROW_RATE=""
      grow "$engine" "$storage" "$size"
      [ -z "$GROW_RATE" ] || RATE[$engine]=$GROW_RATE
      n="$(count "$URL")"
      down
      # start-up: the same database every start (nothing copied or deleted)
      SESSION_VAULT_LISTEN="127.0.0.1:$PORT" SESSION_VAULT_STORAGE="$storage" SESSION_VAULT_MASTER_KEY="$SV_BENCH_MASTER_KEY" \
        SESSION_VAULT_ROOT_TOKEN="$SV_BENCH_TOKEN" SESSION_VAULT_SYNCHRONOUS="$SYNC" \
        python3 "$BENCH_DIR/startup.py" --port "$PORT" --runs "$STARTUP_RUNS" --log "$WORK/startup.log" -- "$BIN" serve \
        > "$WORK/startup.out"
      ready="$(sed -n 's/.*ready_ms_median=\([0-9.]*\).*/\1/p' "$WORK/startup.out")"
      # export latency at modest load, on a fresh process
      names_sample "$engine" 20000
      up "$PORT" "$storage"
      NAMES_FILE="$WORK/names-$engine.txt" wrk_ export "$URL" 1 "$LAT_CONNS" "$WORK/w1"
      : > "$WORK/lat"
      for r in $(seq 1 "$LAT_REPS"); do
        NAMES_FILE="$WORK/names-$engine.txt" wrk_ export "$URL" "$LAT_SECS" "$LAT_CONNS" "$WORK/w1"
        [ "$(kv "$WORK/w1" non2xx)" = 0 ] || { cat "$WORK/w1" >&2; die "export failed ($engine, $size)"; }
        echo "$(kv "$WORK/w1" p50_ms) $(kv "$WORK/w1" p99_ms) $(kv "$WORK/w1" rps)" >> "$WORK/lat"
      done
      down
      echo "part=2 engine=$engine sessions=$n startup_ready_ms_median=$ready" \
           "export_c${LAT_CONNS}_p50_ms=$(cut -d' ' -f1 "$WORK/lat" | median) p99_ms=$(cut -d' ' -f2 "$WORK/lat" | median)" \
           "rps=$(cut -d' ' -f3 "$WORK/lat" | median) db_bytes=$( [ "$engine" = sqlite ] && du -cb "$WORK"/grow.db* | tail -1 | cut -f1 \
             || psql_ "SELECT pg_database_size('grow')")"
    done
  done
fi
echo "# total elapsed: $(( $(date +%s) - T_START )) s"
