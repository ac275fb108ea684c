# SPDX-License-Identifier: Apache-2.0
"""Black-box harness for the real `session-vault` binary.

Everything here talks to the server only through loopback sockets, curl and
process signals, so the same harness serves the HTTP robustness suite, the API
suite and the interop suite.

Main pieces:

* `Server`          one running `session-vault serve` process (start, readiness,
                    logs, requests, raw sockets, SIGTERM stop with exit code).
* `RawConnection`   a byte-level client: send exact bytes, read and parse
                    responses (1xx, Content-Length, chunked, read-to-close),
                    observe EOF versus RST.
* fixtures          `server` (one per module, test routes on), `server_factory`
                    (fresh servers with their own env), `curl`, and the autouse
                    loopback-only network guard.

Environment knobs:

* SESSION_VAULT_BIN       path of the binary (default: <repo>/.build/debug/session-vault)
* SESSION_VAULT_NO_BUILD  set to 1 to fail instead of running `swift build`

A `Server` made with `tls=` (an `ssl.SSLContext` trusting the server's CA) speaks TLS on every
connection it opens (`raw`, `request`, the readiness probe); the API suite's HTTPS mode
(Tests/integration/api/matrix.py) uses that.
"""

from __future__ import annotations

import ipaddress
import os
import resource
import select
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"

# HTTPServerConfiguration's defaults (docs/http.md, "Settings at a glance"). Tests derive their boundary
# cases from these so a change of limit is made in one place.
REQUEST_LINE_LIMIT = 8 * 1024
FIELD_LINE_LIMIT = 8 * 1024
HEADER_SECTION_LIMIT = 32 * 1024
FIELD_COUNT_LIMIT = 100
BODY_LIMIT = 256 * 1024

# Short deadlines used by the tests that wait for the server to give up.
SHORT_DEADLINES = {
    "SESSION_VAULT_HEADER_TIMEOUT_MS": "1500",
    "SESSION_VAULT_IDLE_TIMEOUT_MS": "1000",
    "SESSION_VAULT_BODY_TIMEOUT_MS": "1000",
    "SESSION_VAULT_WRITE_TIMEOUT_MS": "1000",
}



def drain_env(milliseconds: int) -> dict[str, str]:
    """The shutdown drain deadline. The brief names SESSION_VAULT_DRAIN_MS; the server's
    first cut reads SESSION_VAULT_DRAIN_TIMEOUT_MS. Both are set until one name wins."""
    return {"SESSION_VAULT_DRAIN_MS": str(milliseconds),
            "SESSION_VAULT_DRAIN_TIMEOUT_MS": str(milliseconds)}


# Inherited variables that would change what the server or curl does.
_SCRUBBED_ENV_PREFIXES = ("SESSION_VAULT_",)
_SCRUBBED_ENV_NAMES = {
    "PORT", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
    "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY",
}


# --------------------------------------------------------------------------
# Binary and ports
# --------------------------------------------------------------------------

def binary_path() -> Path:
    """Return the server binary, building it once if it is missing."""
    explicit = os.environ.get("SESSION_VAULT_BIN")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            pytest.fail(f"SESSION_VAULT_BIN={explicit} does not exist", pytrace=False)
        return path
    path = REPO_ROOT / ".build" / "debug" / "session-vault"
    if not path.is_file():
        if os.environ.get("SESSION_VAULT_NO_BUILD") == "1":
            pytest.fail(f"{path} missing and SESSION_VAULT_NO_BUILD=1", pytrace=False)
        build = subprocess.run(
            ["swift", "build", "--product", "session-vault"],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        if build.returncode != 0 or not path.is_file():
            pytest.fail("swift build --product session-vault failed:\n" + build.stdout[-4000:],
                        pytrace=False)
    return path


def free_port() -> int:
    """A loopback port that was free a moment ago (the caller retries on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# Responses and raw connections
# --------------------------------------------------------------------------

class ConnectionClosed(Exception):
    """The peer closed (EOF) or reset (RST) before a complete response arrived."""

    def __init__(self, message: str, *, reset: bool, partial: bytes):
        super().__init__(message)
        self.reset = reset
        self.partial = partial


class ReadTimeout(Exception):
    """No complete response within the read deadline; `partial` holds what came."""

    def __init__(self, message: str, *, partial: bytes):
        super().__init__(message)
        self.partial = partial


@dataclass
class Response:
    """One parsed HTTP response. Header names keep their case in `headers`."""

    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    raw_head: bytes = b""

    def header(self, name: str) -> str | None:
        """The value of `name` (case-insensitive), or None; several values join with ', '."""
        values = self.header_all(name)
        return ", ".join(values) if values else None

    def header_all(self, name: str) -> list[str]:
        lowered = name.lower()
        return [v for (n, v) in self.headers if n.lower() == lowered]

    def connection_tokens(self) -> set[str]:
        """Lower-cased tokens of every Connection header (RFC 9110 §7.6.1)."""
        tokens: set[str] = set()
        for value in self.header_all("Connection"):
            tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
        return tokens

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def __repr__(self) -> str:  # short, so that assertion messages stay readable
        body = self.body if len(self.body) <= 200 else self.body[:200] + b"..."
        return f"<Response {self.status} {self.reason!r} headers={self.headers} body={body!r}>"


def build_request(method: str = "GET", target: str = "/", *, version: str = "HTTP/1.1",
                  headers: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
                  body: bytes = b"", host: str | None = "127.0.0.1",
                  content_length: bool = True) -> bytes:
    """Serialise a well-formed request. `host=None` omits Host; CL is added for a body."""
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
    names = {n.lower() for n, _ in pairs}
    if host is not None and "host" not in names:
        pairs.insert(0, ("Host", host))
    if body and content_length and "content-length" not in names and "transfer-encoding" not in names:
        pairs.append(("Content-Length", str(len(body))))
    head = f"{method} {target} {version}\r\n" + "".join(f"{n}: {v}\r\n" for n, v in pairs) + "\r\n"
    return head.encode("latin-1") + body


class RawConnection:
    """A loopback TCP client that sends exact bytes and parses what comes back.

    Bytes received beyond one response are kept for the next `read_response`,
    so pipelined responses are read one by one.
    """

    def __init__(self, port: int, *, timeout: float = 10.0, rcvbuf: int | None = None,
                 host: str = LOOPBACK, source: str | None = None, sndbuf: int | None = None):
        self.port = port
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:
                # Before connect, so the advertised window is small from the start.
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if sndbuf is not None:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            if source is not None:
                # Another loopback address (127.x.y.z) is another client to the server.
                assert ipaddress.ip_address(source).is_loopback, f"source {source} is not loopback"
                self.sock.bind((source, 0))
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
        except BaseException:
            self.sock.close()
            raise
        self.buffer = b""
        self.closed_by_peer: str | None = None  # "eof" or "reset" once observed

    # -- context management -------------------------------------------------
    def __enter__(self) -> "RawConnection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sending ------------------------------------------------------------
    def send(self, data: bytes | str) -> None:
        """Send all bytes; raises BrokenPipeError/ConnectionResetError if the peer is gone."""
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def try_send(self, data: bytes | str) -> bool:
        """Send, returning False instead of raising when the peer has closed or reset."""
        try:
            self.send(data)
            return True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLEOFError):
            return False

    def send_request(self, method: str = "GET", target: str = "/", **kwargs: object) -> None:
        self.send(build_request(method, target, **kwargs))  # type: ignore[arg-type]

    def shutdown_write(self) -> None:
        """Half-close: the server sees EOF but can still send."""
        self.sock.shutdown(socket.SHUT_WR)

    def abort(self) -> None:
        """Close with SO_LINGER 0 so the kernel sends RST instead of FIN."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    # -- receiving ----------------------------------------------------------
    @classmethod
    def from_bytes(cls, data: bytes) -> "RawConnection":
        """A socket-less parser over bytes already received (EOF after them)."""
        parser = cls.__new__(cls)
        parser.port, parser.timeout, parser.sock = 0, 0.0, None  # type: ignore[assignment]
        parser.buffer, parser.closed_by_peer = data, None
        return parser

    def _fill(self, deadline: float) -> None:
        """Append at least one byte to the buffer, or raise on EOF/RST/deadline."""
        if self.sock is None:
            raise ConnectionClosed("end of captured bytes", reset=False, partial=self.buffer)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ReadTimeout("read deadline passed", partial=self.buffer)
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise ReadTimeout("read deadline passed", partial=self.buffer) from None
        except ConnectionResetError:
            self.closed_by_peer = "reset"
            raise ConnectionClosed("connection reset by peer", reset=True, partial=self.buffer) from None
        if not chunk:
            self.closed_by_peer = "eof"
            raise ConnectionClosed("connection closed by peer", reset=False, partial=self.buffer)
        self.buffer += chunk

    def _read_until(self, marker: bytes, deadline: float, limit: int = 1 << 20) -> bytes:
        while True:
            index = self.buffer.find(marker)
            if index >= 0:
                end = index + len(marker)
                out, self.buffer = self.buffer[:end], self.buffer[end:]
                return out
            if len(self.buffer) > limit:
                raise AssertionError(f"no {marker!r} within {limit} bytes")
            self._fill(deadline)

    def _read_exact(self, count: int, deadline: float) -> bytes:
        while len(self.buffer) < count:
            self._fill(deadline)
        out, self.buffer = self.buffer[:count], self.buffer[count:]
        return out

    def read_response(self, *, timeout: float | None = None, head_request: bool = False) -> Response:
        """Read exactly one response (a 1xx interim response counts as one).

        The body is framed by Content-Length, chunked coding, or the close of
        the connection, as RFC 9112 §6.3 says for responses.
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        raw_head = self._read_until(b"\r\n\r\n", deadline)
        lines = raw_head[:-4].split(b"\r\n")
        version, _, rest = lines[0].decode("latin-1").partition(" ")
        code, _, reason = rest.partition(" ")
        assert version.startswith("HTTP/"), f"not a status line: {lines[0]!r}"
        status = int(code)
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, sep, value = line.decode("latin-1").partition(":")
            assert sep, f"header line without colon: {line!r}"
            headers.append((name, value.strip(" \t")))
        response = Response(version, status, reason, headers, b"", raw_head)
        if head_request or 100 <= status < 200 or status in (204, 304):
            return response
        te = response.header("Transfer-Encoding")
        cl = response.header("Content-Length")
        if te is not None and "chunked" in te.lower():
            response.body = self._read_chunked(deadline)
        elif cl is not None:
            assert cl.isdigit(), f"bad Content-Length in response: {cl!r}"
            response.body = self._read_exact(int(cl), deadline)
        else:
            body = b""
            try:
                while True:
                    self._fill(deadline)
                    body += self.buffer
                    self.buffer = b""
            except ConnectionClosed as closed:
                body += closed.partial
                self.buffer = b""
            response.body = body
        return response

    def _read_chunked(self, deadline: float) -> bytes:
        body = b""
        while True:
            size_line = self._read_until(b"\r\n", deadline)
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while self._read_until(b"\r\n", deadline) != b"\r\n":
                    pass  # trailers
                return body
            body += self._read_exact(size, deadline)
            assert self._read_exact(2, deadline) == b"\r\n", "chunk not followed by CRLF"

    def read_final_response(self, *, timeout: float | None = None,
                            head_request: bool = False) -> tuple[list[Response], Response]:
        """Skip interim 1xx responses; return (interims, final)."""
        interims: list[Response] = []
        while True:
            response = self.read_response(timeout=timeout, head_request=head_request)
            if response.status >= 200:
                return interims, response
            interims.append(response)

    def read_all_responses(self, *, timeout: float | None = None) -> tuple[list[Response], str]:
        """Parse responses until the peer closes; returns (responses, 'eof'|'reset'|'open').

        'open' means the deadline passed with the connection still up. Trailing
        bytes that do not form a response are an assertion failure.
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        responses: list[Response] = []
        while True:
            try:
                responses.append(self.read_response(timeout=max(0.0, deadline - time.monotonic())))
            except ConnectionClosed as closed:
                assert not closed.partial, f"partial response before close: {closed.partial[:300]!r}"
                return responses, ("reset" if closed.reset else "eof")
            except ReadTimeout as timeout_error:
                assert not timeout_error.partial, f"partial response at deadline: {timeout_error.partial[:300]!r}"
                return responses, "open"

    def wait_closed(self, timeout: float) -> tuple[str, bytes]:
        """Read and keep everything until EOF/RST or the deadline.

        Returns ('eof' | 'reset' | 'open', bytes received including buffered ones).
        """
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._fill(deadline)
        except ConnectionClosed as closed:
            data, self.buffer = closed.partial, b""
            return ("reset" if closed.reset else "eof"), data
        except ReadTimeout as timed_out:
            data, self.buffer = timed_out.partial, b""
            return "open", data

    def readable(self, timeout: float) -> bool:
        """True if a byte, EOF or RST is waiting (buffered bytes count)."""
        if self.buffer:
            return True
        ready, _, _ = select.select([self.sock], [], [], timeout)
        return bool(ready)


def parse_responses(data: bytes) -> list[Response]:
    """Parse a byte string holding zero or more complete responses (e.g. `wait_closed` data)."""
    parser = RawConnection.from_bytes(data)
    responses = []
    while parser.buffer:
        try:
            responses.append(parser.read_response(timeout=60.0))
        except ConnectionClosed as closed:
            raise AssertionError(f"trailing bytes are not a response: {closed.partial[:300]!r}") from None
    return responses


class TLSRawConnection(RawConnection):
    """RawConnection over TLS: the handshake completes in the constructor; a TLS-level failure
    while reading counts as the peer closing."""

    def __init__(self, port: int, *, context: ssl.SSLContext, **kwargs: object):
        super().__init__(port, **kwargs)  # type: ignore[arg-type]
        try:
            # As curl and urllib3 do: without it, the request record written after the client's
            # Finished waits for the server's delayed ACK (Nagle), some 40 ms per connection.
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = context.wrap_socket(self.sock, server_hostname=LOOPBACK)
        except BaseException:
            self.sock.close()
            raise

    def _fill(self, deadline: float) -> None:
        try:
            super()._fill(deadline)
        except ssl.SSLError as error:
            raise ConnectionClosed(f"TLS error: {error}", reset=False, partial=self.buffer) from None

    def readable(self, timeout: float) -> bool:
        # Decrypted bytes already inside the TLS object are invisible to select().
        return bool(self.buffer) or self.sock.pending() > 0 or super().readable(timeout)


# --------------------------------------------------------------------------
# The server process
# --------------------------------------------------------------------------

class ServerStartError(Exception):
    pass


class Server:
    """One `session-vault serve` process on a loopback port.

    `env` is added to a scrubbed copy of the environment (no inherited
    SESSION_VAULT_* or proxy variables). `nofile` runs the binary under
    `ulimit -n` through a shell wrapper that `exec`s, so the PID is the server's.
    `tls` (a client context trusting the server's certificate) makes every connection the
    harness opens to it a TLS one; the caller puts the certificate and key in `env`.
    """

    def __init__(self, workdir: Path, *, env: Mapping[str, str] | None = None,
                 args: Sequence[str] = (), test_routes: bool = True,
                 listen_via: str = "arg", nofile: int | None = None,
                 ready_timeout: float = 30.0, binary: Path | None = None,
                 tls: ssl.SSLContext | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.binary = binary if binary is not None else binary_path()
        self.extra_env = dict(env or {})
        self.extra_args = list(args)
        self.test_routes = test_routes
        self.listen_via = listen_via
        self.nofile = nofile
        self.ready_timeout = ready_timeout
        self.tls = tls
        self.host = LOOPBACK
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.stdout_path = self.workdir / "stdout.log"
        self.stderr_path = self.workdir / "stderr.log"
        self.returncode: int | None = None

    # -- lifecycle ------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{'https' if self.tls is not None else 'http'}://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(_SCRUBBED_ENV_PREFIXES) and k not in _SCRUBBED_ENV_NAMES}
        env["HOME"] = str(self.workdir)
        env["XDG_DATA_HOME"] = str(self.workdir / "xdg-data")
        if self.test_routes:
            env["SESSION_VAULT_TEST_ROUTES"] = "1"
            # The HTTP-level tests check the library's default body limit (256 KiB, docs/http.md §7); the vault itself
            # defaults to 16 MiB so that large .session uploads fit.
            env["SESSION_VAULT_MAX_BODY_BYTES"] = str(256 * 1024)
        if self.listen_via in ("env", "both"):
            env["SESSION_VAULT_LISTEN"] = f"{self.host}:{self.port}"
        env.update(self.extra_env)
        return env

    def argv(self) -> list[str]:
        argv = [str(self.binary), "serve"]
        if self.listen_via in ("arg", "both"):
            argv += ["--listen", f"{self.host}:{self.port}"]
        argv += self.extra_args
        if self.nofile is not None:
            argv = ["/bin/sh", "-c", f'ulimit -n {int(self.nofile)} && exec "$@"', "sh", *argv]
        return argv

    def start(self) -> "Server":
        last_error: Exception | None = None
        for _attempt in range(3):  # a free port can be taken between probe and bind
            self.port = free_port()
            try:
                self._spawn_and_wait()
                return self
            except ServerStartError as error:
                last_error = error
                if "in use" not in self.logs().lower():
                    break
        raise AssertionError(f"server did not start: {last_error}\n--- logs ---\n{self.logs()[-4000:]}")

    def _spawn_and_wait(self) -> None:
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                self.argv(), cwd=self.workdir, env=self.environment(),
                stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            )
        self.returncode = None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:  # bounded readiness poll
            code = self.proc.poll()
            if code is not None:
                self.returncode = code
                raise ServerStartError(f"exited with {code} before becoming ready")
            if self.healthz_status(timeout=1.0) == 200:
                return
            time.sleep(0.05)
        self.kill()
        raise ServerStartError(f"/healthz not 200 within {self.ready_timeout} s")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        """Wait up to `timeout` seconds for exit; the exit code or None if still running."""
        assert self.proc is not None
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, *, expect_exit: int | None = None, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait up to `timeout`, SIGKILL if needed; optionally assert the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            code = self.wait(timeout)
            if code is None:
                self.kill()
                if expect_exit is not None:
                    raise AssertionError(f"server ignored SIGTERM for {timeout} s; killed\n{self.logs()[-2000:]}")
        self.returncode = self.proc.returncode
        if expect_exit is not None:
            assert self.returncode == expect_exit, (
                f"exit code {self.returncode}, expected {expect_exit}\n{self.logs()[-2000:]}")
        return self.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.returncode = self.proc.returncode

    # -- observation --------------------------------------------------------
    def logs(self) -> str:
        """stdout and stderr so far (for assertions and for secret scans)."""
        parts = []
        for path in (self.stdout_path, self.stderr_path):
            if path.exists():
                parts.append(path.read_bytes().decode("utf-8", "replace"))
        return "\n".join(parts)

    def stderr(self) -> str:
        return self.stderr_path.read_bytes().decode("utf-8", "replace") if self.stderr_path.exists() else ""

    def raw(self, **kwargs: object) -> RawConnection:
        """A new raw connection to the server (use as a context manager); TLS if the server has it."""
        if self.tls is not None:
            return TLSRawConnection(self.port, context=self.tls, **kwargs)  # type: ignore[arg-type]
        return RawConnection(self.port, **kwargs)  # type: ignore[arg-type]

    def request(self, method: str = "GET", target: str = "/", *, headers: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
                body: bytes = b"", version: str = "HTTP/1.1", timeout: float = 10.0,
                keep_alive: bool = False, source: str | None = None) -> Response:
        """One request on a fresh connection (from loopback address `source` if given);
        returns the final response (1xx skipped)."""
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
        if not keep_alive and not any(n.lower() == "connection" for n, _ in pairs):
            pairs.append(("Connection", "close"))
        with self.raw(timeout=timeout, source=source) as conn:
            # A server may refuse a request at its head (a 413 for a Content-Length over the limit)
            # and close while the body is still being sent; like curl (RFC 9112 §9.5), the client
            # then still reads the answer that arrived. No answer is still a failure (read raises).
            conn.try_send(build_request(method, target, version=version, headers=pairs, body=body,
                                        host=f"{self.host}:{self.port}"))
            _, response = conn.read_final_response(head_request=(method == "HEAD"))
            return response

    def healthz_status(self, timeout: float = 2.0) -> int | None:
        """Status of GET /healthz, or None if no response could be had."""
        try:
            return self.request("GET", "/healthz", timeout=timeout).status
        except (OSError, ConnectionClosed, ReadTimeout, AssertionError, ValueError):
            return None

    def assert_healthy(self, attempts: int = 50) -> None:
        """The process is alive and a fresh client gets /healthz 200 (bounded retries)."""
        for _ in range(attempts):
            assert self.alive(), f"server died (code {self.proc.poll() if self.proc else None})\n{self.logs()[-3000:]}"
            if self.healthz_status() == 200:
                return
            time.sleep(0.2)
        raise AssertionError(f"/healthz never answered 200\n{self.logs()[-3000:]}")


# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------

def _is_loopback(family: int, address: object) -> bool:
    if family == socket.AF_UNIX:
        return True
    if not isinstance(address, tuple) or not address:
        return False
    host = address[0]
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def network_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse any socket connect that is not to loopback (the suite never leaves the machine)."""
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def guarded_connect(self: socket.socket, address: object) -> None:
        if not _is_loopback(self.family, address):
            raise PermissionError(f"network guard: connect to {address!r} refused (loopback only)")
        return original_connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: object) -> int:
        if not _is_loopback(self.family, address):
            raise PermissionError(f"network guard: connect to {address!r} refused (loopback only)")
        return original_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)


@pytest.fixture(scope="session", autouse=True)
def _raise_fd_limit() -> None:
    """Tests open hundreds of sockets; lift the soft fd limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


class ServerFactory:
    """Starts servers in per-test directories and stops every one at teardown."""

    def __init__(self, root: Path):
        self.root = root
        self.servers: list[Server] = []

    def __call__(self, **kwargs: object) -> Server:
        server = Server(self.root / f"server{len(self.servers)}", **kwargs)  # type: ignore[arg-type]
        self.servers.append(server)
        return server.start()

    def close_all(self) -> None:
        for server in self.servers:
            try:
                server.stop(timeout=10)
            finally:
                server.kill()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterable[ServerFactory]:
    factory = ServerFactory(tmp_path)
    yield factory
    factory.close_all()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterable[Server]:
    """One server per test module with default limits and the test routes on.

    At teardown it must still be alive and exit 0 on SIGTERM: a module that
    crashed it fails here even if every test passed.
    """
    instance = Server(tmp_path_factory.mktemp("server")).start()
    yield instance
    try:
        assert instance.alive(), f"server died during the module\n{instance.logs()[-3000:]}"
        instance.stop(expect_exit=0)
    finally:
        instance.kill()


@dataclass
class CurlResult:
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


def run_curl(*args: str, timeout: float = 30.0) -> CurlResult:
    """Run curl against loopback only (no proxy, bounded time)."""
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed", pytrace=False)
    for arg in args:
        if arg.startswith(("http://", "https://")):
            assert arg.startswith(f"http://{LOOPBACK}:"), f"curl target must be loopback: {arg}"
    completed = subprocess.run(
        ["curl", "--silent", "--show-error", "--noproxy", "*", "--max-time", "20", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
        env={k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV_NAMES},
    )
    return CurlResult(completed.returncode, completed.stdout, completed.stderr.decode("utf-8", "replace"))


@pytest.fixture
def curl() -> object:
    return run_curl


def connect_many(port: int, count: int, *, timeout: float = 10.0,
                 source: str | None = None) -> list[RawConnection]:
    """Open `count` raw connections (the kernel backlog completes the handshakes)."""
    conns = []
    try:
        for _ in range(count):
            conns.append(RawConnection(port, timeout=timeout, source=source))
    except BaseException:
        for conn in conns:
            conn.close()
        raise
    return conns


def close_all(conns: Iterable[RawConnection]) -> None:
    for conn in conns:
        conn.close()


# --------------------------------------------------------------------------
# Test certificates (the `openssl` command)
# --------------------------------------------------------------------------

def openssl(*args: str, cwd: Path) -> None:
    completed = subprocess.run(["openssl", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert completed.returncode == 0, completed.stderr.decode("utf-8", "replace")


def make_ca(folder: Path, name: str) -> None:
    """A self-signed P-256 CA valid for two days: FOLDER/NAME.pem and FOLDER/NAME.key."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}", cwd=folder)


def make_leaf(folder: Path, name: str, ca: str, extension: str) -> None:
    """A certificate signed by CA with one x509v3 `extension` line (e.g. subjectAltName=IP:127.0.0.1)."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=folder)
    (folder / f"{name}.ext").write_text(extension + "\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=folder)


# --------------------------------------------------------------------------
# Checks shared by the HTTP suites
# --------------------------------------------------------------------------

# Put into requests whose error response must not echo them (docs/http.md §18).
CANARY = "cnry4b1d"


def check_error_hygiene(response: Response, request: bytes | None = None) -> None:
    """docs/http.md §18: Content-Length, Connection: close, no-store, no echo of the request."""
    length = response.header("Content-Length")
    assert length is not None and length.isdigit(), f"error without Content-Length: {response!r}"
    assert int(length) == len(response.body)
    assert "close" in response.connection_tokens(), f"error without Connection: close: {response!r}"
    cache = (response.header("Cache-Control") or "").lower()
    assert "no-store" in cache, f"error without Cache-Control: no-store: {response!r}"
    exposed = response.raw_head + response.body
    assert CANARY.encode() not in exposed, f"error response echoes request bytes: {response!r}"
    if request:
        # No 24-byte run of the request may reappear in the body.
        sample = request[:4096]
        for start in range(0, max(0, len(sample) - 24) + 1):
            window = sample[start:start + 24]
            assert window not in response.body, f"error body echoes {window!r}"


def expect_error(server: "Server", data: bytes, statuses: int | Iterable[int], *,
                 timeout: float = 10.0) -> Response:
    """Send `data` on a fresh connection; expect exactly one error response, then close.

    Any further response (e.g. a smuggled or pipelined request that was parsed
    after the error) is a failure, and so is a connection left open.
    """
    wanted = {statuses} if isinstance(statuses, int) else set(statuses)
    with server.raw(timeout=timeout) as conn:
        conn.try_send(data)
        responses, state = conn.read_all_responses(timeout=timeout)
    assert responses, f"no response (connection {state}) to {data[:200]!r}"
    first = responses[0]
    assert first.status in wanted, f"status {first.status}, expected {sorted(wanted)}: {first!r} for {data[:300]!r}"
    assert len(responses) == 1, f"bytes after the error were processed: {responses[1:]!r}"
    assert state in ("eof", "reset"), "connection left open after an error response"
    check_error_hygiene(first, data)
    return first


def expect_ok(server: "Server", data: bytes, *, status: int = 200, timeout: float = 10.0) -> Response:
    """Send `data` on a fresh connection and expect one final response with `status`."""
    with server.raw(timeout=timeout) as conn:
        conn.send(data)
        _, response = conn.read_final_response(timeout=timeout)
    assert response.status == status, f"status {response.status}, expected {status}: {response!r} for {data[:300]!r}"
    return response


def stream_until_response(conn: RawConnection, piece: bytes, cap: int, *,
                          idle_timeout: float = 10.0) -> tuple[int, str]:
    """Send `piece` repeatedly until the server answers, stops reading, or `cap` bytes went.

    Returns (bytes sent, why) with why in {'readable', 'closed', 'cap', 'stalled'}.
    Uses select so a server that answers early is noticed between sends.
    """
    sent = 0
    conn.sock.setblocking(False)
    try:
        while sent < cap:
            readable, writable, _ = select.select([conn.sock], [conn.sock], [], idle_timeout)
            if readable:
                return sent, "readable"
            if not writable:
                return sent, "stalled"
            try:
                sent += conn.sock.send(piece)
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                return sent, "closed"
        return sent, "cap"
    finally:
        conn.sock.setblocking(True)
        conn.sock.settimeout(conn.timeout)


def server_rss_kib(server: "Server", field: str = "VmRSS") -> int:
    """Resident set size (or `field`, e.g. VmHWM for its peak) of the server process from /proc (Linux)."""
    for line in Path(f"/proc/{server.pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not found")
