#!/bin/bash
cd /work/main
OUT=/work/main/bench/runs/2026-11-22-s3
BIN=/tmp/bench-build/release/session-vault
echo "== shared kit, vault only, SYNCHRONOUS=full (create)"
(cd /tmp/sv && SESSION_VAULT_BIN=$BIN SESSION_VAULT_SYNCHRONOUS=full SESSION_VAULT_MAX_REQUESTS_PER_CONNECTION=1000000 PEERS="session-vault" WORKLOADS_SET="create" THREAD_SET=1 REPS=3 RETRIES=1 RETRY_WAIT=5 bench/load/bench_all.sh $OUT/shared-kit-vault-full.tsv > /tmp/sk-full.log 2>&1; python3 bench/load/summarize.py $OUT/shared-kit-vault-full.tsv | tail -4)
echo "== own kit, export at 16 connections"
CONNS=16 BIN=$BIN REPS=3 TARGETS="vault hb-raw" WORKLOADS="export" RESULTS=$OUT/own-export-c16.tsv bench/compare.sh 2>&1 | tail -4
echo "== own kit, create both durabilities + export, 64 connections"
BIN=$BIN REPS=3 TARGETS="vault-full vault hb-grdb hb-raw" WORKLOADS="create export" RESULTS=$OUT/own-c64.tsv bench/compare.sh 2>&1 | tail -10
echo "== startup"
BIN=$BIN SYNC=full RUNS=5 bench/startup.sh 2>&1 | tail -4
