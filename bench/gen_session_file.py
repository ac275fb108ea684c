#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Write a Pyrogram schema-v3 `.session` file with many peers (for the import benchmark).

Usage: gen_session_file.py OUT.session [--peers 10000] [--seed 11]
       [--vector Tests/VaultCoreTests/Vectors/sessions/pyrogram_user.json]

The schema is not retyped here: the CREATE statements (tables, indexes, trigger) are taken
verbatim from the vector's `sqlite.sqlite_master` (docs/formats.md, "Schema v2 and v3 (pyrogram,
hydrogram)", written by pyrogram 2.0.106), in the vector's order. Content follows docs/formats.md,
"Pyrogram-family .session files": one `sessions` row, `version.number = 3`, rollback journal
(no WAL), peers with marked ids (users positive, basic groups -chat_id, channels/supergroups
-1000000000000 - channel_id), `type` stored as TEXT, lower-case usernames, phone digits without
'+', basic groups with access_hash 0. Prints the expected Pyrogram string of
the session (what export must return after the import) as `expected=<string>` on stdout.
"""
import argparse
import base64
import json
import os
import random
import sqlite3
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_VECTOR = os.path.join(HERE, "..", "Tests", "VaultCoreTests", "Vectors", "sessions", "pyrogram_user.json")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--peers", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--vector", default=DEFAULT_VECTOR)
    a = ap.parse_args()
    master = json.load(open(a.vector))["sqlite"]["sqlite_master"]
    rng = random.Random(a.seed)

    for suffix in ("", "-journal", "-wal", "-shm"):
        if os.path.exists(a.out + suffix):
            os.remove(a.out + suffix)
    db = sqlite3.connect(a.out, isolation_level=None)
    db.execute("BEGIN")
    for obj in master:  # tables first in the vector's order, then indexes and the trigger
        if obj["type"] == "table":
            db.execute(obj["sql"])
    for obj in master:
        if obj["type"] != "table":
            db.execute(obj["sql"])

    dc_id, api_id, user_id, is_bot = 2, 2040, 5_000_000_000 + rng.randrange(10**6), False
    auth_key = rng.randbytes(256)
    db.execute("INSERT INTO sessions(dc_id, api_id, test_mode, auth_key, date, user_id, is_bot) "
               "VALUES (?, ?, 0, ?, ?, ?, ?)", (dc_id, api_id, auth_key, 1_700_000_000, user_id, int(is_bot)))
    db.execute("INSERT INTO version(number) VALUES (3)")

    now = 1_790_000_000
    used = set()
    kinds = ["user"] * 6 + ["bot", "group", "channel", "supergroup"]
    for i in range(a.peers):
        kind = rng.choice(kinds)
        while True:
            raw = rng.randrange(1, 2**40) if kind in ("user", "bot") else rng.randrange(1, 2**31)
            pid = raw if kind in ("user", "bot") else (-raw if kind == "group" else -1_000_000_000_000 - raw)
            if pid not in used:
                used.add(pid)
                break
        access_hash = 0 if kind == "group" else rng.randrange(-2**63, 2**63)
        username = f"peer{i}_{rng.randrange(16**6):06x}" if rng.random() < 0.6 and kind != "group" else None
        phone = str(rng.randrange(10**10, 10**12)) if kind == "user" and rng.random() < 0.3 else None
        db.execute("INSERT INTO peers(id, access_hash, type, username, phone_number, last_update_on) "
                   "VALUES (?, ?, ?, ?, ?, ?)", (pid, access_hash, kind, username, phone, now - rng.randrange(10**6)))
    db.execute("COMMIT")
    db.close()

    packed = struct.pack(">BI?256sQ?", dc_id, api_id, False, auth_key, user_id, is_bot)
    print("expected=" + base64.urlsafe_b64encode(packed).decode().rstrip("="))
    print(f"file={a.out} bytes={os.path.getsize(a.out)} peers={a.peers}")


if __name__ == "__main__":
    main()
