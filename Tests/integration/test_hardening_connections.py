# SPDX-License-Identifier: Apache-2.0
"""Issue 14, items 3 and 4, against the real binary.

Item 3: connection slots cannot be held without credentials. Connections per client address
are bounded, and a full server sheds its longest-idle keep-alive (or still silent) connection
to admit a newcomer instead of leaving it in the kernel backlog.

Item 4: a request body is not read before the request is authenticated: a refused request is
answered from its head and the connection closes without reading the body; the bodies in
flight together stay within a memory budget (503 before reading beyond it).

Loopback only: other 127.x.y.z source addresses stand for other clients. Every loop is bounded,
and the checks are behavioural (who is answered, who is closed, how much was read) or memory
measurements from /proc, never latency thresholds.
"""

from __future__ import annotations

import base64
import errno
import json
import secrets
import select
import time

from conftest import (
    stream_until_response,
    RawConnection, Server, build_request, close_all, connect_many, parse_responses, server_rss_kib,
)

MIB = 1024 * 1024
UPLOAD = 16 * MIB  # the vault's default body limit: a large `.session` upload
ROOT_TOKEN = "svt_" + secrets.token_urlsafe(32)
LONG = "60000"  # ms: deadlines far beyond every wait below, so no timeout frees a slot for us


def get(target: str = "/healthz", **kwargs: object) -> bytes:
    return build_request("GET", target, **kwargs)  # type: ignore[arg-type]


def vault_env(**extra: str) -> dict[str, str]:
    """A memory vault with a known root token and the vault's real body limit (16 MiB)."""
    env = {
        "SESSION_VAULT_STORAGE": "memory",
        "SESSION_VAULT_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "SESSION_VAULT_ROOT_TOKEN": ROOT_TOKEN,
        "SESSION_VAULT_MAX_BODY_BYTES": str(UPLOAD),
    }
    env.update(extra)
    return env


def upload_head(*, token: str | None, length: int = UPLOAD, expect: bool = False,
                name: str = "upload") -> bytes:
    headers = [("Content-Type", "application/vnd.sqlite3"), ("Content-Length", str(length))]
    if token is not None:
        headers.append(("Authorization", f"Bearer {token}"))
    if expect:
        headers.append(("Expect", "100-continue"))
    return build_request("POST", f"/v1/sessions?name={name}", headers=headers)


# --------------------------------------------------------------------------
# Item 3: connection slots
# --------------------------------------------------------------------------

def test_issue14_item3_silent_connections_from_one_address_leave_room_for_a_fresh_client(server_factory) -> None:
    # The issue: 3,000 silent connections delay a fresh client by about a minute (the first 512
    # fill the server, the rest queue in the backlog ahead of the newcomer). With the header
    # deadline at 60 s nothing is freed by a timeout here: the fresh client is answered only if
    # one address cannot take the slots.
    srv = server_factory(env={"SESSION_VAULT_HEADER_TIMEOUT_MS": LONG})
    held: list[RawConnection] = []
    try:
        for _ in range(3000):
            held.append(RawConnection(srv.port, timeout=10, source="127.0.0.1"))
        response = srv.request("GET", "/healthz", timeout=20, source="127.0.0.2")
        assert response.status == 200, response
    finally:
        close_all(held)
    srv.assert_healthy()


def test_issue14_item3_idle_keep_alive_connections_are_shed_for_a_fresh_client(server_factory) -> None:
    # 3,000 keep-alive clients spread over 50 addresses (60 each, inside the per-address bound),
    # each with one request answered or queued. The server holds at most 512; with the idle
    # deadline at 60 s only shedding idle connections can let the fresh client in.
    srv = server_factory(env={"SESSION_VAULT_IDLE_TIMEOUT_MS": LONG, "SESSION_VAULT_HEADER_TIMEOUT_MS": LONG})
    held: list[RawConnection] = []
    try:
        for index in range(3000):
            conn = RawConnection(srv.port, timeout=10, source=f"127.0.{10 + index % 50}.1")
            held.append(conn)
            conn.send(get())
        for conn in held[:256]:  # the first ones were accepted at once: keep-alive, then idle
            assert conn.read_response(timeout=20).status == 200
        response = srv.request("GET", "/healthz", timeout=20, source="127.0.0.2")
        assert response.status == 200, response
    finally:
        close_all(held)
    srv.assert_healthy()


def test_issue14_item3_full_server_sheds_the_longest_idle_connection(server_factory) -> None:
    srv = server_factory(env={"SESSION_VAULT_MAX_CONNECTIONS": "4", "SESSION_VAULT_IDLE_TIMEOUT_MS": LONG})
    idle = connect_many(srv.port, 4)
    newcomer: RawConnection | None = None
    try:
        for conn in idle:  # oldest first: idle[0] has been idle longest
            conn.send(get())
            assert conn.read_response(timeout=15).status == 200
            time.sleep(0.2)
        newcomer = RawConnection(srv.port, timeout=20)
        newcomer.send(get())
        assert newcomer.read_response(timeout=20).status == 200
        state, data = idle[0].wait_closed(10)
        assert state in ("eof", "reset") and data == b"", "the longest-idle connection was not shed"
        for conn in idle[1:]:  # the others keep their connection
            conn.send(get())
            assert conn.read_response(timeout=15).status == 200
    finally:
        close_all(idle)
        if newcomer is not None:
            newcomer.close()
    srv.assert_healthy()


def test_issue14_item3_header_tricklers_from_many_addresses_are_shed_for_a_fresh_client(server_factory) -> None:
    # Issue 14 item 3: connections trickling a request head a byte at a time, from several
    # addresses (each within the per-address bound), fill the server and its backlog. With the
    # header deadline at 60 s no timeout frees a slot: the fresh client is answered only if a
    # connection whose head has been incomplete for longer than the grace (1 s; a real client
    # sends its head in one packet) can be shed like an idle one.
    srv = server_factory(env={"SESSION_VAULT_MAX_CONNECTIONS": "64",
                              "SESSION_VAULT_MAX_CONNECTIONS_PER_ADDRESS": "16",
                              "SESSION_VAULT_HEADER_TIMEOUT_MS": LONG,
                              "SESSION_VAULT_IDLE_TIMEOUT_MS": LONG})
    head = get()
    held: list[RawConnection] = []
    fresh: RawConnection | None = None
    try:
        for index in range(128):  # 64 in the server, 64 more in the backlog, 8 addresses
            conn = RawConnection(srv.port, timeout=10, source=f"127.0.{30 + index % 8}.1")
            held.append(conn)
            conn.send(head[:1])
        sent = 1
        for _ in range(3):  # keep trickling for 1.5 s: every head is now past the grace
            time.sleep(0.5)
            for conn in held:
                conn.try_send(head[sent:sent + 1])
            sent += 1
        fresh = RawConnection(srv.port, timeout=10, source="127.0.0.2")
        started = time.monotonic()
        fresh.send(get(headers=[("Connection", "close")]))
        assert fresh.readable(8), "the fresh client got nothing while tricklers held every slot"
        response = fresh.read_response(timeout=5)
        assert response.status == 200, response
        assert time.monotonic() - started < 8
    finally:
        close_all(held)
        if fresh is not None:
            fresh.close()
    srv.assert_healthy()


def test_issue14_item3_connections_mid_body_are_never_shed(server_factory) -> None:
    # A connection reading a body (or running a handler, or writing) is never shed, however
    # long it has been at it; only idle connections and heads stuck past the grace are.
    srv = server_factory(env={"SESSION_VAULT_MAX_CONNECTIONS": "4", "SESSION_VAULT_HEADER_TIMEOUT_MS": "30000",
                              "SESSION_VAULT_BODY_TIMEOUT_MS": "30000"})
    busy = connect_many(srv.port, 4)
    waiting: RawConnection | None = None
    try:
        head = build_request("POST", "/_test/echo-length", headers=[("Content-Length", "10")])
        for conn in busy:  # a complete head and part of its body: these connections are mid-body
            conn.send(head + b"01234")
        time.sleep(1.5)  # longer than both shedding grace periods
        waiting = RawConnection(srv.port, timeout=20)
        waiting.send(get(headers=[("Connection", "close")]))
        assert not waiting.readable(1.5), "a fifth connection was served while four were mid-body"
        for conn in busy:
            conn.send(b"56789")
            assert conn.read_response(timeout=15).status == 200, "a connection mid-body was shed"
        close_all(busy)
        assert waiting.read_response(timeout=20).status == 200
    finally:
        close_all(busy)
        if waiting is not None:
            waiting.close()
    srv.assert_healthy()


def test_issue14_item3_connections_over_the_per_address_bound_are_refused(server_factory) -> None:
    srv = server_factory(env={"SESSION_VAULT_MAX_CONNECTIONS_PER_ADDRESS": "8"})
    held = connect_many(srv.port, 8, source="127.0.0.3")
    extra: RawConnection | None = None
    try:
        for conn in held:
            conn.send(get())
            assert conn.read_response(timeout=15).status == 200
        extra = RawConnection(srv.port, timeout=10, source="127.0.0.3")
        extra.try_send(get())
        state, data = extra.wait_closed(8)
        assert state in ("eof", "reset"), "a ninth connection from one address was kept open"
        statuses = [r.status for r in parse_responses(data)]
        assert statuses in ([], [503]), statuses
        for conn in held:  # the ones within the bound are still served
            conn.send(get())
            assert conn.read_response(timeout=15).status == 200
        assert srv.request("GET", "/healthz", source="127.0.0.4").status == 200
    finally:
        close_all(held)
        if extra is not None:
            extra.close()
    srv.assert_healthy()


# --------------------------------------------------------------------------
# Item 4: bodies
# --------------------------------------------------------------------------

def test_issue14_item4_unauthenticated_upload_is_refused_before_its_body(server_factory) -> None:
    srv = server_factory(env=vault_env(), test_routes=False)
    for token in (None, "svt_not-a-valid-token"):
        with RawConnection(srv.port, timeout=20, sndbuf=64 * 1024) as conn:
            conn.send(upload_head(token=token))
            sent, why = stream_body(conn, UPLOAD)
            assert why in ("readable", "closed"), f"the server read the whole {UPLOAD}-byte body ({why})"
            assert sent < UPLOAD // 4, f"the client could send {sent} bytes before the refusal"
            response = conn.read_response(timeout=10)
            assert response.status == 401, response
            assert "close" in response.connection_tokens()
            state, _ = conn.wait_closed(10)
            assert state in ("eof", "reset"), "the refused upload's connection stayed open"
    srv.assert_healthy()


def test_issue14_item4_parallel_unauthenticated_uploads_keep_memory_bounded(server_factory) -> None:
    # 256 uploads of 16 MiB with no token, all in flight at once (from four addresses). The
    # issue measured 2.8 GB; the target is a peak RSS under 100 MiB. The sender stops early once
    # the server's RSS passes 512 MiB, so an unfixed server fails fast instead of eating memory.
    srv = server_factory(env=vault_env(), test_routes=False)
    conns = [RawConnection(srv.port, timeout=20, sndbuf=64 * 1024, source=f"127.0.{20 + i % 4}.1")
             for i in range(256)]
    try:
        for conn in conns:
            conn.send(upload_head(token=None))
        sent = parallel_stream(conns, UPLOAD, srv, abort_rss_kib=512 * 1024, seconds=120)
        peak_kib = server_rss_kib(srv, "VmHWM")
    finally:
        close_all(conns)
    assert peak_kib < 100 * 1024, f"peak RSS {peak_kib} KiB (the server read {sent // MIB} MiB of refused bodies)"
    srv.assert_healthy()


def test_issue14_item4_uploads_beyond_the_body_memory_budget_get_503_before_their_body(server_factory) -> None:
    srv = server_factory(env=vault_env(SESSION_VAULT_BODY_MEMORY_BUDGET_BYTES=str(2 * UPLOAD)), test_routes=False)
    first = RawConnection(srv.port, timeout=30)
    second = RawConnection(srv.port, timeout=30)
    try:
        for index, conn in enumerate((first, second)):  # 100 Continue: admitted, memory reserved
            conn.send(upload_head(token=ROOT_TOKEN, expect=True, name=f"in-budget-{index}"))
            assert conn.read_response(timeout=15).status == 100
        with RawConnection(srv.port, timeout=30) as third:
            third.send(upload_head(token=ROOT_TOKEN, name="over-budget"))
            response = third.read_response(timeout=15)  # no body sent: answered from the head
            assert response.status == 503, response
            assert response.header("Retry-After") is not None
            assert "close" in response.connection_tokens()
            state, _ = third.wait_closed(10)
            assert state in ("eof", "reset")
        for conn in (first, second):  # the admitted uploads finish (junk bytes: not a .session file)
            conn.send(b"\0" * UPLOAD)
            status = conn.read_response(timeout=30).status
            assert status not in (413, 503) and 400 <= status < 500, status
        # Their memory was released: the next upload is admitted.
        with RawConnection(srv.port, timeout=30) as later:
            later.send(upload_head(token=ROOT_TOKEN, expect=True, name="after"))
            assert later.read_response(timeout=15).status == 100
    finally:
        first.close()
        second.close()
    srv.assert_healthy()


def test_issue14_item4_refused_preflights_count_toward_the_failed_auth_throttle(server_factory) -> None:
    # A bad token refused from the head (here with Expect: 100-continue, which the old server
    # already answered early) is a failed authentication like any other: enough of them from
    # one address get 429.
    srv = server_factory(env=vault_env(), test_routes=False)
    statuses = []
    for index in range(30):
        with RawConnection(srv.port, timeout=15, source="127.0.0.6") as conn:
            conn.send(upload_head(token=f"svt_wrong-{index}", length=1024, expect=True))
            statuses.append(conn.read_response(timeout=15).status)
        if statuses[-1] == 429:
            break
    assert statuses[-1] == 429 and set(statuses[:-1]) == {401}, statuses
    # Another address is not affected.
    assert srv.request("GET", "/healthz", source="127.0.0.7").status == 200
    srv.assert_healthy()


def test_issue14_item4_token_without_write_gets_403_before_the_body(server_factory) -> None:
    srv = server_factory(env=vault_env(), test_routes=False)
    made = srv.request("POST", "/v1/tokens", headers=[("Authorization", f"Bearer {ROOT_TOKEN}"),
                                                      ("Content-Type", "application/json")],
                       body=b'{"operations": ["read"], "prefixes": ["app-"]}')
    assert made.status == 201, made
    reader_token = json.loads(made.body)["token"]
    with RawConnection(srv.port, timeout=20, sndbuf=64 * 1024) as conn:
        conn.send(upload_head(token=reader_token, name="app-one"))
        sent, why = stream_body(conn, UPLOAD)
        assert why in ("readable", "closed") and sent < UPLOAD // 4, (sent, why)
        response = conn.read_response(timeout=10)
        assert response.status == 403, response
        assert "close" in response.connection_tokens()
    srv.assert_healthy()


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def stream_body(conn: RawConnection, total: int, piece: int = 64 * 1024) -> tuple[int, str]:
    """Send about `total` zero body bytes until the server answers ('readable'), closes ('closed'),
    stops reading for 10 s ('stalled'), or everything went ('cap'): the harness's
    `stream_until_response` with a zero piece."""
    return stream_until_response(conn, b"\0" * piece, total)


def parallel_stream(conns: list[RawConnection], total: int, srv: Server, *, abort_rss_kib: int,
                    seconds: float, piece: int = 64 * 1024) -> int:
    """Send `total` body bytes on every connection, round-robin, until each one is done, closed
    or answered; stop early when the server's RSS passes `abort_rss_kib` or after `seconds`.
    Returns the bytes sent in all."""
    chunk = b"\0" * piece
    remaining = {conn.sock.fileno(): [conn, total] for conn in conns}
    for conn in conns:
        conn.sock.setblocking(False)
    sent_total = 0
    deadline = time.monotonic() + seconds
    checks = 0
    while remaining and time.monotonic() < deadline:
        socks = [entry[0].sock for entry in remaining.values()]
        readable, writable, _ = select.select(socks, socks, [], 1.0)
        for sock in set(readable):  # answered (or closed): this upload is over
            remaining.pop(sock.fileno(), None)
        for sock in writable:
            entry = remaining.get(sock.fileno())
            if entry is None:
                continue
            try:
                n = sock.send(chunk[: min(piece, entry[1])])
            except BlockingIOError:
                continue
            except OSError as error:
                if error.errno in (errno.EPIPE, errno.ECONNRESET):
                    remaining.pop(sock.fileno(), None)
                    continue
                raise
            entry[1] -= n
            sent_total += n
            if entry[1] == 0:
                remaining.pop(sock.fileno(), None)
        checks += 1
        if checks % 16 == 0 and server_rss_kib(srv) > abort_rss_kib:
            break
    for conn in conns:
        try:
            conn.sock.setblocking(True)
        except OSError:
            pass
    return sent_total

