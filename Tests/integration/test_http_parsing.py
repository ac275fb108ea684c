# SPDX-License-Identifier: Apache-2.0
"""docs/http.md §1-§8 and §18-§19 against the live binary: what the parser accepts and rejects
(a test's itemNN, and "item N" below, is section N).

Every request here is exact bytes on a raw loopback socket. A rejected request
must get exactly one error response with the hygiene of item 18, and then the
connection must close; nothing sent after the bad bytes may be processed.
"""

from __future__ import annotations

import pytest

from conftest import (
    BODY_LIMIT, CANARY, FIELD_COUNT_LIMIT, FIELD_LINE_LIMIT, HEADER_SECTION_LIMIT,
    REQUEST_LINE_LIMIT, RawConnection, Server, build_request, check_error_hygiene,
    expect_error, expect_ok, run_curl, stream_until_response,
)

H = b"Host: 127.0.0.1"
PROBE = f"X-Probe: {CANARY}".encode()


def head(request_line: bytes, *fields: bytes) -> bytes:
    return request_line + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"


def post_echo(fields: list[bytes], body: bytes, version: bytes = b"HTTP/1.1") -> bytes:
    return head(b"POST /_test/echo-length " + version, *fields) + body


# --------------------------------------------------------------------------
# Item 1: request line and version
# --------------------------------------------------------------------------

REQUEST_LINE_CASES = {
    "target_9KiB_414": (b"GET /" + CANARY.encode() + b"a" * 9 * 1024 + b" HTTP/1.1", {414}),
    "http2_505": (b"GET / HTTP/2.0", {505}),
    "http3_505": (b"GET / HTTP/3.0", {505}),
    "double_space_400": (b"GET  / HTTP/1.1", {400}),
    "double_space_before_version_400": (b"GET /  HTTP/1.1", {400}),
    "trailing_space_400": (b"GET / HTTP/1.1 ", {400}),
    "leading_space_400": (b" GET / HTTP/1.1", {400}),
    "tab_separator_400": (b"GET\t/ HTTP/1.1", {400}),
    "lowercase_version_400": (b"GET / http/1.1", {400}),
    "version_garbage_400": (b"GET / HTTP/1.x", {400}),
    "version_missing_400": (b"GET / ", {400}),
    "nul_in_target_400": (b"GET /a\x00b HTTP/1.1", {400}),
    "del_in_target_400": (b"GET /a\x7fb HTTP/1.1", {400}),
    "unknown_method_501": (b"BREW / HTTP/1.1", {501}),
    "overlong_method": (b"ABCDEFGHIJKLMNOPQ / HTTP/1.1", {400, 501}),
    "method_not_token_400": (b"GE(T / HTTP/1.1", {400}),
}


@pytest.mark.parametrize("case", sorted(REQUEST_LINE_CASES))
def test_item01_request_line_rejected(server: Server, case: str) -> None:
    line, statuses = REQUEST_LINE_CASES[case]
    expect_error(server, head(line, H, PROBE), statuses)


def test_item01_http09_style_request_400(server: Server) -> None:
    expect_error(server, b"GET /\r\n\r\n", 400)


def test_item01_target_of_8000_octets_is_supported(server: Server) -> None:
    # RFC 9112 §3: at least 8000 octets; an unknown path of that length is a 404, not 414.
    target = b"/" + b"a" * 7999
    assert len(b"GET " + target + b" HTTP/1.1") < REQUEST_LINE_LIMIT
    response = expect_ok(server, head(b"GET " + target + b" HTTP/1.1", H), status=404)
    assert b"a" * 64 not in response.body


@pytest.mark.parametrize("version", [b"HTTP/1.1", b"HTTP/1.0"])
def test_item01_supported_versions(server: Server, version: bytes) -> None:
    response = expect_ok(server, head(b"GET /healthz " + version, H, b"Connection: close"))
    assert response.version == "HTTP/1.1"
    assert response.body.strip() == b"ok"


# --------------------------------------------------------------------------
# Item 2: header limits -> 431
# --------------------------------------------------------------------------

def numbered_fields(count: int) -> list[bytes]:
    return [f"X-F{i}: v".encode() for i in range(count)]


def test_item02_too_many_fields_431(server: Server) -> None:
    fields = [H, PROBE] + numbered_fields(FIELD_COUNT_LIMIT - 1)  # 101 fields
    expect_error(server, head(b"GET /healthz HTTP/1.1", *fields), 431)


def test_item02_field_count_at_limit_is_accepted(server: Server) -> None:
    fields = [H, b"Connection: close"] + numbered_fields(FIELD_COUNT_LIMIT - 2)
    assert len(fields) == FIELD_COUNT_LIMIT
    expect_ok(server, head(b"GET /healthz HTTP/1.1", *fields))


def test_item02_field_line_over_limit_431(server: Server) -> None:
    prefix = f"X-Big: {CANARY}".encode()
    line = prefix + b"v" * (FIELD_LINE_LIMIT + 1 - len(prefix))
    assert len(line) == FIELD_LINE_LIMIT + 1
    expect_error(server, head(b"GET /healthz HTTP/1.1", H, line), 431)


def test_item02_field_line_below_limit_is_accepted(server: Server) -> None:
    line = b"X-Big: " + b"v" * 8000
    expect_ok(server, head(b"GET /healthz HTTP/1.1", H, line, b"Connection: close"))


def test_item02_header_section_over_limit_431(server: Server) -> None:
    # Each line is under the per-line cap; together they pass the 32 KiB section cap.
    lines = [f"X-S{i}: ".encode() + b"v" * 7000 for i in range(HEADER_SECTION_LIMIT // 7000 + 1)]
    expect_error(server, head(b"GET /healthz HTTP/1.1", H, PROBE, *lines), 431)


def test_item02_header_section_below_limit_is_accepted(server: Server) -> None:
    lines = [f"X-S{i}: ".encode() + b"v" * 7000 for i in range(4)]  # ~28 KiB
    expect_ok(server, head(b"GET /healthz HTTP/1.1", H, *lines, b"Connection: close"))


def test_item02_endless_header_line_431_with_bounded_memory(server: Server) -> None:
    cap = 48 * 1024 * 1024
    with server.raw(timeout=15) as conn:
        conn.send(b"GET /healthz HTTP/1.1\r\n" + H + b"\r\nX-Endless: ")
        sent, why = stream_until_response(conn, b"a" * 4096, cap)
        assert why != "cap", f"server read {cap} bytes of one header line without answering"
        response = conn.read_response(timeout=10)
    assert response.status == 431, response
    check_error_hygiene(response)
    server.assert_healthy()


# --------------------------------------------------------------------------
# Item 3: field syntax
# --------------------------------------------------------------------------

FIELD_SYNTAX_CASES = {
    "space_before_colon": head(b"GET /healthz HTTP/1.1", H, b"X-Test : 1", PROBE),
    "cl_space_before_colon": post_echo([H, b"Content-Length : 5", PROBE], b"hello"),
    "tab_before_colon": head(b"GET /healthz HTTP/1.1", H, b"X-Test\t: 1"),
    "obs_fold": head(b"GET /healthz HTTP/1.1", H, b"X-Test: a", b"  b", PROBE),
    "obs_fold_tab": head(b"GET /healthz HTTP/1.1", H, b"X-Test: a", b"\tb"),
    "first_field_line_starts_with_space": head(b"GET /healthz HTTP/1.1", b" X-Test: a", H),
    "bare_cr_in_value": head(b"GET /healthz HTTP/1.1", H, b"X-Test: a\rb", PROBE),
    "bare_cr_line_end": b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\rX-Test: a\r\n\r\n",
    "bare_lf_everywhere": b"GET /healthz HTTP/1.1\nHost: 127.0.0.1\n\n",
    "bare_lf_request_line": b"GET /healthz HTTP/1.1\nHost: 127.0.0.1\r\n\r\n",
    "bare_lf_one_field": b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\nX-Test: a\r\n\r\n",
    "bare_lf_final": b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\n",
    "two_host_fields": head(b"GET /healthz HTTP/1.1", H, b"Host: other", PROBE),
    "two_identical_host_fields": head(b"GET /healthz HTTP/1.1", H, H),
    "host_list": head(b"GET /healthz HTTP/1.1", b"Host: a, b"),
    "no_host_http11": head(b"GET /healthz HTTP/1.1", PROBE),
    "line_without_colon": head(b"GET /healthz HTTP/1.1", H, b"NoColonHere"),
    "empty_field_name": head(b"GET /healthz HTTP/1.1", H, b": value"),
    "nul_in_value": head(b"GET /healthz HTTP/1.1", H, b"X-Test: a\x00b"),
    "del_in_name": head(b"GET /healthz HTTP/1.1", H, b"X-Te\x7fst: a"),
}


@pytest.mark.parametrize("case", sorted(FIELD_SYNTAX_CASES))
def test_item03_field_syntax_400(server: Server, case: str) -> None:
    expect_error(server, FIELD_SYNTAX_CASES[case], 400)


def test_item03_http10_without_host_is_accepted(server: Server) -> None:
    response = expect_ok(server, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert response.body.strip() == b"ok"


def test_item03_optional_whitespace_around_value_is_accepted(server: Server) -> None:
    expect_ok(server, head(b"GET /healthz HTTP/1.1", b"Host:127.0.0.1", b"X-Test: \t a \t ",
                           b"Connection: close"))


TCHARS = set(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def test_item03_every_byte_in_field_name(server: Server) -> None:
    """NIO's exhaustive loop: a name byte outside `tchar` is a 400, a tchar is fine."""
    failures = []
    for byte in range(256):
        if byte == ord(":"):
            continue  # splits the line: a different, valid field
        data = head(b"GET /healthz HTTP/1.1", H, b"X" + bytes([byte]) + b"Y: v",
                    b"Connection: close")
        expected = 200 if byte in TCHARS else 400
        with server.raw() as conn:
            conn.try_send(data)
            responses, _ = conn.read_all_responses(timeout=10)
        got = responses[0].status if responses else None
        if got != expected:
            failures.append((hex(byte), got, expected))
    assert not failures, f"(byte, got, expected): {failures}"


def test_item03_every_byte_in_field_value(server: Server) -> None:
    """Values allow VCHAR, SP, HTAB (and obs-text); every other control byte is a 400."""
    failures = []
    for byte in range(256):
        data = head(b"GET /healthz HTTP/1.1", H, b"X-V: a" + bytes([byte]) + b"b",
                    b"Connection: close")
        if 0x21 <= byte <= 0x7E or byte in (0x20, 0x09):
            expected = {200}
        elif byte >= 0x80:
            expected = {200, 400}  # obs-text: RFC 9110 §5.5 lets a recipient keep or refuse it
        else:
            expected = {400}
        with server.raw() as conn:
            conn.try_send(data)
            responses, _ = conn.read_all_responses(timeout=10)
        got = responses[0].status if responses else None
        if got not in expected:
            failures.append((hex(byte), got, sorted(expected)))
    assert not failures, f"(byte, got, expected): {failures}"


# --------------------------------------------------------------------------
# Item 4: Content-Length
# --------------------------------------------------------------------------

CONTENT_LENGTH_CASES = {
    "plus_sign": [b"Content-Length: +5"],
    "minus_one": [b"Content-Length: -1"],
    "minus_zero": [b"Content-Length: -0"],
    "identical_list": [b"Content-Length: 5, 5"],
    "two_identical_lines": [b"Content-Length: 5", b"Content-Length: 5"],
    "two_different_lines": [b"Content-Length: 5", b"Content-Length: 6"],
    "twenty_nines": [b"Content-Length: 99999999999999999999"],
    "hex": [b"Content-Length: 0x5"],
    "trailing_garbage": [b"Content-Length: 5a"],
    "inner_space": [b"Content-Length: 5 5"],
    "empty": [b"Content-Length: "],
    "decimal_point": [b"Content-Length: 5.0"],
}


@pytest.mark.parametrize("case", sorted(CONTENT_LENGTH_CASES))
def test_item04_invalid_content_length_400(server: Server, case: str) -> None:
    response = expect_error(server, post_echo([H, PROBE, *CONTENT_LENGTH_CASES[case]], b"hello"), 400)
    assert "close" in response.connection_tokens()


@pytest.mark.parametrize("length", [0, 1, 5, 65536])
def test_item04_valid_content_length_is_exact(server: Server, length: int) -> None:
    data = build_request("POST", "/_test/echo-length", body=b"z" * length,
                         headers=[("Content-Length", str(length)), ("Connection", "close")])
    assert expect_ok(server, data).body.strip() == str(length).encode()


def test_item04_body_shorter_than_content_length_is_not_processed(server: Server) -> None:
    with server.raw() as conn:
        conn.send(post_echo([H, b"Content-Length: 10"], b"12345"))
        conn.shutdown_write()
        responses, state = conn.read_all_responses(timeout=15)
    assert state in ("eof", "reset")
    assert all(r.status >= 400 for r in responses), f"incomplete body was processed: {responses!r}"


# --------------------------------------------------------------------------
# Item 5: Transfer-Encoding versus Content-Length (smuggling)
# --------------------------------------------------------------------------

CHUNKED_HELLO = b"5\r\nhello\r\n0\r\n\r\n"

TRANSFER_ENCODING_CASES = {
    "te_and_cl_400": ([b"Transfer-Encoding: chunked", b"Content-Length: 15"], b"HTTP/1.1", {400}),
    "cl_and_te_400": ([b"Content-Length: 15", b"Transfer-Encoding: chunked"], b"HTTP/1.1", {400}),
    "gzip_chunked_501": ([b"Transfer-Encoding: gzip, chunked"], b"HTTP/1.1", {501}),
    "xchunked_501": ([b"Transfer-Encoding: xchunked"], b"HTTP/1.1", {501}),
    "identity_501": ([b"Transfer-Encoding: identity"], b"HTTP/1.1", {501}),
    "chunked_not_last": ([b"Transfer-Encoding: chunked, gzip"], b"HTTP/1.1", {400, 501}),
    "te_twice_400": ([b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"], b"HTTP/1.1", {400}),
    "te_twice_different_400": ([b"Transfer-Encoding: chunked", b"Transfer-Encoding: identity"], b"HTTP/1.1", {400}),
    "te_on_http10_400": ([b"Transfer-Encoding: chunked"], b"HTTP/1.0", {400}),
    "te_empty": ([b"Transfer-Encoding: "], b"HTTP/1.1", {400, 501}),
    "te_vertical_tab": ([b"Transfer-Encoding:\x0bchunked"], b"HTTP/1.1", {400}),
}


@pytest.mark.parametrize("case", sorted(TRANSFER_ENCODING_CASES))
def test_item05_transfer_encoding_rejected(server: Server, case: str) -> None:
    fields, version, statuses = TRANSFER_ENCODING_CASES[case]
    expect_error(server, post_echo([H, PROBE, *fields], CHUNKED_HELLO, version), statuses)


def test_item05_chunked_is_case_insensitive(server: Server) -> None:
    data = post_echo([H, b"Transfer-Encoding: Chunked", b"Connection: close"], CHUNKED_HELLO)
    assert expect_ok(server, data).body.strip() == b"5"


SMUGGLED = b"GET /_test/big?bytes=4321 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def smuggling_cases() -> dict[str, bytes]:
    cl_te_body = b"0\r\n\r\n" + SMUGGLED
    te_cl_chunk = b"%x\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n"
    return {
        # The front end uses CL, we would use TE: the smuggled GET must never run.
        "cl_te": post_echo([H, f"Content-Length: {len(cl_te_body)}".encode(),
                            b"Transfer-Encoding: chunked"], cl_te_body),
        # The front end uses TE, we would use CL.
        "te_cl": post_echo([H, b"Transfer-Encoding: chunked", b"Content-Length: 4"],
                           te_cl_chunk),
        "te_space_before_colon": post_echo([H, f"Content-Length: {len(cl_te_body)}".encode(),
                                            b"Transfer-Encoding : chunked"], cl_te_body),
        "te_obfuscated_second_line": post_echo([H, b"Transfer-Encoding: chunked",
                                                b"Transfer-encoding: cow"], cl_te_body),
        "cl_duplicate_differing": post_echo([H, b"Content-Length: 0",
                                             f"Content-Length: {len(SMUGGLED)}".encode()], SMUGGLED),
    }


@pytest.mark.parametrize("case", sorted(smuggling_cases()))
def test_item05_smuggled_request_is_not_processed(server: Server, case: str) -> None:
    data = smuggling_cases()[case]
    with server.raw() as conn:
        conn.try_send(data)
        responses, state = conn.read_all_responses(timeout=10)
    assert not any(len(r.body) == 4321 for r in responses), "the smuggled request was served"
    assert len(responses) == 1, f"expected one error response, got {responses!r}"
    assert responses[0].status in (400, 501), responses[0]
    assert state in ("eof", "reset"), "connection left open after a framing error"
    check_error_hygiene(responses[0], data)


# --------------------------------------------------------------------------
# Item 6: chunked decoding
# --------------------------------------------------------------------------

def test_item06_valid_multi_chunk_body_has_exact_length(server: Server) -> None:
    body = (b"5\r\nhello\r\n"
            b"a;name=value;flag\r\n0123456789\r\n"
            b"1\r\nx\r\n"
            b"0\r\nX-Trailer: t\r\n\r\n")
    request = post_echo([H, b"Transfer-Encoding: chunked"], body)
    with server.raw() as conn:
        # Twice on one connection: the decoder must consume exactly the chunked framing.
        conn.send(request + request)
        first = conn.read_response()
        second = conn.read_response()
    assert (first.status, first.body.strip()) == (200, b"16")
    assert (second.status, second.body.strip()) == (200, b"16")


def test_item06_large_chunks_within_limit(server: Server) -> None:
    chunk = 0x8000
    body = b"".join(b"%x\r\n" % chunk + b"c" * chunk + b"\r\n" for _ in range(BODY_LIMIT // chunk)) + b"0\r\n\r\n"
    data = post_echo([H, b"Transfer-Encoding: chunked", b"Connection: close"], body)
    assert expect_ok(server, data).body.strip() == str(BODY_LIMIT).encode()


CHUNK_CASES = {
    "plus_sign": b"+1\r\nx\r\n0\r\n\r\n",
    "minus_zero": b"-0\r\n\r\n",
    "hex_prefix": b"0x5\r\nhello\r\n0\r\n\r\n",
    "leading_space": b" 5\r\nhello\r\n0\r\n\r\n",
    "huge_size": b"FFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n",
    "non_hex": b"g\r\nhello\r\n0\r\n\r\n",
    "empty_size": b"\r\nhello\r\n0\r\n\r\n",
    "extension_2KiB": b"5;ext=" + b"e" * 2048 + b"\r\nhello\r\n0\r\n\r\n",
    "missing_crlf_after_data": b"5\r\nhelloX0\r\n\r\n",
    "data_longer_than_size": b"5\r\nhello!\r\n0\r\n\r\n",
    "bare_lf_after_size": b"5\nhello\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(CHUNK_CASES))
def test_item06_invalid_chunk_400(server: Server, case: str) -> None:
    data = post_echo([H, b"Transfer-Encoding: chunked", PROBE], CHUNK_CASES[case])
    expect_error(server, data, 400)


def test_item06_chunked_over_limit_413_then_close(server: Server) -> None:
    chunk = 0x8000
    piece = b"%x\r\n" % chunk + b"c" * chunk + b"\r\n"
    with server.raw(timeout=15) as conn:
        conn.send(head(b"POST /_test/echo-length HTTP/1.1", H, b"Transfer-Encoding: chunked"))
        sent, why = stream_until_response(conn, piece, 64 * BODY_LIMIT)
        assert why != "cap", "server accepted 64 times the body limit without answering"
        response = conn.read_response(timeout=10)
        state, _ = conn.wait_closed(10)
    assert response.status == 413, response
    check_error_hygiene(response)
    assert state in ("eof", "reset")


# --------------------------------------------------------------------------
# Item 7: body size -> 413 before the body
# --------------------------------------------------------------------------

def test_item07_content_length_over_limit_413_before_body(server: Server) -> None:
    with server.raw() as conn:
        conn.send(head(b"POST /_test/echo-length HTTP/1.1", H, PROBE,
                       f"Content-Length: {BODY_LIMIT + 1}".encode()))
        # No body byte is sent: the answer must not wait for it (the body deadline is 10 s).
        response = conn.read_response(timeout=5)
        state, _ = conn.wait_closed(10)
    assert response.status == 413, response
    check_error_hygiene(response)
    assert state in ("eof", "reset")


def test_item07_content_length_at_limit_is_accepted(server: Server) -> None:
    data = build_request("POST", "/_test/echo-length", body=b"q" * BODY_LIMIT,
                         headers=[("Connection", "close")])
    assert expect_ok(server, data).body.strip() == str(BODY_LIMIT).encode()


# --------------------------------------------------------------------------
# Item 8: Expect: 100-continue
# --------------------------------------------------------------------------

def test_item08_100_continue_is_sent_before_the_body(server: Server) -> None:
    size = 100 * 1024
    with server.raw() as conn:
        conn.send(head(b"POST /_test/echo-length HTTP/1.1", H, b"Expect: 100-continue",
                       f"Content-Length: {size}".encode()))
        interim = conn.read_response(timeout=5)  # nothing of the body has been sent yet
        assert interim.status == 100, interim
        assert interim.body == b""
        conn.send(b"b" * size)
        final = conn.read_response()
    assert (final.status, final.body.strip()) == (200, str(size).encode())


def test_item08_curl_expect_upload_completes(server: Server, tmp_path) -> None:
    upload = tmp_path / "upload.bin"
    upload.write_bytes(b"u" * 100 * 1024)
    # A server that never sends 100 makes curl wait for --expect100-timeout (longer than --max-time).
    result = run_curl("--expect100-timeout", "30", "-H", "Expect: 100-continue",
                      "--data-binary", f"@{upload}", "-w", "\n%{http_code}",
                      f"{server.url}/_test/echo-length")
    assert result.returncode == 0, result.stderr
    body, _, code = result.text.rpartition("\n")
    assert (code, body.strip()) == ("200", "102400")


def test_item08_expect_with_too_large_body_413_without_100(server: Server) -> None:
    with server.raw() as conn:
        conn.send(head(b"POST /_test/echo-length HTTP/1.1", H, b"Expect: 100-continue",
                       f"Content-Length: {BODY_LIMIT + 1}".encode()))
        first = conn.read_response(timeout=5)
        state, _ = conn.wait_closed(10)
    assert first.status == 413, f"expected 413 and no 100 Continue, got {first!r}"
    check_error_hygiene(first)
    assert state in ("eof", "reset")


def test_item08_expect_on_unknown_route_gets_final_status_without_100(server: Server) -> None:
    with server.raw() as conn:
        conn.send(head(b"POST /no-such-route HTTP/1.1", H, b"Expect: 100-continue",
                       b"Content-Length: 10"))
        first = conn.read_response(timeout=5)
    assert first.status == 404, f"expected 404 before the body and no 100, got {first!r}"
    assert "close" in first.connection_tokens()


def test_item08_unknown_expectation_417(server: Server) -> None:
    data = post_echo([H, b"Expect: foo", PROBE, b"Content-Length: 5"], b"hello")
    expect_error(server, data, 417)


def test_item08_expect_ignored_on_http10(server: Server) -> None:
    data = post_echo([b"Expect: 100-continue", b"Content-Length: 5"], b"hello", b"HTTP/1.0")
    with server.raw() as conn:
        conn.send(data)
        first = conn.read_response(timeout=5)
    assert first.status == 200, f"HTTP/1.0 must not get 100 Continue: {first!r}"
    assert first.body.strip() == b"5"


# --------------------------------------------------------------------------
# Item 18 and 19: error and response hygiene
# --------------------------------------------------------------------------

ERROR_TABLE = {
    400: head(b"GET /" + CANARY.encode() + b" HTTP/1.1", H, b"Host: again"),
    404: head(b"GET /" + CANARY.encode() + b" HTTP/1.1", H, b"Connection: close"),
    413: head(b"POST /_test/echo-length HTTP/1.1", H, PROBE,
              f"Content-Length: {BODY_LIMIT + 1}".encode()),
    414: head(b"GET /" + CANARY.encode() * 1200 + b" HTTP/1.1", H),
    417: post_echo([H, f"Expect: {CANARY}".encode(), b"Content-Length: 1"], b"x"),
    431: head(b"GET /healthz HTTP/1.1", H, *[f"X-{CANARY}-{i}: {CANARY}".encode() for i in range(120)]),
    501: head(b"BREW /" + CANARY.encode() + b" HTTP/1.1", H),
    505: head(b"GET /" + CANARY.encode() + b" HTTP/2.0", H),
}


@pytest.mark.parametrize("status", sorted(ERROR_TABLE))
def test_item18_error_response_hygiene(server: Server, status: int) -> None:
    data = ERROR_TABLE[status]
    if status == 404:  # not a framing error: may keep the connection, but carries the same hygiene
        response = expect_ok(server, data, status=404)
        check_error_hygiene(response, data)
        assert (response.header("Content-Type") or "").startswith("application/problem+json")
    else:
        response = expect_error(server, data, status)
    assert response.header("Date"), "every response carries Date (item 19)"


def test_item19_success_response_hygiene(server: Server) -> None:
    response = expect_ok(server, head(b"GET /healthz HTTP/1.1", H, b"Connection: close"))
    assert response.body.strip() == b"ok"
    assert (response.header("Content-Type") or "").startswith("text/plain")
    assert response.header("Content-Length") == str(len(response.body))
    assert response.header("Date")
    assert response.header("Transfer-Encoding") is None


def test_item19_head_response_has_no_body(server: Server) -> None:
    # A body after the HEAD response would be parsed as the start of the next response.
    with server.raw() as conn:
        conn.send(head(b"HEAD /healthz HTTP/1.1", H) + head(b"GET /_test/big?bytes=3 HTTP/1.1", H))
        head_response = conn.read_response(head_request=True)
        assert head_response.status in (200, 405), head_response
        if "close" in head_response.connection_tokens():
            state, rest = conn.wait_closed(10)
            assert rest == b"", f"bytes after a HEAD response: {rest[:200]!r}"
            return
        following = conn.read_response()
    assert following.status == 200 and len(following.body) == 3, following


def test_item19_unknown_path_404_problem_json(server: Server) -> None:
    response = server.request("GET", "/definitely/not/here")
    assert response.status == 404
    assert (response.header("Content-Type") or "").startswith("application/problem+json")
    assert response.header("Content-Length") == str(len(response.body))


# --------------------------------------------------------------------------
# Extra adversarial cases around items 1, 4, 6 and 10
# --------------------------------------------------------------------------

def test_item01_raw_non_ascii_in_target_400(server: Server) -> None:
    expect_error(server, head(b"GET /caf\xc3\xa9 HTTP/1.1", H, PROBE), 400)


def test_item04_leading_zeros_and_lowercase_name_are_valid(server: Server) -> None:
    # RFC 9110 §8.6: Content-Length = 1*DIGIT, so 005 is 5; field names are case-insensitive.
    data = post_echo([H, b"content-length: 005", b"Connection: close"], b"hello")
    assert expect_ok(server, data).body.strip() == b"5"


def test_item06_oversized_declared_chunk_413(server: Server) -> None:
    with server.raw(timeout=15) as conn:
        conn.send(head(b"POST /_test/echo-length HTTP/1.1", H, b"Transfer-Encoding: chunked") + b"7fffffff\r\n")
        sent, why = stream_until_response(conn, b"c" * 32768, 64 * BODY_LIMIT)
        assert why != "cap", "server accepted 64 times the body limit without answering"
        response = conn.read_response(timeout=10)
    assert response.status == 413, response
    check_error_hygiene(response)


def test_item06_oversized_trailer_section_rejected(server: Server) -> None:
    trailers = b"".join(f"X-T{i}: ".encode() + b"t" * 7000 + b"\r\n" for i in range(6))
    data = post_echo([H, b"Transfer-Encoding: chunked", PROBE], b"5\r\nhello\r\n0\r\n" + trailers + b"\r\n")
    expect_error(server, data, {400, 431})


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_item10_unread_body_is_skipped_before_next_request(server: Server, framing: str) -> None:
    # /healthz and the 404 route ignore the body; its bytes must not be parsed as a request.
    smuggle = b"GET /_test/big?bytes=4321 HTTP/1.1\r\nHost: x\r\n\r\n"
    if framing == "chunked":
        body = b"%x\r\n" % len(smuggle) + smuggle + b"\r\n0\r\n\r\n"
        fields = [H, b"Transfer-Encoding: chunked"]
    else:
        body = smuggle
        fields = [H, f"Content-Length: {len(smuggle)}".encode()]
    first = head(b"POST /healthz HTTP/1.1", *fields) + body
    second = head(b"POST /no-such-route HTTP/1.1", *fields) + body
    last = head(b"GET /_test/big?bytes=3 HTTP/1.1", H, b"Connection: close")
    with server.raw() as conn:
        conn.send(first + second + last)
        responses, state = conn.read_all_responses(timeout=10)
    assert not any(len(r.body) == 4321 for r in responses), "a request body was parsed as a request"
    statuses = [r.status for r in responses]
    # Either every request is answered in order, or the server closed after a response that said so.
    if len(responses) < 3:
        assert "close" in responses[-1].connection_tokens(), responses
    else:
        assert statuses[2] == 200 and len(responses[2].body) == 3, responses
    assert statuses[1:2] in ([], [404]), responses
    assert state == "eof"
