#!/usr/bin/env bash
# Interop proof: one virtualenv per real Telegram client library (each pins the exact version
# docs/formats.md was verified against), a runner venv with pytest, then `pytest Tests/interop`.
#
# Idempotent: a venv whose `.pinned` marker matches its pin list is reused as is, so a second
# run spends no time installing. Pure-Python wheels only (no tgcrypto: nothing here encrypts).
#
#   scripts/interop.sh                    set up (if needed), run the suite, check the baseline
#   scripts/interop.sh --setup-only       only create/refresh the venvs
#   scripts/interop.sh --update-baseline  run, then accept the results as the new baseline
#   scripts/interop.sh -- ARGS...         extra pytest arguments (e.g. -k pyrogram)
#
# After pytest, Tests/interop/matrix_report.py prints pass/fail counts, writes
# docs/compatibility.md and fails if any cell that passes in Tests/interop/expected_matrix.json
# no longer passes.
#
# Environment: PYTHON (interpreter for the venvs, default python3), SESSION_VAULT_BIN (vault
# binary, default .build/debug/session-vault; without one the vault cells are skipped, or fail
# with INTEROP_REQUIRE_VAULT=1), INTEROP_VENVS (default .venv-interop).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENVS="${INTEROP_VENVS:-.venv-interop}"
setup_only=0
update_baseline=0
pytest_args=()
while [ "$#" -gt 0 ]; do
    case "$1" in
        --setup-only) setup_only=1 ;;
        --update-baseline) update_baseline=1 ;;
        --) shift; pytest_args+=("$@"); break ;;
        *) pytest_args+=("$1") ;;
    esac
    shift
done

# key -> pip requirements (space separated). Keys match docs/formats.md / the vectors. Transitive
# dependencies are pinned too (the set this suite was verified with), so a new release of e.g.
# aiosqlite cannot silently change what "hydrogram 0.2.0" does.
declare -A PINS=(
    [pyrogram]="pyrogram==2.0.106 pyaes==1.6.1 PySocks==1.7.1"
    [hydrogram]="hydrogram==0.2.0 aiosqlite==0.22.1 pyaes==1.6.1 PySocks==1.7.1"
    [kurigram]="kurigram==2.2.26 pyaes==1.6.1 python-socks==3.2.1"
    [pyrofork]="pyrofork==2.3.69 pyaes==1.6.1 PySocks==1.7.1 pymediainfo-pyrofork==6.0.2"
    [telethon]="telethon==1.45.0 pyaes==1.6.1 rsa==4.9.1 pyasn1==0.6.5"
    [pyrogram-1.4]="pyrogram==1.4.16 pyaes==1.6.1 PySocks==1.7.1"
    [telethon-1.42]="telethon==1.42.0 pyaes==1.6.1 rsa==4.9.1 pyasn1==0.6.5"
    [runner]="pytest==9.0.3 iniconfig==2.3.1 packaging==26.3 pluggy==1.7.0 Pygments==2.21.0"
)
ORDER=(runner pyrogram hydrogram kurigram pyrofork telethon pyrogram-1.4 telethon-1.42)
# The storage engines' package (clients/python, issue 17) goes into these venvs, after their pins:
# its one runtime dependency httpx and httpx's own dependencies, pinned exactly, plus flit_core so
# the package builds offline (--no-build-isolation --no-index).
CLIENT_LIBS=" pyrogram hydrogram kurigram pyrofork telethon "
CLIENT_PINS="httpx==0.29.0 anyio==4.16.0 certifi==2026.10.19.post1 h11==0.16.0 httpcore==1.0.9 idna==3.21 typing_extensions==4.16.0 flit_core==3.12.0"
for key in $CLIENT_LIBS; do PINS[$key]="${PINS[$key]} $CLIENT_PINS"; done

make_venv() {
    local key="$1" pins="$2" dir="$VENVS/$1"
    if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.pinned" 2>/dev/null)" = "$pins" ]; then
        return 0
    fi
    echo "interop: creating $dir ($pins)"
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    # Wheels only, so nothing can need a compiler; the one exception is pyaes (a dependency of
    # every Pyrogram fork and Telethon), which PyPI ships as a pure-Python sdist only. CC=false
    # proves no C build sneaks in. --no-input: CI has no stdin.
    CC=false "$dir/bin/python" -m pip install --quiet --no-input --disable-pip-version-check \
        --only-binary=:all: --no-binary=pyaes $pins
    echo "$pins" > "$dir/.pinned"
}

# The package itself, non-editable, reinstalled every run (it changes with the tree; no network).
install_client() {
    local dir="$VENVS/$1"
    "$dir/bin/python" -m pip install --quiet --no-input --disable-pip-version-check --no-deps \
        --no-build-isolation --no-index --force-reinstall ./clients/python
}

start=$(date +%s)
mkdir -p "$VENVS"
pids=()
# Four at a time: pip is mostly waiting on the network here.
for key in "${ORDER[@]}"; do
    make_venv "$key" "${PINS[$key]}" &
    pids+=($!)
    if [ "${#pids[@]}" -ge 4 ]; then
        wait "${pids[0]}" || { echo "interop: venv setup failed"; exit 1; }
        pids=("${pids[@]:1}")
    fi
done
for p in "${pids[@]}"; do wait "$p" || { echo "interop: venv setup failed"; exit 1; }; done
for key in $CLIENT_LIBS; do
    install_client "$key" || { echo "interop: installing clients/python into $key failed"; exit 1; }
done
echo "interop: venvs ready in $(( $(date +%s) - start ))s"

[ "$setup_only" = 1 ] && exit 0

export INTEROP_VENVS="$(cd "$VENVS" && pwd)"
export INTEROP_RESULTS="$PWD/.build-interop/matrix.json"
rm -f "$INTEROP_RESULTS"
set +e
"$VENVS/runner/bin/python" -m pytest -q -p no:cacheprovider Tests/interop ${pytest_args[@]+"${pytest_args[@]}"}
pytest_rc=$?
set -e
report_args=()
[ "$update_baseline" = 1 ] && report_args+=(--update-baseline)
[ "${#pytest_args[@]}" -gt 0 ] && report_args+=(--partial)
set +e
"$VENVS/runner/bin/python" Tests/interop/matrix_report.py --results "$INTEROP_RESULTS" ${report_args[@]+"${report_args[@]}"}
report_rc=$?
set -e
echo "interop: total $(( $(date +%s) - start ))s (pytest exit $pytest_rc, baseline check exit $report_rc)"
[ "$pytest_rc" = 0 ] || exit "$pytest_rc"
exit "$report_rc"
