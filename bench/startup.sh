#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Usage: bench/startup.sh     Time from exec to the first 200 on /healthz (bench/startup.py), median of
# RUNS starts: (a) first boot on a brand-new database file, (b) restart on a database holding N
# sessions (preloaded through the API once, then copied fresh for every start).
# Env: TARGET BIN SYNC PORT N (see lib.sh/run.sh), RUNS=5. File storage only.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
RUNS="${RUNS:-5}"
ensure_bin
WORK="$(mktemp -d /tmp/svbench.XXXXXX)"
trap 'stop_target; rm -rf "$WORK"' EXIT
if [ "$TARGET" = vault ]; then  # the peers cannot create their own schema
  echo "# (a) first boot, empty database, target=$TARGET"
  target_cmd "$WORK/run.db"
  python3 "$BENCH_DIR/startup.py" --port "$PORT" --runs "$RUNS" --db "$WORK/run.db" --log "$WORK/startup.log" -- "${CMD[@]}"
fi
make_template
echo "# (b) restart on a database with N=$N sessions, target=$TARGET sync=$SYNC"
target_cmd "$WORK/run.db"
python3 "$BENCH_DIR/startup.py" --port "$PORT" --runs "$RUNS" --template "$WORK/template.db" --db "$WORK/run.db" \
  --log "$WORK/startup.log" -- "${CMD[@]}"
