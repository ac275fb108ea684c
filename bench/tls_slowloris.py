#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Issue 20: stalled TLS handshakes against the plain server's slowloris figure.

    python3 bench/tls_slowloris.py --bin PATH --certs DIR [--reps 5] [--stalls 500]

For each scenario and port kind, on a fresh server (memory storage, header and idle deadlines at
60 s so that no deadline frees a slot, the default per-address bound of 128):

  idle         nothing else connected
  500          STALLS connections from 8 loopback addresses (127.0.40-47.1), half silent, half
               with a partial first flight: on the TLS port a truncated ClientHello, on the plain
               port a request head without its final CRLF. Default cap (512): all are inside.
  500-cap64    the same with SESSION_VAULT_MAX_CONNECTIONS=64: 436 wait in the kernel backlog ahead
               of the fresh client, which gets in only as stalled connections are shed.

After the stalls (and 1 s, past the shedding grace) a fresh client from 127.0.0.2 connects, makes
its TLS handshake (TLS port) and sends `GET /healthz` with `Connection: close`: the figure is the
time from connect to the whole response head of its 200 (no answer within --cap: "> cap").
Repetitions alternate TLS and plain; medians per (scenario, port). Loopback only, bounded waits.
"""

from __future__ import annotations

import argparse
import base64
import os
import resource
import secrets
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

# The first bytes of a TLS 1.2 ClientHello record (as Tests/integration/test_tls.py): never completed.
TRUNCATED_CLIENT_HELLO = bytes.fromhex("1603010200010001fc0303") + b"\x00" * 20
PARTIAL_HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary: str, certs: str, tls: bool, cap: int | None):
        self.port = free_port()
        self.tls = tls
        self.dir = tempfile.mkdtemp(prefix="sv-tls-slowloris-")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_VAULT_")}
        env.update({
            "SESSION_VAULT_STORAGE": "memory",
            "SESSION_VAULT_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
            "SESSION_VAULT_ROOT_TOKEN": "svt_" + secrets.token_urlsafe(32),
            "SESSION_VAULT_HEADER_TIMEOUT_MS": "60000",
            "SESSION_VAULT_IDLE_TIMEOUT_MS": "60000",
            "HOME": self.dir,
        })
        if cap is not None:
            env["SESSION_VAULT_MAX_CONNECTIONS"] = str(cap)
        if tls:
            env["SESSION_VAULT_TLS_CERT_FILE"] = os.path.join(certs, "server.pem")
            env["SESSION_VAULT_TLS_KEY_FILE"] = os.path.join(certs, "server.key")
        self.context = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{self.port}"],
                                     cwd=self.dir, env=env, stdout=self.log, stderr=self.log)
        for _ in range(300):
            if self.fresh_ms(timeout=1.0) is not None:
                return
            time.sleep(0.05)
        raise RuntimeError("server did not start")

    def fresh_ms(self, source: str = "127.0.0.2", timeout: float = 10.0) -> float | None:
        """Connect from `source`, (handshake,) GET /healthz; ms to the 200's head, or None."""
        started = time.monotonic()
        s = raw = socket.socket()
        try:
            raw.bind((source, 0))
            raw.settimeout(timeout)
            # As curl, wrk and urllib3 do: otherwise the request, written right after the client's
            # Finished, waits for the server's delayed ACK (40 ms; no session ticket follows Finished).
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            raw.connect(("127.0.0.1", self.port))
            if self.tls:  # the SSL socket takes the descriptor over
                s = self.context.wrap_socket(raw, server_hostname="127.0.0.1")
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    return None
                data += chunk
            if not data.startswith(b"HTTP/1.1 200"):
                return None
        except (OSError, ssl.SSLError):
            return None
        finally:
            s.close()
            raw.close()
        return (time.monotonic() - started) * 1000

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def stall(port: int, count: int, tls: bool) -> list[socket.socket]:
    socks = []
    for index in range(count):
        s = socket.socket()
        try:
            s.bind((f"127.0.{40 + index % 8}.1", 0))
            s.settimeout(10)
            s.connect(("127.0.0.1", port))
            if index % 2:
                s.sendall(TRUNCATED_CLIENT_HELLO if tls else PARTIAL_HEAD)
        except OSError:
            s.close()
            continue
        socks.append(s)
    return socks


def measure(binary: str, certs: str, tls: bool, stalls: int, cap: int | None, limit: float) -> tuple[float | None, int]:
    srv = Server(binary, certs, tls, cap)
    socks: list[socket.socket] = []
    try:
        if stalls:
            socks = stall(srv.port, stalls, tls)
            time.sleep(1.0)
        return srv.fresh_ms(timeout=limit), len(socks)
    finally:
        for s in socks:
            s.close()
        srv.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True)
    parser.add_argument("--certs", required=True, help="folder with ca.pem, server.pem, server.key")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--stalls", type=int, default=500)
    parser.add_argument("--cap", type=float, default=60.0, help="seconds a fresh client waits at most")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 16384), hard))
    scenarios = [("idle", 0, None), (str(args.stalls), args.stalls, None), (f"{args.stalls}-cap64", args.stalls, 64)]
    for name, stalls, cap in scenarios:
        figures: dict[str, list[float | None]] = {"tls": [], "plain": []}
        for _ in range(args.reps):
            for kind in ("tls", "plain"):
                ms, held = measure(args.bin, args.certs, kind == "tls", stalls, cap, args.cap)
                figures[kind].append(ms)
                shown = f"{ms:.1f} ms" if ms is not None else f"> {args.cap:.0f} s"
                print(f"run scenario={name} port={kind} held={held} fresh={shown}", flush=True)
        for kind in ("tls", "plain"):
            values = figures[kind]
            answered = [v for v in values if v is not None]
            median = f"{statistics.median(answered):.1f}" if len(answered) == len(values) else "-"
            runs = " ".join(f"{v:.1f}" if v is not None else "none" for v in values)
            print(f"scenario={name} port={kind} median_ms={median} runs_ms={runs}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
