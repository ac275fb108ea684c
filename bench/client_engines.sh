#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Usage: bench/client_engines.sh   Issue 17's storage engines (clients/python) with the real libraries
# against the release binary on loopback (bench/client_engines.py): open of a session with PEERS peers,
# save() of PEERS new peers, update_peers per call against the library's own in-memory storage.
# The libraries' venvs are the interop stage's (scripts/interop.sh --setup-only: pinned, offline use,
# session_vault reinstalled from this tree). One vault on a file store in a temp dir for the whole run;
# REPS repetitions, LIBS interleaved in each, one fresh Python process per (repetition, library);
# prints medians (min–max) and keeps the rows in bench/results/client_engines-*.jsonl.
# Env: BIN SYNC PORT (default: a free one) (see lib.sh), REPS=3, PEERS=10000,
#      LIBS="pyrogram hydrogram kurigram pyrofork telethon", INTEROP_VENVS=.venv-interop.
set -euo pipefail
PORT="${PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
REPS="${REPS:-3}"; PEERS="${PEERS:-10000}"
LIBS="${LIBS:-pyrogram hydrogram kurigram pyrofork telethon}"
[ "$TARGET" = vault ] || die "client engines need TARGET=vault"
[ "$STORAGE" = file ] || die "client engines run on the file store"
ensure_bin
VENVS="${INTEROP_VENVS:-$REPO_DIR/.venv-interop}"
INTEROP_VENVS="$VENVS" "$REPO_DIR/scripts/interop.sh" --setup-only >&2
WORK="$(mktemp -d /tmp/svbench.XXXXXX)"
trap 'stop_target; rm -rf "$WORK"' EXIT
start_target "$WORK/vault.db" "$WORK/vault.log"
wait_healthy || { tail -20 "$WORK/vault.log" >&2; exit 1; }
commit="$(git -C "$REPO_DIR" describe --always --dirty --abbrev=7)"
echo "# client_engines: tree=$commit bin=$BIN sync=$SYNC peers=$PEERS reps=$REPS libs=$LIBS" \
     "python=$("$VENVS/${LIBS%% *}/bin/python" -c 'import platform; print(platform.python_version())')" \
     "load=$(cut -d' ' -f1-3 /proc/loadavg)"
for rep in $(seq 1 "$REPS"); do
  for lib in $LIBS; do
    [ -x "$VENVS/$lib/bin/python" ] || die "no venv for $lib in $VENVS"
    "$VENVS/$lib/bin/python" "$BENCH_DIR/client_engines.py" run --url "$URL" --lib "$lib" --rep "$rep" \
      --peers "$PEERS" >> "$WORK/rows.jsonl"
    echo "# rep $rep $lib: $(tail -1 "$WORK/rows.jsonl")" >&2
  done
done
echo "# vault after the run: rss_hwm_kb=$(status_kb "$SRV_PID" VmHWM)" \
     "db_bytes=$(du -cb "$WORK"/vault.db* | tail -1 | cut -f1) load=$(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$BENCH_DIR/client_engines.py" summarize "$WORK/rows.jsonl"
mkdir -p "$BENCH_DIR/results"
cp "$WORK/rows.jsonl" "$BENCH_DIR/results/client_engines-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
