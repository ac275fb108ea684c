#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A throwaway PostgreSQL cluster for the tests (Debian's `postgresql` package: initdb, pg_ctl).
#
#   scripts/pg.sh start DIR   creates the cluster in DIR on first use (a superuser `vault` with a
#                             random password in DIR/password, TCP on 127.0.0.1 only, a free port
#                             kept in DIR/port, the socket in DIR), starts it, and prints its URL
#                             (no password in it): postgresql://vault@127.0.0.1:PORT/vault
#   scripts/pg.sh stop DIR    stops it (fast shutdown); start DIR again restarts the same data
#   scripts/pg.sh destroy DIR stops it and removes DIR
#
# As root, the server runs as the `postgres` user (PostgreSQL refuses to run as root).
set -euo pipefail

command=${1:-}
dir=${2:-}
[ -n "$command" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|destroy DIR" >&2; exit 64; }

bin=${PG_BIN:-}
if [ -z "$bin" ]; then
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
fi
[ -x "$bin/pg_ctl" ] || { echo "pg.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 69; }

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$command" in
start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        [ "$(id -u)" = 0 ] && chown postgres: "$dir"
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        echo "$port" > "$dir/port"
        head -c 18 /dev/urandom | base64 | tr -d '/+=\n' > "$dir/password"
        chmod 600 "$dir/password"
        [ "$(id -u)" = 0 ] && chown postgres: "$dir/password" "$dir/port"
        as_owner "$bin/initdb" -D "$dir/data" -U vault --pwfile="$dir/password" \
            --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; exit 1; }
        cat >> "$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = on
max_connections = 200
CONF
        [ "$(id -u)" = 0 ] && chmod 644 "$dir/password"  # the tests (root) and the server user read it
    fi
    port=$(cat "$dir/port")
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
            || { tail -n 20 "$dir/server.log" >&2; exit 1; }
        if [ ! -f "$dir/created" ]; then
            as_owner psql -h "$dir" -p "$port" -U vault -d postgres -qAt -c "CREATE DATABASE vault" >/dev/null
            touch "$dir/created"
        fi
    fi
    echo "postgresql://vault@127.0.0.1:$port/vault"
    ;;
stop)
    if [ -f "$dir/data/PG_VERSION" ]; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
    fi
    ;;
destroy)
    "$0" stop "$dir"
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start|stop|destroy DIR" >&2; exit 64 ;;
esac
