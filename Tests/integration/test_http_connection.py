# SPDX-License-Identifier: Apache-2.0
"""docs/http.md §9, §10 and §17 against the live binary: connection reuse, pipelining, closing."""

from __future__ import annotations

import threading

import pytest

from conftest import (
    BODY_LIMIT, RawConnection, Server, build_request, check_error_hygiene,
)


def get(target: str, version: str = "HTTP/1.1", **kwargs: object) -> bytes:
    return build_request("GET", target, version=version, **kwargs)  # type: ignore[arg-type]


def echo(body: bytes, **kwargs: object) -> bytes:
    return build_request("POST", "/_test/echo-length", body=body, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Item 9: keep-alive and the Connection header
# --------------------------------------------------------------------------

def test_item09_three_requests_on_one_connection(server: Server) -> None:
    with server.raw() as conn:
        conn.send(get("/healthz"))
        first = conn.read_response()
        conn.send(get("/_test/big?bytes=10"))
        second = conn.read_response()
        conn.send(echo(b"12345"))
        third = conn.read_response()
        # Still open: a fourth request works too.
        conn.send(get("/healthz", headers=[("Connection", "close")]))
        fourth = conn.read_response()
        state, rest = conn.wait_closed(10)
    assert (first.status, first.body.strip()) == (200, b"ok")
    assert (second.status, len(second.body)) == (200, 10)
    assert (third.status, third.body.strip()) == (200, b"5")
    for response in (first, second, third):
        assert "close" not in response.connection_tokens(), response
    assert fourth.status == 200 and "close" in fourth.connection_tokens()
    assert (state, rest) == ("eof", b"")


@pytest.mark.parametrize("value", ["Close", "close", "CLOSE", "keep-alive, Close", "foo ,close"])
def test_item09_connection_close_token(server: Server, value: str) -> None:
    with server.raw() as conn:
        conn.send(get("/healthz", headers=[("Connection", value)]) + get("/healthz"))
        responses, state = conn.read_all_responses(timeout=10)
    assert len(responses) == 1, f"request after Connection: {value} was processed: {responses!r}"
    assert responses[0].status == 200
    assert "close" in responses[0].connection_tokens()
    assert state in ("eof", "reset")


def test_item09_http10_closes_by_default(server: Server) -> None:
    with server.raw() as conn:
        conn.send(get("/healthz", version="HTTP/1.0", host=None))
        response = conn.read_response()
        state, rest = conn.wait_closed(10)
    assert response.status == 200
    assert "keep-alive" not in response.connection_tokens()
    assert (state, rest) == ("eof", b"")


def test_item09_http10_keep_alive_is_honoured(server: Server) -> None:
    with server.raw() as conn:
        conn.send(get("/healthz", version="HTTP/1.0", host=None, headers=[("Connection", "Keep-Alive")]))
        first = conn.read_response()
        conn.send(get("/_test/big?bytes=4", version="HTTP/1.0", host=None, headers=[("Connection", "keep-alive")]))
        second = conn.read_response()
        conn.send(get("/healthz", version="HTTP/1.0", host=None))  # no keep-alive: last one
        third = conn.read_response()
        state, _ = conn.wait_closed(10)
    assert first.status == 200 and "close" not in first.connection_tokens()
    assert (second.status, len(second.body)) == (200, 4)
    assert third.status == 200
    assert state == "eof"


# --------------------------------------------------------------------------
# Item 10: pipelining
# --------------------------------------------------------------------------

def test_item10_two_pipelined_requests_answered_in_order(server: Server) -> None:
    with server.raw() as conn:
        conn.send(get("/_test/big?bytes=3") + get("/_test/big?bytes=5"))
        first = conn.read_response()
        second = conn.read_response()
    assert (first.status, len(first.body)) == (200, 3)
    assert (second.status, len(second.body)) == (200, 5)


def test_item10_slow_first_request_keeps_order(server: Server) -> None:
    with server.raw() as conn:
        conn.send(get("/_test/slow?ms=300") + get("/_test/big?bytes=7") + get("/healthz"))
        responses = [conn.read_response() for _ in range(3)]
    assert [r.status for r in responses] == [200, 200, 200]
    assert len(responses[1].body) == 7
    assert responses[2].body.strip() == b"ok"


def test_item10_pipelined_bodies_are_framed_exactly(server: Server) -> None:
    with server.raw() as conn:
        conn.send(echo(b"abc") + echo(b"") + echo(b"defgh") + get("/healthz"))
        responses = [conn.read_response() for _ in range(4)]
    assert [r.body.strip() for r in responses] == [b"3", b"0", b"5", b"ok"]


def test_item10_half_close_after_last_request_gets_all_responses(server: Server) -> None:
    with server.raw() as conn:
        conn.send(get("/_test/slow?ms=200") + get("/_test/big?bytes=9") + get("/healthz"))
        conn.shutdown_write()
        responses, state = conn.read_all_responses(timeout=10)
    assert [r.status for r in responses] == [200, 200, 200]
    assert len(responses[1].body) == 9
    assert state == "eof"


def test_item10_many_pipelined_requests(server: Server) -> None:
    count = 200
    with server.raw() as conn:
        conn.send(b"".join(get(f"/_test/big?bytes={i}") for i in range(count)))
        sizes = [len(conn.read_response().body) for _ in range(count)]
    assert sizes == list(range(count))


# --------------------------------------------------------------------------
# Item 17: lingering close, so the client can read an early error
# --------------------------------------------------------------------------

def _upload_in_background(conn: RawConnection, data: bytes) -> threading.Thread:
    def run() -> None:
        try:
            conn.send(data)
        except OSError:
            pass  # the server stopped reading or closed: expected after an early error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_item17_413_is_readable_while_client_keeps_uploading(server: Server) -> None:
    size = BODY_LIMIT + 64 * 1024
    with server.raw(timeout=15) as conn:
        conn.send(build_request("POST", "/_test/echo-length", headers=[("Content-Length", str(size))]))
        uploader = _upload_in_background(conn, b"u" * size)
        response = conn.read_response(timeout=10)
        uploader.join(timeout=15)
    assert response.status == 413, response
    check_error_hygiene(response)
    server.assert_healthy()


def test_item17_413_is_readable_after_the_client_sent_its_whole_body(server: Server) -> None:
    """A client that writes its whole request before it reads (as simple clients do) still gets
    the 413: the lingering close discards what the client declared (up to its byte cap and its
    deadline) instead of resetting the connection under the unread answer."""
    size = 4 * 1024 * 1024
    for _ in range(3):
        with server.raw(timeout=15) as conn:
            head = build_request("POST", "/_test/echo-length", headers=[("Content-Length", str(size))])
            assert conn.try_send(head + b"u" * size), "the server reset the connection during the upload"
            response = conn.read_response(timeout=10)
        assert response.status == 413, response
        check_error_hygiene(response)
    server.assert_healthy()


def test_item17_431_is_readable_while_client_keeps_sending_headers(server: Server) -> None:
    fields = b"".join(f"X-F{i}: {'v' * 100}\r\n".encode() for i in range(400))
    with server.raw(timeout=15) as conn:
        uploader = _upload_in_background(conn, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + fields + b"\r\n")
        response = conn.read_response(timeout=10)
        uploader.join(timeout=15)
    assert response.status == 431, response
    check_error_hygiene(response)
