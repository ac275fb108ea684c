#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Time paging through every session: GET /v1/sessions?limit=L, then &after=<next_after> until done.

Usage: listall.py URL [--limit 1000] [--runs 5] [--expect N]

One keep-alive connection; each run follows `next_after` until it is null/absent or a page is
empty, and is bounded to 10,000 pages. Counts items (and checks there are no duplicates, and that
the count is at least --expect). Prints one line per run and a summary (median ms, pages, items).
Token: SV_BENCH_TOKEN. Loopback only.
"""
import argparse
import http.client
import json
import os
import statistics
import sys
import time
import urllib.parse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--expect", type=int, default=0)
    a = ap.parse_args()
    u = urllib.parse.urlsplit(a.url)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("listall: loopback targets only")
    auth = {"Authorization": "Bearer " + (os.environ.get("SV_BENCH_TOKEN") or sys.exit("listall: SV_BENCH_TOKEN unset"))}
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    times = []
    for run in range(1, min(a.runs, 50) + 1):
        after, pages, names, nbytes = None, 0, set(), 0
        t0 = time.perf_counter()
        while pages < 10_000:
            q = {"limit": a.limit}
            if after is not None:
                q["after"] = after
            conn.request("GET", "/v1/sessions?" + urllib.parse.urlencode(q), headers=auth)
            resp = conn.getresponse()
            raw = resp.read()
            if resp.status != 200:
                sys.exit(f"listall: page {pages + 1}: status {resp.status} {raw[:200]!r}")
            nbytes += len(raw)
            page = json.loads(raw)
            pages += 1
            items = page.get("items", [])
            for it in items:
                if it["name"] in names:
                    sys.exit(f"listall: {it['name']} listed twice")
                names.add(it["name"])
            after = page.get("next_after")
            if not after or not items:
                break
        ms = (time.perf_counter() - t0) * 1000
        times.append(ms)
        print(f"listall run={run} ms={ms:.1f} pages={pages} items={len(names)} bytes={nbytes}")
        if len(names) < a.expect:
            sys.exit(f"listall: saw {len(names)} items, expected at least {a.expect}")
    print(f"listall runs={len(times)} limit={a.limit} ms_median={statistics.median(times):.1f} "
          f"ms_min={min(times):.1f} ms_max={max(times):.1f} items={len(names)} pages={pages}")


if __name__ == "__main__":
    main()
