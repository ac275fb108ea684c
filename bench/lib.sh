# SPDX-License-Identifier: Apache-2.0
# Shared helpers for the bench/*.sh scripts (sourced, not run). Everything here talks to 127.0.0.1 only
# and every wait loop is bounded.
#
# Targets (TARGET=...):
#   vault          the session-vault release binary (BIN, else built from this repo), env contract of
#                  README.md "Configuration": SESSION_VAULT_LISTEN/STORAGE/MASTER_KEY/ROOT_TOKEN/SYNCHRONOUS
#   hb-grdb hb-grdb-sync hb-raw
#                  the Hummingbird reference peer of the shared kit (HB_BIN, default
#                  /tmp/sv/bench/hummingbird-ref/.build/release/HummingbirdRef), started directly with our
#                  credentials on an empty DB of its schema; no metadata/list routes there.

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
set -a; . "$BENCH_DIR/bench.env"; set +a
export SV_BENCH_TOKEN SV_BENCH_MASTER_KEY

TARGET="${TARGET:-vault}"
PORT="${PORT:-18480}"
URL="http://127.0.0.1:$PORT"
TLS_DIR=""       # set by tls_on: the vault serves HTTPS with $TLS_DIR/server.pem (make_certs)
CURL_CA=()       # curl's --cacert while TLS is on
SYNC="${SYNC:-normal}"            # SESSION_VAULT_SYNCHRONOUS for the vault: normal | full
[ "$TARGET" = vault ] || SYNC=normal  # the peers always run WAL + synchronous=NORMAL
STORAGE="${STORAGE:-file}"        # file | memory (vault only)
N="${N:-10000}"                   # sessions preloaded through the API
HB_BIN="${HB_BIN:-/tmp/sv/bench/hummingbird-ref/.build/release/HummingbirdRef}"
NCPU="$(nproc)"
TCK="$(getconf CLK_TCK)"
SRV_PID=""

die() { echo "bench: $*" >&2; exit 2; }

# Build the release binary unless BIN is given. SCRATCH defaults to the repo's own .build.
ensure_bin() {
  if [ "$TARGET" != vault ]; then
    [ -x "$HB_BIN" ] || die "HB_BIN=$HB_BIN missing (build the shared kit's hummingbird-ref first)"
    return 0
  fi
  if [ -z "${BIN:-}" ]; then
    local scratch="${SCRATCH:-$REPO_DIR/.build}"
    echo "# building: swift build -c release --product session-vault --scratch-path $scratch" >&2
    (cd "$REPO_DIR" && swift build -c release --product session-vault --scratch-path "$scratch" >&2)
    BIN="$scratch/release/session-vault"
  fi
  [ -x "$BIN" ] || die "BIN=$BIN is not executable"
}

# A fresh empty DB for the hummingbird peer (schema of the shared bench contract, WAL).
hb_empty_db() {  # $1 path
  rm -f "$1" "$1-wal" "$1-shm"
  sqlite3 "$1" "PRAGMA journal_mode=WAL; CREATE TABLE sessions(name TEXT PRIMARY KEY, dc_id INTEGER,
    api_id INTEGER, test_mode INTEGER, user_id INTEGER, is_bot INTEGER, nonce BLOB, auth_key_ct BLOB);" > /dev/null
}

port_free() { ! curl -s "${CURL_CA[@]}" -o /dev/null --max-time 1 "$URL/healthz"; }

# HTTPS for the vault from the next start_target on (certificates from make_certs in $1); tls_off undoes it.
tls_on() { TLS_DIR="$1"; URL="https://127.0.0.1:$PORT"; CURL_CA=(--cacert "$1/ca.pem"); }
tls_off() { TLS_DIR=""; URL="http://127.0.0.1:$PORT"; CURL_CA=(); }

# Set CMD (argv) and export the environment that starts the target on $PORT with DB file $1.
target_cmd() {  # $1 db path
  case "$TARGET" in
    vault)
      local storage="file:$1"; [ "$STORAGE" = memory ] && storage=memory
      export SESSION_VAULT_LISTEN="127.0.0.1:$PORT" SESSION_VAULT_STORAGE="$storage" \
        SESSION_VAULT_MASTER_KEY="$SV_BENCH_MASTER_KEY" SESSION_VAULT_ROOT_TOKEN="$SV_BENCH_TOKEN" \
        SESSION_VAULT_SYNCHRONOUS="$SYNC"
      if [ -n "$TLS_DIR" ]; then
        export SESSION_VAULT_TLS_CERT_FILE="$TLS_DIR/server.pem" SESSION_VAULT_TLS_KEY_FILE="$TLS_DIR/server.key"
      else
        unset SESSION_VAULT_TLS_CERT_FILE SESSION_VAULT_TLS_KEY_FILE
      fi
      # shellcheck disable=SC2206
      CMD=("$BIN" serve ${VAULT_ARGS:-})
      ;;
    hb-grdb|hb-grdb-sync|hb-raw)
      [ -f "$1" ] || hb_empty_db "$1"
      export BENCH_HOST=127.0.0.1 BENCH_PORT="$PORT" BENCH_DB="$1" HB_DB_MODE="${TARGET#hb-}" \
        BENCH_TOKEN="$SV_BENCH_TOKEN" BENCH_MASTER_KEY="$SV_BENCH_MASTER_KEY"
      CMD=("$HB_BIN")
      ;;
    *) die "unknown TARGET=$TARGET" ;;
  esac
}

# Start the target in the background on $PORT with DB file $1; sets SRV_PID. Logs to $2.
start_target() {  # $1 db path, $2 log file
  port_free || die "port $PORT is already answering; pick another PORT"
  target_cmd "$1"
  "${CMD[@]}" > "$2" 2>&1 &
  SRV_PID=$!
}

# Wait (bounded: 600 x 0.1 s) for GET /healthz == 200; fails if the process died.
wait_healthy() {
  local i
  for i in $(seq 1 600); do
    curl -sf "${CURL_CA[@]}" -o /dev/null --max-time 1 "$URL/healthz" && return 0
    kill -0 "$SRV_PID" 2>/dev/null || { echo "bench: server exited" >&2; return 1; }
    sleep 0.1
  done
  echo "bench: no /healthz after 60 s" >&2; return 1
}

# SIGTERM, then SIGKILL after 10 s; only the PID we started.
stop_target() {
  [ -n "$SRV_PID" ] || return 0
  kill -TERM "$SRV_PID" 2>/dev/null || true
  local i
  for i in $(seq 1 100); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SRV_PID" 2>/dev/null || true
  wait "$SRV_PID" 2>/dev/null || true
  SRV_PID=""
}

status_kb() { awk -v k="$2:" '$1==k{print $2}' /proc/"$1"/status 2>/dev/null || echo 0; }  # $1 pid, $2 VmRSS|VmHWM
proc_ticks() { sed 's/^.*) //' /proc/"$1"/stat 2>/dev/null | awk '{print $12+$13}'; }      # utime+stime
sys_ticks() { awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat; }             # total idle+iowait

# Median of numbers on stdin (empty -> "-").
median() { sort -g | awk '{a[NR]=$1} END{ if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2 }'; }

# Template database in $WORK: fresh file, N sessions preloaded through the API (names in
# $WORK/data/names.txt), server stopped cleanly. Prints a "# template" line to stderr.
make_template() {
  start_target "$WORK/template.db" "$WORK/template.log"
  wait_healthy || { tail -20 "$WORK/template.log" >&2; return 1; }
  local rss_empty; rss_empty="$(status_kb "$SRV_PID" VmRSS)"
  python3 "$BENCH_DIR/preload.py" "$URL" "$WORK/data" -n "$N" >&2
  echo "# template: target=$TARGET sync=$SYNC n=$N rss_empty_kb=$rss_empty" \
       "rss_after_preload_kb=$(status_kb "$SRV_PID" VmRSS) hwm_kb=$(status_kb "$SRV_PID" VmHWM)" >&2
  stop_target
  echo "# template db files: $(cd "$WORK" && du -b template.db* | tr '\t\n' '= ')" >&2
}

# Copy the template's files (db, -wal, -shm if any) to $WORK/run.db*.
fresh_copy() {
  rm -f "$WORK"/run.db*
  local f
  for f in "$WORK"/template.db*; do cp "$f" "$WORK/run.db${f#"$WORK"/template.db}"; done
}

# A throwaway CA and a server certificate for 127.0.0.1 (IP SAN, P-256) in $1: ca.pem, server.pem,
# server.key. For the TLS benchmarks only (loopback; the files live in the bench's temp dir).
make_certs() {  # $1 folder
  command -v openssl > /dev/null || die "the openssl command is not installed"
  mkdir -p "$1"
  ( cd "$1" &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
      -days 2 -subj /CN=bench-ca &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr \
      -subj /CN=bench-server &&
    printf 'subjectAltName=IP:127.0.0.1\n' > server.ext &&
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 \
      -extfile server.ext ) > "$1/openssl.log" 2>&1 || { cat "$1/openssl.log" >&2; die "openssl failed"; }
}
