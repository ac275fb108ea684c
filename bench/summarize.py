#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Medians of bench/run.sh rows as a markdown table.

Usage: summarize.py RESULTS.tsv [--all]
Server CPU µs/request = server CPU (% of a core) / req/s: the cost of one request, which the
machine's other load disturbs much less than req/s. Groups rows by (target, sync, storage, workload, threads, conns). Rows flagged noisy (other
processes took more than OTHER_MAX % of a core) are left out unless --all, or unless a group has
nothing else (then it is marked with "!").
"""
import csv
import statistics
import sys
from collections import defaultdict


def med(rows, key, fmt="{:.0f}"):
    vals = [float(r[key]) for r in rows if r[key] not in ("", "-")]
    return fmt.format(statistics.median(vals)) if vals else "-"


def cpu_us(rows):
    """Server CPU time per request (µs): less sensitive to other load than req/s on a shared machine."""
    vals = [float(r["srv_cpu"]) * 1e4 / float(r["rps"]) for r in rows if float(r["rps"] or 0) > 0]
    return "{:.0f}".format(statistics.median(vals)) if vals else "-"


def main():
    path = sys.argv[1]
    keep_all = "--all" in sys.argv
    groups = defaultdict(list)
    order = []
    with open(path) as f:
        for r in csv.DictReader(f, delimiter="\t"):
            k = (r["target"], r["sync"], r["storage"], r["workload"], r["threads"], r["conns"])
            if k not in groups:
                order.append(k)
            groups[k].append(r)
    print("| target | sync | workload | conns | n | req/s median | req/s min–max | p50 ms | p99 ms | "
          "srv CPU % | srv CPU µs/req | wrk CPU % | other CPU % | idle RSS MiB | peak RSS MiB | non-2xx + sock err |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for k in sorted(order, key=lambda k: (k[3], k[5], k[0], k[1])):
        rows = groups[k]
        clean = rows if keep_all else [r for r in rows if r["noisy"] == "no"]
        mark = ""
        if not clean:
            clean, mark = rows, "!"
        rps = [float(r["rps"]) for r in clean]
        mib = lambda key: "{:.0f}".format(statistics.median(float(r[key]) for r in clean) / 1024)
        print(f"| {k[0]}{' (' + k[2] + ')' if k[2] != 'file' else ''} | {k[1]} | {k[3]} | {k[5]} | {len(clean)}{mark} | "
              f"{statistics.median(rps):,.0f} | {min(rps):,.0f}–{max(rps):,.0f} | {med(clean, 'p50_ms', '{:.2f}')} | "
              f"{med(clean, 'p99_ms', '{:.2f}')} | {med(clean, 'srv_cpu')} | {cpu_us(clean)} | {med(clean, 'wrk_cpu')} | "
              f"{med(clean, 'other_cpu')} | {mib('rss_idle_kb')} | {mib('rss_hwm_kb')} | "
              f"{sum(int(r['non2xx']) + int(r['sock_errors']) for r in clean)} |")
    noisy = sum(1 for rows in groups.values() for r in rows if r["noisy"] != "no")
    print(f"\n{noisy} noisy row(s) {'kept' if keep_all else 'left out'}; file {path}")


if __name__ == "__main__":
    main()
