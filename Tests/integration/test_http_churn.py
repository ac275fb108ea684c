# SPDX-License-Identifier: Apache-2.0
"""Connection churn on the error paths: the server must survive it (docs/http.md §13, §17, §18).

The one crash seen in CI (libdispatch "Source finalized twice", SIGILL) happened on these paths:
rejected requests, lingering close, clients that reset or half-close at arbitrary moments.
This module hammers exactly that mix from several threads with a fixed seed and a bounded
number of connections, then checks that the process is alive, still answers, and (through the
module fixture) exits 0 on SIGTERM. It cannot prove a race absent; it makes a regression likely
to show up in every CI run instead of one in ten.
"""

from __future__ import annotations

import random
import socket
import struct
import threading

from conftest import LOOPBACK, Server, expect_ok

H = b"Host: 127.0.0.1\r\n"
CLOSE = b"Connection: close\r\n"  # every exchange ends in a close, so no client waits on idle timeouts

REQUESTS = [
    b"GET /" + b"a" * 9 * 1024 + b" HTTP/1.1\r\n" + H + b"\r\n",          # 414
    b"GET / HTTP/2.0\r\n" + H + b"\r\n",                                    # 505
    b"GET  / HTTP/1.1\r\n" + H + b"\r\n",                                   # 400
    b"BREW / HTTP/1.1\r\n" + H + b"\r\n",                                   # 501
    b"GET / HTTP/1.1\r\nX-A: " + b"b" * 9000 + b"\r\n\r\n",                 # 431
    b"POST /_test/echo-length HTTP/1.1\r\n" + H
    + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello",     # smuggling: 400
    b"POST /_test/echo-length HTTP/1.1\r\n" + H
    + b"Content-Length: 300000\r\n\r\n" + b"z" * 2000,                       # 413 while the body flows
    b"GET /healthz HTTP/1.1\r\n" + H + CLOSE + b"\r\n",                     # 200, then close
    b"GET /healthz HTTP/1.1\r\n" + H + b"\r\nGET /healthz HTTP/1.1\r\n" + H + CLOSE + b"\r\n",  # pipelined
    b"GET /_test/big?bytes=300000 HTTP/1.1\r\n" + H + CLOSE + b"\r\n",      # a write that may stall
]
CONNECTIONS_PER_THREAD = 600
THREADS = 8


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _client(port: int, seed: int, failures: list[str]) -> None:
    rnd = random.Random(seed)
    for _ in range(CONNECTIONS_PER_THREAD):
        data = rnd.choice(REQUESTS)
        mode = rnd.randrange(5)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(3)
        try:
            sock.connect((LOOPBACK, port))
            if mode == 0:                      # send everything, reset at once
                sock.sendall(data)
                _reset(sock)
                continue
            if mode == 1:                      # a prefix, then half-close
                sock.sendall(data[: rnd.randrange(1, len(data) + 1)])
                sock.shutdown(socket.SHUT_WR)
            else:
                sock.sendall(data)
            if mode == 2:                      # reset while the response is being written
                _reset(sock)
                continue
            while True:                        # read to EOF (or stop early in mode 3)
                chunk = sock.recv(65536)
                if not chunk or (mode == 3 and rnd.random() < 0.5):
                    break
            sock.close()
        except ConnectionRefusedError as exc:
            failures.append(f"refused: {exc}")
            return
        except OSError:
            sock.close()                       # resets and timeouts on our side are expected


def test_error_path_churn_leaves_the_server_alive(server: Server) -> None:
    failures: list[str] = []
    threads = [threading.Thread(target=_client, args=(server.port, 1000 + i, failures))
               for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "churn clients did not finish"
    assert not failures, failures[:3]
    assert server.alive(), f"server died under churn\n{server.logs()[-3000:]}"
    response = expect_ok(server, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert response.body.strip() == b"ok"
