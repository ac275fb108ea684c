#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Usage: bench/tls.sh   Issue 20: export over HTTPS, side by side in one run with nginx serving the same
# static answers over TLS with the same certificate.
#
# One template database (N sessions preloaded through the API over plain HTTP), a throwaway CA and
# server certificate (lib.sh make_certs), and an nginx tree with one static file per session holding
# the string export returns (from preload.py's expected.tsv, as the shared kit's nginx-static). Then
# REPS rounds, each running every (mode, target) once, interleaved:
#   modes    keepalive   wrk -t1 -c64 keeps its connections (both servers allow 1,000,000 requests each)
#            close       every request carries `Connection: close`: a new connection, over TLS a full
#                        handshake (neither server has session tickets or a session cache)
#   targets  vault-tls   session-vault serve with SESSION_VAULT_TLS_CERT_FILE/_KEY_FILE, fresh DB copy
#            nginx-tls   nginx, TLS 1.2/1.3, the vault's cipher list and preference, no tickets/cache,
#                        the token checked, static files; NGINX_WORKERS (auto: one per CPU)
#            vault-http  the vault on plain HTTP (what TLS costs)
# Each run: fresh process, WARMUP s of wrk, DURATION s measured; server CPU from /proc (nginx: master
# and workers), wrk's CPU, and other_cpu (nproc x machine busy - server - wrk): above OTHER_MAX (% of
# one core) the run is noisy and repeated once after RETRY_WAIT s, as run.sh does. One line per run,
# then per (target, mode) the median of the REPS final attempts (how many of them were still noisy is
# printed: on a busy machine compare only the ratios), and vault-tls / nginx-tls.
# Env: BIN N PORT (lib.sh), REPS=3 DURATION=10 WARMUP=2 CONNS=64 THREADS=1 NGINX_PORT=18481
#      NGINX_WORKERS=auto TARGETS="vault-tls nginx-tls vault-http" MODES="keepalive close"
#      OTHER_MAX=15 RETRIES=1 RETRY_WAIT=15
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
REPS="${REPS:-3}"; DURATION="${DURATION:-10}"; WARMUP="${WARMUP:-2}"; CONNS="${CONNS:-64}"; THREADS="${THREADS:-1}"
NGINX_PORT="${NGINX_PORT:-18481}"; NGINX_WORKERS="${NGINX_WORKERS:-auto}"
TARGETS="${TARGETS:-vault-tls nginx-tls vault-http}"; MODES="${MODES:-keepalive close}"
OTHER_MAX="${OTHER_MAX:-15}"; RETRIES="${RETRIES:-1}"; RETRY_WAIT="${RETRY_WAIT:-15}"
[ "$DURATION" -le 120 ] || die "DURATION is capped at 120 s"
[ "$TARGET" = vault ] || die "TARGET must be vault (nginx is a target of this script)"
command -v wrk > /dev/null || die "wrk not installed (apt-get install -y wrk)"
command -v nginx > /dev/null || die "nginx not installed (apt-get install -y nginx-light)"
ensure_bin
WORK="$(mktemp -d /tmp/svbench.XXXXXX)"
NGINX_PID=""
stop_nginx() {
  [ -n "$NGINX_PID" ] || return 0
  kill -TERM "$NGINX_PID" 2>/dev/null || true
  local i
  for i in $(seq 1 100); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$NGINX_PID" 2>/dev/null || true
  wait "$NGINX_PID" 2>/dev/null || true
  NGINX_PID=""
}
trap 'stop_target; stop_nginx; rm -rf "$WORK"' EXIT
export NAMES_FILE="$WORK/data/names.txt" SESSION_VAULT_MAX_REQUESTS_PER_CONNECTION=1000000

make_certs "$WORK/certs"
make_template

# nginx: the static tree and the configuration (prefix $WORK/nginx).
NGX="$WORK/nginx"
mkdir -p "$NGX/logs" "$NGX/tmp"
python3 - "$WORK/data/expected.tsv" "$NGX/www" <<'PY'
import os, sys
src, root = sys.argv[1], sys.argv[2]
with open(src) as f:
    for line in f:
        name, s = line.rstrip("\n").split("\t")
        d = os.path.join(root, "v1", "sessions", name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "export"), "w") as out:
            out.write(s)
PY
chmod a+x "$WORK" "$NGX"; chmod -R a+rX "$NGX/www"   # nginx's workers run as nobody when started as root
cat > "$NGX/nginx.conf" <<EOF
worker_processes $NGINX_WORKERS;
pid logs/nginx.pid;
error_log logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    open_file_cache max=20000 inactive=60s;
    server_tokens off;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT ssl backlog=1024;
        ssl_certificate $WORK/certs/server.pem;
        ssl_certificate_key $WORK/certs/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!SHA1;
        ssl_prefer_server_ciphers on;
        ssl_session_tickets off;
        ssl_session_cache off;
        root www;
        location = /healthz { default_type text/plain; return 200 "ok"; }
        location ~ ^/v1/sessions/[^/]+/export\$ {
            if (\$http_authorization != "Bearer $SV_BENCH_TOKEN") { return 401; }
            default_type text/plain;
            try_files \$uri =404;
        }
    }
}
EOF
nginx -t -p "$NGX/" -c nginx.conf -e logs/error.log > "$WORK/nginx-t.log" 2>&1 || { cat "$WORK/nginx-t.log" >&2; die "nginx -t failed"; }

start_nginx() {
  curl -s --cacert "$WORK/certs/ca.pem" -o /dev/null --max-time 1 "https://127.0.0.1:$NGINX_PORT/healthz" \
    && die "port $NGINX_PORT is already answering; pick another NGINX_PORT"
  nginx -p "$NGX/" -c nginx.conf -e logs/error.log -g "daemon off;" > "$WORK/nginx.log" 2>&1 &
  NGINX_PID=$!
  local i
  for i in $(seq 1 100); do
    curl -sf --cacert "$WORK/certs/ca.pem" -o /dev/null --max-time 1 "https://127.0.0.1:$NGINX_PORT/healthz" && return 0
    kill -0 "$NGINX_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$WORK/nginx.log" "$NGX/logs/error.log" >&2; die "nginx did not start"
}
tree_ticks() {  # $1 pid: utime+stime of it and its children (nginx's workers)
  local t=0 p
  for p in "$1" $(pgrep -P "$1" || true); do t=$(( t + $(proc_ticks "$p" || echo 0) )); done
  echo "$t"
}
kv() { tr ' ' '\n' <<< "$1" | awk -F= -v k="$2" '$1==k{print $2}'; }

# The same answer from both: one name's export from the vault (TLS) and from nginx, byte for byte.
probe_name="$(head -1 "$NAMES_FILE")"
fresh_copy; tls_on "$WORK/certs"; start_target "$WORK/run.db" "$WORK/run.log"
wait_healthy || { tail -20 "$WORK/run.log" >&2; exit 1; }
curl -sf --cacert "$WORK/certs/ca.pem" -H "Authorization: Bearer $SV_BENCH_TOKEN" \
  "https://127.0.0.1:$PORT/v1/sessions/$probe_name/export" > "$WORK/vault.answer"
stop_target; start_nginx
curl -sf --cacert "$WORK/certs/ca.pem" -H "Authorization: Bearer $SV_BENCH_TOKEN" \
  "https://127.0.0.1:$NGINX_PORT/v1/sessions/$probe_name/export" > "$WORK/nginx.answer"
stop_nginx
cmp -s "$WORK/vault.answer" "$WORK/nginx.answer" || die "the vault and nginx answer $probe_name differently"
echo "# commit=$(git -C "$REPO_DIR" rev-parse --short HEAD) bin=$BIN n=$N reps=$REPS conns=$CONNS threads=$THREADS" \
     "secs=$DURATION nginx_workers=$NGINX_WORKERS answer_bytes=$(wc -c < "$WORK/vault.answer")" \
     "nginx=$(nginx -v 2>&1 | sed 's/.*\///') load=$(cut -d' ' -f1-3 /proc/loadavg)"

run_one() {  # $1 target, $2 mode, $3 rep
  local target="$1" mode="$2" url pid
  case "$target" in
    vault-tls|vault-http)
      fresh_copy
      if [ "$target" = vault-tls ]; then tls_on "$WORK/certs"; else tls_off; fi
      start_target "$WORK/run.db" "$WORK/run.log"
      wait_healthy || { tail -20 "$WORK/run.log" >&2; exit 1; }
      url="$URL"; pid="$SRV_PID" ;;
    nginx-tls) start_nginx; url="https://127.0.0.1:$NGINX_PORT"; pid="$NGINX_PID" ;;
    *) die "unknown target $target" ;;
  esac
  local close=0; [ "$mode" = close ] && close=1
  if [ "$WARMUP" -gt 0 ]; then
    CONNECTION_CLOSE=$close timeout $(( WARMUP + 20 )) wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" --timeout 5s \
      -s "$BENCH_DIR/lua/export.lua" "$url" > /dev/null
  fi
  local s0 s1 t0 t1 tot0 tot1 idle0 idle1
  s0="$(tree_ticks "$pid")"; read -r tot0 idle0 <<< "$(sys_ticks)"; t0="$(date +%s%N)"
  CONNECTION_CLOSE=$close timeout $(( DURATION + 20 )) /usr/bin/time -f "%U %S %e" -o "$WORK/wrk.time" \
    wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 5s -s "$BENCH_DIR/lua/export.lua" "$url" > "$WORK/wrk.out"
  s1="$(tree_ticks "$pid")"; read -r tot1 idle1 <<< "$(sys_ticks)"; t1="$(date +%s%N)"
  if [ "$target" = nginx-tls ]; then stop_nginx; else stop_target; fi
  local res; res="$(grep '^WRK ' "$WORK/wrk.out" | sed 's/^WRK //')" || { cat "$WORK/wrk.out" >&2; die "wrk failed"; }
  local srv=$(( 100 * 1000 * (s1 - s0) / TCK / ((t1 - t0) / 1000000) ))
  local busy=$(( 100 * ((tot1 - tot0) - (idle1 - idle0)) / (tot1 - tot0) ))
  local wcpu; wcpu="$(awk '{ if ($3 > 0) printf "%d", 100*($1+$2)/$3; else print 0 }' "$WORK/wrk.time")"
  other=$(( NCPU * busy - srv - wcpu ))
  noisy=no; [ "$other" -gt "$OTHER_MAX" ] && noisy=yes
  echo "rep=$3 target=$target mode=$mode $res srv_cpu=${srv}% wrk_cpu=${wcpu}% other_cpu=${other}% noisy=$noisy" \
    | tee -a "$WORK/rows"
}

for rep in $(seq 1 "$REPS"); do
  for mode in $MODES; do
    for target in $TARGETS; do
      for attempt in $(seq 0 "$RETRIES"); do
        run_one "$target" "$mode" "$rep"
        if [ "$noisy" = no ] || [ "$attempt" -ge "$RETRIES" ]; then tail -1 "$WORK/rows" >> "$WORK/final"; break; fi
        echo "# noisy (other_cpu=${other}%), retrying in ${RETRY_WAIT}s" >&2; sleep "$RETRY_WAIT"
      done
    done
  done
done

echo "# medians of the $REPS final attempts (req/s, p99 ms, server and wrk CPU %)"
for mode in $MODES; do
  for target in $TARGETS; do
    rows="$(grep " target=$target mode=$mode " "$WORK/final")"
    rps="$(while read -r line; do kv "$line" rps; done <<< "$rows" | median)"
    p99="$(while read -r line; do kv "$line" p99_ms; done <<< "$rows" | median)"
    cpu="$(while read -r line; do kv "$line" srv_cpu | tr -d %; done <<< "$rows" | median)"
    errs="$(while read -r line; do echo $(( $(kv "$line" non2xx) + $(kv "$line" sock_errors) )); done <<< "$rows" | awk '{s+=$1} END{print s+0}')"
    wcpu="$(while read -r line; do kv "$line" wrk_cpu | tr -d %; done <<< "$rows" | median)"
    echo "median target=$target mode=$mode runs=$(wc -l <<< "$rows") noisy=$(grep -c 'noisy=yes' <<< "$rows" || true)" \
         "rps=$rps p99_ms=$p99 srv_cpu=$cpu% wrk_cpu=$wcpu% errors=$errs"
    eval "M_${target//-/_}_$mode=$rps"
  done
  v="M_vault_tls_$mode"; n="M_nginx_tls_$mode"
  if [ -n "${!v:-}" ] && [ -n "${!n:-}" ]; then
    echo "ratio mode=$mode vault-tls/nginx-tls=$(awk -v a="${!v}" -v b="${!n}" 'BEGIN{printf "%.2f", a/b}')"
  fi
done
