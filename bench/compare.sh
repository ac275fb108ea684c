#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Usage: bench/compare.sh   Interleaved repetitions: for rep in 1..REPS, for target in TARGETS, run
# bench/run.sh once (all WORKLOADS). Slow drifts of the shared machine then spread over every
# target. Rows go to RESULTS (default bench/results/compare-<time>.tsv); the medians table is
# printed at the end by summarize.py (noisy rows left out).
# Env: REPS=3 TARGETS="vault hb-grdb hb-raw" plus everything run.sh takes (BIN, SYNC, WORKLOADS ...).
# "vault-full" in TARGETS runs the vault with SYNC=full (both durability settings in one run).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPS="${REPS:-3}"; TARGETS="${TARGETS:-vault hb-grdb hb-raw}"
export RESULTS="${RESULTS:-$HERE/results/compare-$(date +%Y%m%d-%H%M%S).tsv}"
if [ -z "${BIN:-}" ] && [[ " $TARGETS " == *" vault"* ]]; then  # build once, not per run
  . "$HERE/lib.sh"; ensure_bin; export BIN
fi
for rep in $(seq 1 "$REPS"); do
  for t in $TARGETS; do
    case "$t" in
      vault-full) TARGET=vault SYNC=full LABEL="rep=$rep" "$HERE/run.sh" ;;
      vault-normal|vault) TARGET=vault SYNC="${SYNC:-normal}" LABEL="rep=$rep" "$HERE/run.sh" ;;
      *) TARGET="$t" LABEL="rep=$rep" "$HERE/run.sh" ;;
    esac
  done
done
python3 "$HERE/summarize.py" "$RESULTS"
