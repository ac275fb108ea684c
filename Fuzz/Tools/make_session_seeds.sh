#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Re-packs the vector .session files with 512-byte pages (VACUUM) so the FuzzSessionFile seeds
# stay small (a few KiB instead of 28-40 KiB) while keeping every schema and row.
# Usage: Fuzz/Tools/make_session_seeds.sh   (needs the sqlite3 CLI)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/Fuzz/Corpus/FuzzSessionFile"
mkdir -p "$out"
for src in "$root"/Tests/VaultCoreTests/Vectors/sessions/*.session; do
    dst="$out/$(basename "$src" .session)"
    cp "$src" "$dst"
    sqlite3 "$dst" "PRAGMA journal_mode=DELETE; PRAGMA page_size=512; VACUUM;" >/dev/null
    rm -f "$dst-journal" "$dst-wal" "$dst-shm"
done
# One WAL-mode file as well (hydrogram writes them; the reader patches the header; docs/formats.md,
# "Hydrogram and WAL").
cp "$out/hydrogram_user" "$out/hydrogram_user_wal"
sqlite3 "$out/hydrogram_user_wal" "PRAGMA journal_mode=WAL;" >/dev/null
rm -f "$out/hydrogram_user_wal-wal" "$out/hydrogram_user_wal-shm"
ls -l "$out"
