#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Issue 14 items 3 and 4: connection slots and request bodies, measured on a binary.

    python3 bench/issue14_hardening.py --bin PATH [--cap 60] [scenario ...]

Scenarios (default: all), each on a fresh server with memory storage and default limits:

  silent3000      3,000 silent connections from 127.0.0.1; time of a fresh client's GET /healthz
                  from 127.0.0.2 (connect to response)
  keepalive3000   3,000 keep-alive connections from 50 addresses (127.0.10-59.1), each with one
                  GET /healthz sent; then the fresh client
  issue520        520 keep-alive connections from 127.0.0.1, each sending GET /healthz every 20 s
                  (the issue's case); the fresh client after the first round
  trickle3000     3,000 connections from 127.0.0.1 trickling a header byte a second; the fresh client
  trickle3000x50  the same from 50 addresses (60 each): mid-request connections are never shed, so
                  only the header deadline (10 s) frees slots
  unauth256       256 parallel 16 MiB uploads with no token (4 addresses); the server's VmHWM
  auth64          64 parallel 16 MiB authenticated uploads (root token, junk .session bytes);
                  VmHWM and the statuses

A fresh client not answered within --cap seconds is reported as "> cap". Loopback only; every
loop is bounded. Needs RLIMIT_NOFILE of about 4,000 (raised to the hard limit here).
"""

from __future__ import annotations

import argparse
import base64
import collections
import os
import resource
import secrets
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time

MIB = 1 << 20
TOKEN = "svt_" + secrets.token_urlsafe(32)


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 16384), hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


class Server:
    def __init__(self, binary: str, env: dict[str, str] | None = None):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="sv-h14-")
        full = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_VAULT_")}
        full.update({
            "SESSION_VAULT_STORAGE": "memory",
            "SESSION_VAULT_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
            "SESSION_VAULT_ROOT_TOKEN": TOKEN,
            "HOME": self.dir,
        })
        full.update(env or {})
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{self.port}"],
                                     cwd=self.dir, env=full, stdout=self.log, stderr=self.log)
        for _ in range(300):
            if self.request_ms(timeout=1.0) is not None:
                return
            time.sleep(0.05)
        raise RuntimeError("server did not start")

    def request_ms(self, source: str = "127.0.0.2", timeout: float = 10.0) -> float | None:
        """Connect from `source`, GET /healthz; milliseconds to the whole response, or None."""
        started = time.monotonic()
        try:
            with socket.socket() as s:
                s.bind((source, 0))
                s.settimeout(timeout)
                s.connect(("127.0.0.1", self.port))
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        return None
                    data += chunk
                if not data.startswith(b"HTTP/1.1 200"):
                    return None
        except OSError:
            return None
        return (time.monotonic() - started) * 1000

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def connect(port: int, source: str) -> socket.socket | None:
    s = socket.socket()
    try:
        s.bind((source, 0))
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        return s
    except OSError:
        s.close()
        return None


def fresh(srv: Server, cap: float) -> str:
    ms = srv.request_ms(timeout=cap)
    return f"{ms:.1f} ms" if ms is not None else f"> {cap:.0f} s (no answer)"


def scenario_silent3000(binary: str, cap: float) -> str:
    srv = Server(binary)
    socks = [s for s in (connect(srv.port, "127.0.0.1") for _ in range(3000)) if s]
    try:
        return f"{len(socks)} silent held; fresh client {fresh(srv, cap)}"
    finally:
        for s in socks:
            s.close()
        srv.stop()


def scenario_keepalive3000(binary: str, cap: float) -> str:
    srv = Server(binary)
    socks = []
    for i in range(3000):
        s = connect(srv.port, f"127.0.{10 + i % 50}.1")
        if s:
            try:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            except OSError:
                pass
            socks.append(s)
    try:
        time.sleep(1.0)
        return f"{len(socks)} keep-alive held; fresh client {fresh(srv, cap)}"
    finally:
        for s in socks:
            s.close()
        srv.stop()


def scenario_issue520(binary: str, cap: float) -> str:
    srv = Server(binary)
    socks = [s for s in (connect(srv.port, "127.0.0.1") for _ in range(520)) if s]
    stop = threading.Event()

    def every_20s() -> None:
        while not stop.is_set():
            for s in socks:
                try:
                    s.setblocking(False)
                    s.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    try:
                        while s.recv(65536):
                            pass
                    except OSError:
                        pass
                except OSError:
                    pass
            stop.wait(20)

    thread = threading.Thread(target=every_20s, daemon=True)
    thread.start()
    try:
        time.sleep(1.0)
        return f"520 keep-alive from one address, a request each every 20 s; fresh client {fresh(srv, cap)}"
    finally:
        stop.set()
        thread.join(30)
        for s in socks:
            s.close()
        srv.stop()


def scenario_trickle3000(binary: str, cap: float, addresses: int = 1) -> str:
    srv = Server(binary)
    socks = [s for s in (connect(srv.port, f"127.0.{10 + i % addresses}.1" if addresses > 1 else "127.0.0.1")
                         for i in range(3000)) if s]
    stop = threading.Event()
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"

    def trickle() -> None:
        for index in range(len(head)):
            if stop.is_set():
                return
            for s in socks:
                try:
                    s.setblocking(False)
                    s.send(head[index:index + 1])
                except OSError:
                    pass
            stop.wait(1.0)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        time.sleep(2.0)
        return f"3000 trickling from {addresses} address(es); fresh client {fresh(srv, cap)}"
    finally:
        stop.set()
        thread.join(30)
        for s in socks:
            s.close()
        srv.stop()


def upload_head(token: str | None, name: str) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"POST /v1/sessions?name={name} HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.sqlite3\r\n"
            f"{auth}Content-Length: {16 * MIB}\r\n\r\n").encode()


def parallel_uploads(binary: str, count: int, token: str | None, addresses: int) -> str:
    srv = Server(binary)
    baseline = status_kib(srv.proc.pid, "VmRSS")
    socks = []
    for i in range(count):
        s = connect(srv.port, f"127.0.{20 + i % addresses}.1")
        if s is None:
            continue
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        s.sendall(upload_head(token, f"bench-{i}"))
        s.setblocking(False)
        socks.append(s)
    remaining = {s.fileno(): [s, 16 * MIB] for s in socks}
    chunk = b"\0" * (64 * 1024)
    sent = 0
    answers: dict[int, bytes] = {}
    started = time.monotonic()
    while remaining and time.monotonic() - started < 300:
        live = [e[0] for e in remaining.values()]
        readable, writable, _ = select.select(live, live, [], 1.0)
        for s in readable:
            try:
                answers[s.fileno()] = s.recv(4096)
            except OSError:
                answers[s.fileno()] = b""
            remaining.pop(s.fileno(), None)
        for s in writable:
            entry = remaining.get(s.fileno())
            if entry is None:
                continue
            try:
                n = s.send(chunk[:min(len(chunk), entry[1])])
            except BlockingIOError:
                continue
            except OSError:
                remaining.pop(s.fileno(), None)
                continue
            entry[1] -= n
            sent += n
            if entry[1] == 0:
                remaining.pop(s.fileno(), None)
    # Uploads sent whole: wait for their answers (bounded).
    for s in socks:
        if s.fileno() in answers:
            continue
        s.setblocking(True)
        s.settimeout(60)
        try:
            answers[s.fileno()] = s.recv(4096)
        except OSError:
            answers[s.fileno()] = b""
    elapsed = time.monotonic() - started
    statuses = collections.Counter(a[9:12].decode() if a.startswith(b"HTTP/1.1 ") else "closed" for a in answers.values())
    peak = status_kib(srv.proc.pid, "VmHWM")
    for s in socks:
        s.close()
    srv.stop()
    return (f"{count} uploads of 16 MiB ({'root token' if token else 'no token'}): peak RSS (VmHWM) "
            f"{peak / 1024:.1f} MiB (idle {baseline / 1024:.1f} MiB); client sent {sent / MIB:.0f} MiB in "
            f"{elapsed:.1f} s; answers {dict(sorted(statuses.items()))}")


SCENARIOS = {
    "silent3000": scenario_silent3000,
    "keepalive3000": scenario_keepalive3000,
    "issue520": scenario_issue520,
    "trickle3000": scenario_trickle3000,
    "trickle3000x50": lambda b, cap: scenario_trickle3000(b, cap, addresses=50),
    "unauth256": lambda b, cap: parallel_uploads(b, 256, None, 4),
    "auth64": lambda b, cap: parallel_uploads(b, 64, TOKEN, 1),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True)
    parser.add_argument("--cap", type=float, default=60.0, help="seconds a fresh client waits at most")
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    args = parser.parse_args()
    raise_nofile()
    for name in args.scenarios:
        print(f"{name}: {SCENARIOS[name](args.bin, args.cap)}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
