#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Time imports of one `.session` file: POST /v1/sessions?name=N (application/vnd.sqlite3).

Usage: import.py URL FILE.session EXPECTED_STRING [--runs 10] [--prefix imp]

Each run uploads the file under a new name over a fresh connection and measures from the first
byte sent to the full response (201 required). After the runs, the last import is exported and
compared with EXPECTED_STRING (gen_session_file.py prints it). Prints one line per run and a
summary with the median. Token: SV_BENCH_TOKEN. Loopback only; --runs is capped at 100.
"""
import argparse
import http.client
import os
import statistics
import sys
import time
import urllib.parse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("file")
    ap.add_argument("expected")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--prefix", default="imp")
    a = ap.parse_args()
    u = urllib.parse.urlsplit(a.url)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("import: loopback targets only")
    auth = "Bearer " + (os.environ.get("SV_BENCH_TOKEN") or sys.exit("import: SV_BENCH_TOKEN unset"))
    body = open(a.file, "rb").read()
    runs = min(a.runs, 100)
    stamp = time.strftime("%H%M%S")
    times, name = [], None
    for i in range(1, runs + 1):
        name = f"{a.prefix}{stamp}-{i}"
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        conn.connect()
        t0 = time.perf_counter()
        conn.request("POST", f"/v1/sessions?name={name}", body,
                     {"Authorization": auth, "Content-Type": "application/vnd.sqlite3"})
        resp = conn.getresponse()
        text = resp.read()
        ms = (time.perf_counter() - t0) * 1000
        conn.close()
        if resp.status != 201:
            sys.exit(f"import run {i}: status {resp.status} {text[:300]!r}")
        times.append(ms)
        print(f"import run={i} ms={ms:.1f}")
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request("GET", f"/v1/sessions/{name}/export", headers={"Authorization": auth})
    resp = conn.getresponse()
    got = resp.read().decode(errors="replace").strip()
    verified = resp.status == 200 and got == a.expected
    print(f"import runs={runs} bytes={len(body)} ms_median={statistics.median(times):.1f} "
          f"ms_min={min(times):.1f} ms_max={max(times):.1f} export_matches={'yes' if verified else 'NO'}")
    if not verified:
        sys.exit(f"import: export of {name} gave status {resp.status} and a different string")


if __name__ == "__main__":
    main()
