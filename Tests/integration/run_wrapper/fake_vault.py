# SPDX-License-Identifier: Apache-2.0
"""A stand-in for the vault's lease routes, for testing `session-vault run` on its own.

Stdlib only (http.server on 127.0.0.1), in the test process, so a test can steer it: take a
lease away (`force_loss`), go down and come back on the same port (`go_down`, `come_back`), and
answer late (`delay`). It implements the contract the wrapper relies on:

* POST /v1/sessions/{name}/lease?export=FORMAT, JSON {"holder", "ttl_seconds", "wait_seconds"}:
  201 {lease_id, epoch, holder, acquired_at, expires_at, ttl_seconds, session_string}; while
  held or during the lock-delay 409 problem+json with `holder`, `expires_at` and Retry-After,
  after waiting up to `wait_seconds` for the lease to free up.
* PUT with `Session-Vault-Lease: <id>`: 200 like the acquisition without the id, or 409 with
  type `.../lease_lost`.
* DELETE with the header: releases (no lock-delay).
* GET: the lease without its id, or 404.

Every request is recorded (`requests`) so that tests can check renewal cadence and release.
Expiry is by time.monotonic(); an expired lease blocks for `lock_delay` seconds.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PREFIX = "/v1/sessions/"
SUFFIX = "/lease"


@dataclass
class Lease:
    lease_id: str
    epoch: int
    holder: str
    ttl: int
    acquired_at: float
    expires: float  # time.monotonic()


@dataclass
class SessionState:
    strings: dict[str, str]  # format -> session string
    lease: Lease | None = None
    blocked_until: float = 0.0  # lock-delay after an expiry or a forced loss
    epoch: int = 0


@dataclass
class Recorded:
    at: float  # time.monotonic()
    method: str
    path: str
    lease_header: str | None
    status: int = 0


class FakeVault:
    """The lease routes in memory. `start()` binds 127.0.0.1 on a free port."""

    def __init__(self, token: str, sessions: dict[str, dict[str, str]], *, lock_delay: float = 15.0):
        self.token = token
        self.lock_delay = lock_delay
        self.sessions = {name: SessionState(dict(strings)) for name, strings in sessions.items()}
        self.cond = threading.Condition()
        self.requests: list[Recorded] = []
        self.port = 0
        self.response_delay = 0.0
        self.down = False
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # -- lifecycle ---------------------------------------------------------------
    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeVault":
        self._listen(0)
        return self

    def _listen(self, port: int) -> None:
        vault = self

        class Handler(_Handler):
            fake = vault

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def go_down(self) -> None:
        """Like a crashed vault: the port refuses connections and open ones are cut."""
        with self.cond:
            self.down = True
            connections = list(self._connections)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def come_back(self) -> None:
        """Listens again on the same port, with the same leases (they survive, as in the vault)."""
        with self.cond:
            self.down = False
        for _ in range(50):  # bounded: the old socket may linger a moment
            try:
                self._listen(self.port)
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"could not listen on {self.port} again")

    def stop(self) -> None:
        if self._server is not None:
            self.go_down()

    # -- control -----------------------------------------------------------------
    def delay(self, seconds: float) -> None:
        """Every later answer waits `seconds` before it is sent."""
        self.response_delay = seconds

    def force_loss(self, name: str) -> None:
        """Ends the current lease as a break would: renewals now answer lease_lost."""
        with self.cond:
            state = self.sessions[name]
            state.lease = None
            state.blocked_until = time.monotonic() + self.lock_delay
            self.cond.notify_all()

    def holder(self, name: str) -> str | None:
        with self.cond:
            lease = self._current(self.sessions[name], time.monotonic())
            return lease.holder if lease else None

    def recorded(self, method: str | None = None) -> list[Recorded]:
        with self.cond:
            return [r for r in self.requests if method is None or r.method == method]

    # -- the routes (under self.cond) -------------------------------------------
    def _current(self, state: SessionState, now: float) -> Lease | None:
        if state.lease is not None and now >= state.lease.expires:
            state.lease = None
            state.blocked_until = now + self.lock_delay
        return state.lease

    def _lease_body(self, state: SessionState, lease: Lease, now: float, *, with_id: bool) -> dict[str, Any]:
        wall = time.time()
        body = {
            "epoch": lease.epoch, "holder": lease.holder,
            "acquired_at": _iso(wall - (now - lease.acquired_at)),
            "expires_at": _iso(wall + (lease.expires - now)), "ttl_seconds": lease.ttl,
        }
        if with_id:
            body = {"lease_id": lease.lease_id, **body}
        return body

    def acquire(self, name: str, body: dict[str, Any], fmt: str | None) -> tuple[int, dict[str, Any], dict[str, str]]:
        holder, ttl, wait = body.get("holder"), body.get("ttl_seconds", 15), body.get("wait_seconds", 0)
        if not isinstance(holder, str) or not holder or len(holder.encode()) > 256:
            return 422, _problem(422, "invalid_field", "holder must be 1-256 bytes", field="holder"), {}
        if not isinstance(ttl, int) or not 5 <= ttl <= 300:
            return 422, _problem(422, "invalid_field", "ttl_seconds must be 5-300", field="ttl_seconds"), {}
        if not isinstance(wait, int) or not 0 <= wait <= 60:
            return 422, _problem(422, "invalid_field", "wait_seconds must be 0-60", field="wait_seconds"), {}
        state = self.sessions[name]
        if fmt is not None and fmt not in state.strings:
            return 422, _problem(422, "invalid_field", "unknown export format", field="export"), {}
        end = time.monotonic() + wait
        with self.cond:
            while True:
                now = time.monotonic()
                lease = self._current(state, now)
                if lease is None and now >= state.blocked_until:
                    state.epoch += 1
                    lease = Lease("svl_" + secrets.token_urlsafe(24), state.epoch, holder, ttl, now, now + ttl)
                    state.lease = lease
                    answer = self._lease_body(state, lease, now, with_id=True)
                    if fmt is not None:
                        answer["session_string"] = state.strings[fmt]
                    return 201, answer, {}
                free_at = lease.expires + self.lock_delay if lease else state.blocked_until
                if now >= end:
                    problem = _problem(409, "lease_held", f"session {name} is leased")
                    problem["holder"] = lease.holder if lease else None
                    problem["expires_at"] = _iso(time.time() + ((lease.expires - now) if lease else 0))
                    return 409, problem, {"Retry-After": str(max(1, int(free_at - now + 0.999)))}
                # Wake at the earlier of the wait's end and the moment the lease could free up.
                self.cond.wait(timeout=max(0.01, min(end, free_at) - now))

    def renew(self, name: str, lease_id: str | None) -> tuple[int, dict[str, Any], dict[str, str]]:
        state = self.sessions[name]
        with self.cond:
            now = time.monotonic()
            lease = self._current(state, now)
            if lease is None or lease_id != lease.lease_id:
                return 409, _problem(409, "lease_lost", "the lease is not current"), {}
            lease.expires = now + lease.ttl
            return 200, self._lease_body(state, lease, now, with_id=False), {}

    def release(self, name: str, lease_id: str | None) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        state = self.sessions[name]
        with self.cond:
            lease = self._current(state, time.monotonic())
            if lease is None or lease_id != lease.lease_id:
                return 409, _problem(409, "lease_lost", "the lease is not current"), {}
            state.lease = None
            state.blocked_until = 0.0
            self.cond.notify_all()
            return 204, None, {}


def _iso(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))


def _problem(status: int, kind: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"type": f"https://session-vault.dev/problems/{kind}", "title": kind.replace("_", " "),
            "status": status, "detail": detail, **extra}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeVault

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        with self.fake.cond:
            self.fake._connections.add(self.connection)

    def finish(self) -> None:
        with self.fake.cond:
            self.fake._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def _route(self, method: str) -> None:
        fake = self.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        record = Recorded(time.monotonic(), method, url.path, self.headers.get("Session-Vault-Lease"))
        with fake.cond:
            fake.requests.append(record)
            if fake.down:
                self.close_connection = True
                return
        status, body, headers = self._answer(method, url, raw)
        record.status = status
        if fake.response_delay:
            time.sleep(fake.response_delay)
        if fake.down:  # went down while this request waited: no answer
            self.close_connection = True
            return
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/problem+json" if status >= 400 else "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _answer(self, method: str, url: Any, raw: bytes) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        fake = self.fake
        if self.headers.get("Authorization") != f"Bearer {fake.token}":
            return 401, _problem(401, "unauthorized", "missing or invalid token"), {}
        if not (url.path.startswith(PREFIX) and url.path.endswith(SUFFIX)):
            return 404, _problem(404, "not_found", "no such route"), {}
        name = url.path[len(PREFIX):-len(SUFFIX)]
        if name not in fake.sessions:
            return 404, _problem(404, "session_not_found", f"no session named {name}"), {}
        header = self.headers.get("Session-Vault-Lease")
        if method == "POST":
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                return 400, _problem(400, "malformed_json", "the body is not JSON"), {}
            fmt = parse_qs(url.query).get("export", [None])[0]
            return fake.acquire(name, body, fmt)
        if method == "PUT":
            return fake.renew(name, header)
        if method == "DELETE":
            return fake.release(name, header)
        with fake.cond:
            lease = fake._current(fake.sessions[name], time.monotonic())
            if lease is None:
                return 404, _problem(404, "lease_not_found", "no lease"), {}
            return 200, fake._lease_body(fake.sessions[name], lease, time.monotonic(), with_id=False), {}

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def do_GET(self) -> None:
        self._route("GET")
