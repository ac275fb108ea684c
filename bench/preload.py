#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Preload N sessions into a running server through its API, then spot-check exports.

Usage: preload.py URL OUT_DIR [-n 10000] [--conns 4] [--seed 7] [--verify 20] [--deadline 600]

Sessions are generated from --seed (same seed, same rows) and sent as
POST /v1/sessions {"name","dc_id","api_id","test_mode","user_id","is_bot","auth_key"} over --conns
keep-alive connections in parallel. Writes OUT_DIR/names.txt (one name per line, the wrk scripts
read it) and OUT_DIR/expected.tsv (name, expected Pyrogram string). Any answer other than 201 stops
the run with exit status 1; so does passing --deadline seconds. Then --verify random names are
exported and compared byte for byte with the expected string (docs/formats.md: Pyrogram current layout
">BI?256sQ?", urlsafe base64 without padding, 362 characters).
Token: SV_BENCH_TOKEN from the environment. Loopback URLs only.
"""
import argparse
import base64
import http.client
import json
import os
import random
import struct
import sys
import threading
import time
import urllib.parse


def pyrogram_string(dc_id, api_id, test_mode, auth_key, user_id, is_bot):
    raw = struct.pack(">BI?256sQ?", dc_id, api_id, test_mode, auth_key, user_id, is_bot)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def rows(n, seed):
    rng = random.Random(seed)
    for i in range(n):
        name, dc_id, api_id = "s%05d_%08x" % (i, rng.getrandbits(32)), rng.randint(1, 5), rng.randint(1, 2**31 - 1)
        test_mode = rng.random() < 0.05
        if test_mode:  # the test network has DCs 1-3 only (docs/formats.md, "Data centers"); file exports refuse others
            dc_id = 1 + (dc_id - 1) % 3
        yield {
            "name": name,
            "dc_id": dc_id,
            "api_id": api_id,
            "test_mode": test_mode,
            "user_id": rng.randint(1, 2**63 - 1),  # full 64-bit range: exactness matters
            "is_bot": rng.random() < 0.3,
            "auth_key": rng.randbytes(256),
        }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("out_dir")
    ap.add_argument("-n", type=int, default=10_000)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--verify", type=int, default=20)
    ap.add_argument("--deadline", type=float, default=600)
    a = ap.parse_args()
    u = urllib.parse.urlsplit(a.url)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("preload: loopback targets only")
    token = os.environ.get("SV_BENCH_TOKEN") or sys.exit("preload: SV_BENCH_TOKEN unset")
    headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}

    data = list(rows(a.n, a.seed))
    os.makedirs(a.out_dir, exist_ok=True)
    with open(os.path.join(a.out_dir, "names.txt"), "w") as f:
        f.writelines(r["name"] + "\n" for r in data)
    expected = {}
    with open(os.path.join(a.out_dir, "expected.tsv"), "w") as f:
        for r in data:
            s = pyrogram_string(r["dc_id"], r["api_id"], r["test_mode"], r["auth_key"], r["user_id"], r["is_bot"])
            expected[r["name"]] = s
            f.write(f"{r['name']}\t{s}\n")

    deadline = time.monotonic() + a.deadline
    failures = []

    def worker(part):
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        for r in part:
            if failures or time.monotonic() > deadline:
                failures.append("deadline") if not failures else None
                return
            body = dict(r, auth_key=base64.b64encode(r["auth_key"]).decode())
            conn.request("POST", "/v1/sessions", json.dumps(body), headers)
            resp = conn.getresponse()
            text = resp.read()
            if resp.status != 201:
                failures.append(f"{r['name']}: {resp.status} {text[:200]!r}")
                return
        conn.close()

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, args=(data[i::a.conns],)) for i in range(a.conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    secs = time.monotonic() - t0
    if failures:
        sys.exit(f"preload failed: {failures[0]}")

    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    for name in random.Random(a.seed + 1).sample(sorted(expected), min(a.verify, len(expected))):
        conn.request("GET", f"/v1/sessions/{name}/export", headers={"Authorization": headers["Authorization"]})
        resp = conn.getresponse()
        got = resp.read().decode(errors="replace").strip()
        if resp.status != 200 or got != expected[name]:
            sys.exit(f"verify {name}: status {resp.status}, string {'differs' if resp.status == 200 else got[:200]}")
    print(f"preload n={a.n} conns={a.conns} secs={secs:.2f} rate={a.n / secs:.0f}/s verified={min(a.verify, a.n)}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
