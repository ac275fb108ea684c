#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs the Swift test suite under ThreadSanitizer and AddressSanitizer, one after the other (the
# two cannot be combined), each in its own scratch path (.build-tsan, .build-asan).
#
# The verdict is the exit status of `swift test`, never its summary line: TSan reports a race
# *and the test still passes*; only the process exits non-zero.
#
#   scripts/sanitizers.sh                          # both, full suite
#   SANITIZERS="thread" scripts/sanitizers.sh      # one of them
#   SANITIZER_FILTER='Store|HTTP|Crypto|Connection' scripts/sanitizers.sh   # a subset (regex
#                                                  # for `swift test --filter`), if time is short
#
# Measured 2026-11-22 on the shared 2-core dev machine (load ~11, so CI should be faster):
#   thread  645 s (about 7 min build + 221 s of tests)   address  334 s (about 3 min build + 155 s)
# If that is too much for the CI budget, keep the concurrency-heavy suites under TSan only:
#   SANITIZERS=thread SANITIZER_FILTER='Store|Connection|HTTPRequestParser|Crypto|VaultService|Router'
#
# Known TSan limitation: `Synchronization.Mutex` locks with raw futex syscalls on Linux, which TSan
# does not see, so accesses protected by a `Mutex` are reported as races (checked: 64 threads
# incrementing a `Mutex<[Int: Int]>` → "Swift access race"; the same with pthread_mutex → none).
# Code that must be TSan-clean should lock with pthread_mutex (VaultCore's PThreadMutex).
#
# All Swift tests run in-process (real sockets and SQLite files, no spawned binary); the suites
# that start the real `session-vault` executable are the Python ones (scripts/integration.sh,
# scripts/cli-tests.sh), which are not part of this script.
set -uo pipefail
cd "$(dirname "$0")/.."

sanitizers=${SANITIZERS:-thread address}
filter=()
[ -z "${SANITIZER_FILTER:-}" ] || filter=(--filter "$SANITIZER_FILTER")

# apple/swift-protobuf's CI does the same on Linux: LeakSanitizer reports spurious leaks from the
# Swift runtime's one-time allocations.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
# Keep going after the first report so one run shows every race; the exit status still fails.
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0}
# The Swift backtracer and the sanitizers both want the fatal signals; let the sanitizer report.
export SWIFT_BACKTRACE=${SWIFT_BACKTRACE:-enable=no}

status=0
summary=()
for sanitizer in $sanitizers; do
    case $sanitizer in
        thread) scratch=.build-tsan ;;
        address) scratch=.build-asan ;;
        *) echo "sanitizers: unknown sanitizer '$sanitizer' (thread, address)"; exit 2 ;;
    esac
    echo "== sanitizers: swift test --sanitize=$sanitizer ${filter[*]}"
    start=$SECONDS
    log="$scratch/sanitizer-test.log"
    mkdir -p "$scratch"
    swift test --scratch-path "$scratch" --sanitize="$sanitizer" "${filter[@]}" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    # CI shows only the tail of the output: repeat each report's summary line (and the first
    # frames of the first report) there, so a rare race can be found from the CI record alone.
    reports=$(grep -c '^SUMMARY: .*Sanitizer' "$log" || true)
    if [ "$reports" -gt 0 ]; then
        echo "== sanitizers: $sanitizer: $reports report(s):"
        grep '^SUMMARY: .*Sanitizer' "$log" | sort | uniq -c | head -20
        grep -m1 -A40 '^WARNING: ThreadSanitizer\|^==[0-9]*==ERROR: AddressSanitizer' "$log" \
            | grep -E '^WARNING|^==[0-9]|^  [A-Z]|#[0-9]+ ' | head -30
    fi
    took=$((SECONDS - start))
    if [ "$rc" -eq 0 ]; then
        summary+=("$sanitizer: ok (${took} s)")
    else
        status=1
        summary+=("$sanitizer: FAILED, exit $rc (${took} s)")
    fi
done
echo "== sanitizers: ${summary[*]}"
exit $status
