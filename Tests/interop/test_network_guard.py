# SPDX-License-Identifier: Apache-2.0
"""The suite is offline by construction: prove the guards refuse a real Telegram DC address
(149.154.167.51:443, DC 2) before any system call, in the runner and in every worker, while
loopback keeps working."""

import socket

import pytest

import expectations as ex
import harness

DC2 = ("149.154.167.51", 443)


def test_runner_refuses_non_loopback():
    with socket.socket() as s:
        with pytest.raises(ConnectionRefusedError, match="interop network guard"):
            s.connect(DC2)
        with pytest.raises(ConnectionRefusedError, match="interop network guard"):
            s.connect_ex(DC2)


def test_runner_allows_loopback():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        socket.create_connection(server.getsockname(), timeout=5).close()


@pytest.fixture(scope="module")
def netchecks():
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=harness.JOBS) as pool:
        futures = {lib: pool.submit(harness.call_worker, lib, {"op": "netcheck"}, 120) for lib in ex.READERS}
        return {lib: f.result() for lib, f in futures.items()}


@pytest.mark.parametrize("lib", ex.READERS)
def test_worker_refuses_real_dc(netchecks, lib):
    """Every way out (socket, asyncio, DNS, UDP and the library's own connect) hits the guard."""
    result = netchecks[lib]
    attempts = result["attempts"]
    for name in ("socket.create_connection", "socket.connect_ex", "asyncio.open_connection",
                 "getaddrinfo(venus.web.telegram.org)", "udp sendto"):
        assert attempts[name]["refused"], (name, attempts[name])
        assert attempts[name]["error"]["type"] == "_common.NetworkGuardError", attempts[name]
    # The library's own connection code was stopped by the guard (it may wrap the error).
    library_attempt = [a for n, a in attempts.items() if n.endswith("connect()")]
    assert library_attempt and library_attempt[0]["refused"], attempts
    assert all("149.154" in h["target"] or "telegram" in h["target"] for h in result["guard_hits"])
    assert result["loopback_ok"]
