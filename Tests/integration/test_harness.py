# SPDX-License-Identifier: Apache-2.0
"""Self-tests of the harness, against Python stand-ins instead of the real binary.

They run even before `session-vault serve` exists, so a harness bug shows up
as a harness failure rather than as a mysterious server failure.
"""

from __future__ import annotations

import socket
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from conftest import (
    ConnectionClosed, RawConnection, ReadTimeout, Server, build_request, parse_responses,
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        if self.path.startswith("/len/"):
            body = b"x" * int(self.path[5:])
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n")
        elif self.path == "/toclose":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"until-close")
            self.close_connection = True
        else:
            self.send_error(404)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients in these tests hang up mid-request on purpose


@pytest.fixture(scope="module")
def standin() -> Iterator[int]:
    httpd = _QuietServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_network_guard_refuses_non_loopback() -> None:
    with socket.socket() as s:
        with pytest.raises(PermissionError):
            s.connect(("192.0.2.1", 80))  # TEST-NET-1, never routed
    with socket.socket() as s:
        with pytest.raises(PermissionError):
            s.connect_ex(("10.0.0.1", 80))


def test_network_guard_allows_loopback(standin: int) -> None:
    with socket.create_connection(("127.0.0.1", standin), timeout=5):
        pass


def test_build_request_adds_host_and_length() -> None:
    assert build_request("POST", "/p", body=b"abc") == (
        b"POST /p HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc")
    assert build_request("GET", "/", version="HTTP/1.0", host=None) == b"GET / HTTP/1.0\r\n\r\n"


def test_content_length_and_keep_alive(standin: int) -> None:
    with RawConnection(standin) as conn:
        for size in (0, 5, 70000):
            conn.send_request("GET", f"/len/{size}")
            response = conn.read_response()
            assert response.status == 200
            assert response.body == b"x" * size
            assert response.header("content-length") == str(size)


def test_chunked_response_is_decoded(standin: int) -> None:
    with RawConnection(standin) as conn:
        conn.send_request("GET", "/chunked")
        assert conn.read_response().body == b"abcde"


def test_pipelined_responses_in_order(standin: int) -> None:
    with RawConnection(standin) as conn:
        conn.send(build_request("GET", "/len/1") + build_request("GET", "/len/2")
                  + build_request("GET", "/toclose"))
        responses, state = conn.read_all_responses(timeout=5)
        assert [r.body for r in responses] == [b"x", b"xx", b"until-close"]
        assert state == "eof"


def test_read_to_close_and_eof_detection(standin: int) -> None:
    with RawConnection(standin) as conn:
        conn.send_request("GET", "/toclose")
        assert conn.read_response().body == b"until-close"
        with pytest.raises(ConnectionClosed) as closed:
            conn.read_response(timeout=2)
        assert not closed.value.reset


def test_read_timeout_when_server_is_silent(standin: int) -> None:
    with RawConnection(standin) as conn:
        conn.send(b"GET /len/1 HTTP/1.1\r\nHost: x\r\n")  # head never finished
        with pytest.raises(ReadTimeout):
            conn.read_response(timeout=0.3)
        state, data = conn.wait_closed(0.2)
        assert (state, data) == ("open", b"")


def test_reset_is_detected() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        with RawConnection(listener.getsockname()[1]) as conn:
            peer, _ = listener.accept()
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            peer.close()  # RST
            state, data = conn.wait_closed(5)
            assert (state, data) == ("reset", b"")
    finally:
        listener.close()


def test_parse_responses_splits_captured_bytes() -> None:
    data = (b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
    responses = parse_responses(data)
    assert [r.status for r in responses] == [100, 400]
    assert responses[1].body == b"{}"
    assert responses[1].connection_tokens() == {"close"}
    with pytest.raises(AssertionError):
        parse_responses(b"garbage")


FAKE_SERVER = textwrap.dedent('''\
    import os, signal, sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    listen = os.environ.get("SESSION_VAULT_LISTEN", "")
    if "--listen" in sys.argv:
        listen = sys.argv[sys.argv.index("--listen") + 1]
    host, port = listen.rsplit(":", 1)
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def log_message(self, *a): pass
        def do_GET(self):
            body = b"ok" if self.path == "/healthz" else b"nofile=" + os.popen("ulimit -n").read().strip().encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    httpd = ThreadingHTTPServer((host, int(port)), H)
    def term(*_):
        print("draining", flush=True)
        os._exit(0)
    signal.signal(signal.SIGTERM, term)
    print("listening on", listen, file=sys.stderr, flush=True)
    httpd.serve_forever()
''')


def _fake_binary(tmp_path: Path) -> Path:
    script = tmp_path / "fake-session-vault"
    script.write_text(f"#!{sys.executable}\n" + FAKE_SERVER)
    script.chmod(0o755)
    return script


@pytest.mark.parametrize("listen_via", ["arg", "env"])
def test_server_lifecycle_with_standin_binary(tmp_path: Path, listen_via: str) -> None:
    server = Server(tmp_path / "work", binary=_fake_binary(tmp_path), listen_via=listen_via).start()
    try:
        assert server.url == f"http://127.0.0.1:{server.port}"
        response = server.request("GET", "/healthz")
        assert (response.status, response.body) == (200, b"ok")
        server.assert_healthy()
        assert "listening on" in server.stderr()
    finally:
        assert server.stop(expect_exit=0) == 0
    assert "draining" in server.logs()
    assert not server.alive()


def test_server_ulimit_wrapper_keeps_pid(tmp_path: Path) -> None:
    server = Server(tmp_path / "work", binary=_fake_binary(tmp_path), nofile=64).start()
    try:
        assert server.request("GET", "/nofile").body == b"nofile=64"
    finally:
        server.stop(expect_exit=0)  # SIGTERM reached the server itself, not a shell


def test_server_start_failure_reports_logs(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\necho 'cannot start: bad config' >&2\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(AssertionError, match="bad config"):
        Server(tmp_path / "work", binary=broken, ready_timeout=5).start()
