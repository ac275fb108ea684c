#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the libFuzzer targets of the Fuzz/ package (release, fuzzer + address sanitizer), replays
# every committed crash input (Fuzz/FailCases/<Target>/*, must not crash), then fuzzes each target
# for a short while from a scratch copy of its corpus. Exits non-zero on any build failure,
# regression or new crash, printing the reproducer.
#
#   scripts/fuzz.sh                      # all targets, FUZZ_SECONDS (default 60) split between them
#   FUZZ_SECONDS=600 scripts/fuzz.sh     # a longer run
#   FUZZ_TARGETS="FuzzHTTPParser" scripts/fuzz.sh
#   FUZZ_SECONDS=0 scripts/fuzz.sh       # build and replay regressions only
#
# New crash inputs are copied to Fuzz/artifacts/ (git-ignored). To keep one: minimise it with
#   Fuzz/.build/release/FuzzX -minimize_crash=1 -max_total_time=120 -exact_artifact_path=min Fuzz/artifacts/crash-…
# then commit it under Fuzz/FailCases/FuzzX/ and add a unit test (see Fuzz/FailCases/README.md).
#
# Why `-Xswiftc -sanitize=fuzzer,address`: swiftc keeps only the LAST `-sanitize=` option for
# instrumentation, so SwiftPM's `--sanitize=fuzzer --sanitize=address` alone yields either a binary
# without coverage counters (libFuzzer then mutates blindly) or one without ASan checks, depending
# on the order. One combined option, passed last, gives both (checked: `__sancov_cntrs` section
# present and an out-of-bounds read reported by ASan). SwiftPM's flags are still needed: they add
# `-parse-as-library` and link libFuzzer's `main`.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

seconds=${FUZZ_SECONDS:-60}
scratch=${FUZZ_SCRATCH:-$root/Fuzz/.build}

# SwiftPM names a path dependency after its directory: a checkout called "fuzz" collides with the
# Fuzz/ package itself ("product 'VaultCore' … not found").
if [ "$(basename "$root" | tr '[:upper:]' '[:lower:]')" = fuzz ]; then
    echo "fuzz: the repository directory must not be named 'fuzz' (SwiftPM identity clash with Fuzz/)" >&2
    exit 2
fi

if [ -n "${FUZZ_TARGETS:-}" ]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    targets=()
    for dir in Fuzz/Sources/*/; do targets+=("$(basename "$dir")"); done
fi

# Per-target options. max_len: envelopes/strings are short; session files are SQLite images (the
# seeds are 5-8 KiB); HTTP follows h2o's OSS-Fuzz bound.
options_for() {
    case $1 in
        FuzzEnvelopeOpen) echo "-max_len=4096" ;;
        FuzzSessionFile) echo "-max_len=65536" ;;
        FuzzSessionString) echo "-max_len=4096" ;;
        FuzzHTTPParser) echo "-max_len=16384 -dict=$root/Fuzz/http.dict" ;;
        *) echo "" ;;
    esac
}

# The Swift runtime's backtracer would print its own report (slowly) before libFuzzer's.
export SWIFT_BACKTRACE=enable=no

status=0
echo "== fuzz: building ${targets[*]}"
for target in "${targets[@]}"; do
    start=$SECONDS
    if ! swift build --package-path Fuzz --scratch-path "$scratch" -c release \
        --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address --product "$target"; then
        echo "fuzz: $target: BUILD FAILED"
        exit 1
    fi
    echo "fuzz: $target built ($((SECONDS - start)) s)"
done
bin=$(swift build --package-path Fuzz --scratch-path "$scratch" -c release --show-bin-path)

echo "== fuzz: regressions (Fuzz/FailCases)"
for target in "${targets[@]}"; do
    cases=()
    if [ -d "Fuzz/FailCases/$target" ]; then
        while IFS= read -r -d '' f; do cases+=("$f"); done \
            < <(find "Fuzz/FailCases/$target" -type f ! -name '*.md' -print0 | sort -z)
    fi
    if [ "${#cases[@]}" -eq 0 ]; then
        echo "fuzz: $target: no regression inputs"
        continue
    fi
    # shellcheck disable=SC2046
    if "$bin/$target" $(options_for "$target") "${cases[@]}" >"$scratch/$target-regressions.log" 2>&1; then
        echo "fuzz: $target: ${#cases[@]} regression inputs ok"
    else
        status=1
        echo "fuzz: $target: REGRESSION — a committed crash input fails again:"
        grep -E "invariant violated|ERROR: AddressSanitizer|SUMMARY|Running: |deadly signal|Fatal error" \
            "$scratch/$target-regressions.log" | head -20
        echo "fuzz: full log: $scratch/$target-regressions.log"
    fi
done

[ "$seconds" -gt 0 ] || exit $status

per=$((seconds / ${#targets[@]}))
[ "$per" -ge 1 ] || per=1
work=$(mktemp -d "${TMPDIR:-/tmp}/session-vault-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$root/Fuzz/artifacts"
echo "== fuzz: ${per} s per target (FUZZ_SECONDS=$seconds)"
for target in "${targets[@]}"; do
    corpus="$work/corpus-$target"
    mkdir -p "$corpus" "$work/artifacts"
    # A scratch copy: libFuzzer adds every interesting input to the first corpus directory.
    [ -d "Fuzz/Corpus/$target" ] && cp -R "Fuzz/Corpus/$target/." "$corpus/"
    log="$work/$target.log"
    # shellcheck disable=SC2046
    "$bin/$target" $(options_for "$target") -max_total_time="$per" -rss_limit_mb=2048 -timeout=60 \
        -print_final_stats=1 -artifact_prefix="$work/artifacts/$target-" "$corpus" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\).*DONE.*/\1/p' "$log" | tail -1)
    if [ "$rc" -eq 0 ]; then
        echo "fuzz: $target: ok, ${execs:-?} executions in ${per} s"
    else
        status=1
        echo "fuzz: $target: CRASH (exit $rc) after ${execs:-?} executions"
        grep -E "invariant violated|ERROR: AddressSanitizer|ERROR: libFuzzer|SUMMARY|Fatal error" "$log" | head -10
        for artifact in "$work"/artifacts/"$target"-*; do
            [ -e "$artifact" ] || continue
            cp "$artifact" "$root/Fuzz/artifacts/"
            echo "fuzz: reproducer: Fuzz/artifacts/$(basename "$artifact")"
            echo "fuzz: replay with: $bin/$target Fuzz/artifacts/$(basename "$artifact")"
        done
        cp "$log" "$root/Fuzz/artifacts/$target.log"
        echo "fuzz: full log: Fuzz/artifacts/$target.log"
    fi
done
exit $status
