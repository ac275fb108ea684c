#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Usage: bench/tls_slowloris.sh   Issue 20: a fresh client's time to a 200 while 500 connections never
# finish their TLS handshake, next to the same figure on the plain port under 500 connections that
# never finish their request head (bench/tls_slowloris.py). Release binary (BIN, else built), memory
# storage, a throwaway CA and certificate (lib.sh make_certs). Env: BIN, REPS=5, STALLS=500.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
REPS="${REPS:-5}"; STALLS="${STALLS:-500}"
ensure_bin
WORK="$(mktemp -d /tmp/svbench.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
make_certs "$WORK/certs"
echo "# bin=$BIN commit=$(git -C "$REPO_DIR" rev-parse --short HEAD) reps=$REPS stalls=$STALLS load=$(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$BENCH_DIR/tls_slowloris.py" --bin "$BIN" --certs "$WORK/certs" --reps "$REPS" --stalls "$STALLS"
