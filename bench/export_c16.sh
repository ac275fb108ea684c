#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Usage: bench/export_c16.sh   Export latency at low concurrency: the export workload with 16
# connections (CONNS=16), where p50/p99 are closer to service time than at 64 (Little's law).
# Same env as run.sh; WORKLOADS defaults to "export metadata".
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CONNS="${CONNS:-16}" WORKLOADS="${WORKLOADS:-export metadata}" exec "$HERE/run.sh"
