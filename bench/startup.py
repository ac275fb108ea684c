#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Time from process start to the first 200 on GET /healthz, over several starts.

Usage: startup.py --port P [--runs 5] [--template DB --db DB] [--deadline 60] -- CMD [ARGS...]

For each run: copy the template DB files (DB, DB-wal, DB-shm) to --db (only delete --db's files
when no --template is given: a first boot), note the clock,
spawn CMD (environment inherited), then probe 127.0.0.1:P in a tight loop with a raw socket:
connect (refused -> retry after 0.2 ms), send "GET /healthz", read the status line; the first
"200" stops the clock. Also reports when the port first accepted. Then SIGTERM (SIGKILL after
10 s) and wait. Every loop is bounded by --deadline seconds per run.
Prints one line per run and a summary line with medians (ms).
"""
import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

REQ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def probe(port):
    """Returns (accepted, status_ok)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        s.close()
        return False, False
    try:
        s.sendall(REQ)
        data = b""
        while b"\r\n" not in data and len(data) < 64:
            chunk = s.recv(64)
            if not chunk:
                break
            data += chunk
        return True, data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.0 200")
    except OSError:
        return True, False
    finally:
        s.close()


def vm_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--template")
    ap.add_argument("--db")
    ap.add_argument("--deadline", type=float, default=60)
    ap.add_argument("--log", default=os.devnull)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        sys.exit("startup: no command")
    if probe(a.port)[0]:
        sys.exit(f"startup: port {a.port} already in use")

    ready, accepted, rss = [], [], []
    for run in range(1, a.runs + 1):
        if a.db:  # without --template: a brand-new database every run (first boot)
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(a.db + suffix):
                    os.remove(a.db + suffix)
                if a.template and os.path.exists(a.template + suffix):
                    shutil.copyfile(a.template + suffix, a.db + suffix)
        with open(a.log, "ab") as log:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        t_acc = t_ok = None
        tries = 0
        try:
            while time.perf_counter() - t0 < a.deadline:
                tries += 1
                acc, ok = probe(a.port)
                now = time.perf_counter()
                if acc and t_acc is None:
                    t_acc = now
                if ok:
                    t_ok = now
                    break
                if proc.poll() is not None:
                    break
                time.sleep(0.0002)
            r = vm_kb(proc.pid, "VmRSS")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if t_ok is None:
            sys.exit(f"startup: run {run}: no 200 on /healthz (exit code {proc.returncode}, {tries} probes)")
        ready.append((t_ok - t0) * 1000)
        accepted.append((t_acc - t0) * 1000)
        rss.append(r)
        print(f"startup run={run} ready_ms={ready[-1]:.1f} first_accept_ms={accepted[-1]:.1f} probes={tries} rss_kb={r}")
        time.sleep(0.2)  # let the port and files settle
    print(f"startup runs={a.runs} ready_ms_median={statistics.median(ready):.1f} ready_ms_min={min(ready):.1f} "
          f"ready_ms_max={max(ready):.1f} first_accept_ms_median={statistics.median(accepted):.1f} "
          f"rss_kb_median={int(statistics.median(rss))}")


if __name__ == "__main__":
    main()
