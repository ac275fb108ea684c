# SPDX-License-Identifier: Apache-2.0
"""Native TLS (issue 20) on the real binary: certificates made here with the `openssl` CLI (a
CA, a server certificate for 127.0.0.1 with an IP SAN, a second server certificate for the
reload, client certificates from the CA and from another CA), then HTTPS through curl, Python
`ssl` and `openssl s_client`: the API over HTTPS, keep-alive and pipelining, mutual TLS,
refused protocol versions, refusals at the TLS layer (plain HTTP, garbage, a truncated
ClientHello), clients that never finish their handshake, SIGHUP reload, X-Forwarded-For from
trusted proxies, and the secret scan of the logs."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from conftest import LOOPBACK, RawConnection, Server, TLSRawConnection, build_request, make_ca, make_leaf, run_curl
from api.vault import new_master_key, new_root_token, pyrogram_current_cases

LONG = "60000"
# The first bytes of a TLS 1.2 ClientHello record: a handshake that never completes.
TRUNCATED_CLIENT_HELLO = bytes.fromhex("160301020001000 1fc0303".replace(" ", "")) + b"\x00" * 20


# --------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is not installed", pytrace=False)
    folder = tmp_path_factory.mktemp("certs")
    make_ca(folder, "ca")
    make_ca(folder, "otherca")
    make_leaf(folder, "server", "ca", "subjectAltName=IP:127.0.0.1")
    make_leaf(folder, "server2", "ca", "subjectAltName=IP:127.0.0.1")
    make_leaf(folder, "client", "ca", "extendedKeyUsage=clientAuth")
    make_leaf(folder, "stranger", "otherca", "extendedKeyUsage=clientAuth")
    return folder


def client_context(certs: Path, client: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    context.set_alpn_protocols(["http/1.1"])
    if client is not None:
        context.load_cert_chain(str(certs / f"{client}.pem"), str(certs / f"{client}.key"))
    return context


# --------------------------------------------------------------------------
# A TLS server for the harness
# --------------------------------------------------------------------------

class TLSServer(Server):
    """A `serve` process with TLS on (the harness's `tls=`): readiness and `raw()` go through TLS;
    `plain()` is a plain TCP connection to the same port."""

    def __init__(self, workdir: Path, certs: Path, *, client: str | None = None, **kwargs: object):
        super().__init__(workdir, tls=client_context(certs, client), **kwargs)  # type: ignore[arg-type]
        self.certs = certs
        self.client = client

    def plain(self, **kwargs: object) -> RawConnection:
        return RawConnection(self.port, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def tls_factory(tmp_path: Path, certs: Path):
    servers: list[TLSServer] = []

    def start(env: dict[str, str] | None = None, *, client_ca: bool = False, client: str | None = None,
              cert: str = "server", **kwargs: object) -> TLSServer:
        full = {"SESSION_VAULT_TLS_CERT_FILE": str(certs / f"{cert}.pem"),
                "SESSION_VAULT_TLS_KEY_FILE": str(certs / f"{cert}.key"),
                "SESSION_VAULT_LOG_LEVEL": "debug"}
        if client_ca:
            full["SESSION_VAULT_TLS_CLIENT_CA_FILE"] = str(certs / "ca.pem")
        full.update(env or {})
        server = TLSServer(tmp_path / f"tls{len(servers)}", certs, client=client, env=full, **kwargs)
        servers.append(server)
        return server.start()  # type: ignore[return-value]

    yield start
    for server in servers:
        try:
            server.stop(timeout=10)
        finally:
            server.kill()


def https_curl(server: TLSServer, *args: str) -> subprocess.CompletedProcess[bytes]:
    """curl over HTTPS with the test CA (loopback only, bounded)."""
    command = ["curl", "--silent", "--show-error", "--noproxy", "*", "--max-time", "20",
               "--cacert", str(server.certs / "ca.pem"), *args]
    for arg in args:
        if arg.startswith("https://"):
            assert arg.startswith(f"https://{LOOPBACK}:"), arg
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)


def s_client(port: int, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", "s_client", "-connect", f"{LOOPBACK}:{port}", "-servername", "localhost", *args],
                          input=b"", stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

def test_api_over_https_with_curl(tls_factory) -> None:
    token = new_root_token()
    srv = tls_factory({"SESSION_VAULT_ROOT_TOKEN": token, "SESSION_VAULT_MASTER_KEY": new_master_key(),
                       "SESSION_VAULT_STORAGE": "memory"}, test_routes=False)
    auth = ["-H", f"Authorization: Bearer {token}"]
    session = pyrogram_current_cases()[0]["string"]
    created = https_curl(srv, *auth, "-H", "Content-Type: application/json", "-w", "\n%{http_code} %{http_version}",
                         "--data", json.dumps({"name": "mybot", "session_string": session}), f"{srv.url}/v1/sessions")
    assert created.returncode == 0, created.stderr
    assert created.stdout.decode().rsplit("\n", 1)[1] == "201 1.1", created.stdout
    exported = https_curl(srv, *auth, f"{srv.url}/v1/sessions/mybot/export")
    assert exported.returncode == 0 and exported.stdout.decode().strip() == session, exported
    minted = https_curl(srv, *auth, "-H", "Content-Type: application/json",
                        "--data", json.dumps({"operations": ["read"], "sessions": ["mybot"], "ttl_seconds": 600}),
                        f"{srv.url}/v1/tokens")
    scoped = json.loads(minted.stdout)["token"]
    read = https_curl(srv, "-H", f"Authorization: Bearer {scoped}", "-w", "%{http_code}", "-o", "/dev/null",
                      f"{srv.url}/v1/sessions/mybot")
    assert read.stdout == b"200", read
    # Without the CA, curl refuses the certificate: the vault really speaks TLS with this chain.
    untrusted = subprocess.run(["curl", "--silent", "--noproxy", "*", "--max-time", "10", f"{srv.url}/healthz"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert untrusted.returncode == 60, untrusted
    assert "tls=on" in srv.logs()


def test_keep_alive_and_pipelining_over_tls(tls_factory) -> None:
    srv = tls_factory()
    with srv.raw() as conn:
        assert conn.sock.selected_alpn_protocol() == "http/1.1"
        assert conn.sock.version() in ("TLSv1.2", "TLSv1.3")
        for _ in range(3):  # keep-alive: one connection, several requests
            conn.send(build_request("GET", "/healthz", host=f"{LOOPBACK}:{srv.port}"))
            assert conn.read_response(timeout=10).status == 200
        # Pipelining: three requests in one write (one TLS record), three answers in order.
        conn.send(b"".join(build_request("GET", f"/_test/big?bytes={n}", host=f"{LOOPBACK}:{srv.port}")
                           for n in (10, 70000, 5)))
        bodies = [conn.read_response(timeout=10).body for _ in range(3)]
        assert [len(b) for b in bodies] == [10, 70000, 5]
        # A body larger than one record, uploaded and counted.
        conn.send(build_request("POST", "/_test/echo-length", host=f"{LOOPBACK}:{srv.port}", body=b"x" * 100_000))
        assert conn.read_response(timeout=10).body == b"100000"


def test_handshake_deadline_closes_a_stalled_client_without_a_reply(tls_factory) -> None:
    srv = tls_factory({"SESSION_VAULT_TLS_HANDSHAKE_TIMEOUT_MS": "1000", "SESSION_VAULT_HEADER_TIMEOUT_MS": LONG})
    with srv.plain(timeout=10) as conn:
        conn.send(TRUNCATED_CLIENT_HELLO)
        started = time.monotonic()
        how, data = conn.wait_closed(8)
        elapsed = time.monotonic() - started
    assert how in ("eof", "reset") and data == b"", (how, data)
    # Its own deadline (1 s), not the header timeout (60 s).
    assert 0.5 < elapsed < 6, elapsed
    srv.assert_healthy()


# Issue 20: "500 connections that never finish the handshake do not delay a fresh client beyond
# the plain server's slowloris figure". The figure itself is a benchmark (bench/tls_slowloris.sh,
# BENCHMARKS.md "Issue 20: TLS"): here the behaviour, with a bounded wait and no time threshold.
# 500 from 8 loopback addresses (63 each, inside the default per-address bound of 128, which stays
# on), half silent, half with a truncated ClientHello; header and idle deadlines at 60 s, so no
# deadline frees a slot. With the default cap (512) the 500 are all inside the server at once and
# hold no thread: the fresh client's handshake and request run beside them. With a cap of 64,
# 436 wait in the kernel backlog ahead of the fresh client: it is served only because stalled
# handshakes past the shedding grace are shed like silent clients, batch after batch.
@pytest.mark.parametrize("cap", [None, "64"], ids=["default-cap", "cap-64"])
def test_500_stalled_handshakes_do_not_keep_a_fresh_client_out(tls_factory, cap: str | None) -> None:
    env = {"SESSION_VAULT_HEADER_TIMEOUT_MS": LONG, "SESSION_VAULT_IDLE_TIMEOUT_MS": LONG}
    if cap is not None:
        env["SESSION_VAULT_MAX_CONNECTIONS"] = cap
    srv = tls_factory(env)
    held: list[RawConnection] = []
    try:
        for index in range(500):
            conn = RawConnection(srv.port, timeout=10, source=f"127.0.{40 + index % 8}.1")
            held.append(conn)
            if index % 2:
                conn.send(TRUNCATED_CLIENT_HELLO)
        time.sleep(1.0)  # past the shedding grace: every stalled handshake is now sheddable
        # The whole exchange is bounded (handshake, then the answer), not timed.
        with TLSRawConnection(srv.port, context=client_context(srv.certs), timeout=60, source="127.0.0.2") as fresh:
            fresh.send(build_request("GET", "/healthz", host=f"{LOOPBACK}:{srv.port}", headers=[("Connection", "close")]))
            assert fresh.read_response(timeout=60).status == 200
        # What became of the 500: never an answer; with room for all of them none was closed
        # (the fresh client really ran beside 500 open handshakes), over the cap some were shed.
        states = [conn.wait_closed(0.001) for conn in held]
        assert all(data == b"" for _, data in states)
        closed = sum(1 for how, _ in states if how != "open")
        if cap is None:
            assert closed == 0, closed
        else:
            assert closed > 0
    finally:
        for conn in held:
            conn.close()
    srv.assert_healthy()


@pytest.mark.parametrize("version,accepted", [("-tls1", False), ("-tls1_1", False), ("-tls1_2", True), ("-tls1_3", True)])
def test_protocol_versions(tls_factory, version: str, accepted: bool) -> None:
    srv = tls_factory()
    result = s_client(srv.port, version, "-alpn", "http/1.1", "-CAfile", str(srv.certs / "ca.pem"))
    out = result.stdout.decode("utf-8", "replace")
    if accepted:
        assert "ALPN protocol: http/1.1" in out, out
        assert "Verify return code: 0 (ok)" in out, out
    else:
        assert "ALPN protocol: http/1.1" not in out
        assert result.returncode != 0, out
        assert _wait_for(lambda: "unsupported protocol" in srv.logs()), srv.logs()[-2000:]
    srv.assert_healthy()


def test_refusals_at_the_tls_layer(tls_factory) -> None:
    srv = tls_factory()
    # Plain HTTP to the TLS port: a plain 400 that says why, then the close.
    with srv.plain(timeout=10) as conn:
        conn.send(build_request("GET", "/healthz", host=f"{LOOPBACK}:{srv.port}"))
        response = conn.read_response(timeout=10)
        assert response.status == 400 and b"HTTPS" in response.body
        assert conn.wait_closed(5)[0] in ("eof", "reset")
    # Garbage: closed (an alert at most), never an HTTP answer.
    with srv.plain(timeout=10) as conn:
        conn.send(bytes(range(256)) * 4)
        how, data = conn.wait_closed(8)
        assert how in ("eof", "reset") and b"HTTP/" not in data
    # A truncated ClientHello, then the client's FIN: closed at once.
    with srv.plain(timeout=10) as conn:
        conn.send(TRUNCATED_CLIENT_HELLO)
        conn.shutdown_write()
        assert conn.wait_closed(5)[0] in ("eof", "reset")
    logs = srv.logs()
    assert logs.count("plain HTTP on the TLS port") == 1, logs[-2000:]
    assert _wait_for(lambda: "closed the connection during the handshake" in srv.logs())
    srv.assert_healthy()


def test_random_bytes_to_the_tls_port_for_a_bounded_time(tls_factory) -> None:
    import random
    rng = random.Random(20)
    srv = tls_factory()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        with srv.plain(timeout=5) as conn:
            prefix = bytes([0x16, 0x03, rng.randrange(0, 5)]) if rng.random() < 0.5 else b""
            conn.try_send(prefix + rng.randbytes(rng.randrange(1, 2000)))
            if rng.random() < 0.5:
                conn.abort()
    srv.assert_healthy()


def test_mutual_tls(tls_factory, certs: Path) -> None:
    srv = tls_factory(client_ca=True, client="client")
    assert "tls=mutual" in srv.logs()
    with srv.raw() as conn:  # a client certificate from the CA
        conn.send(build_request("GET", "/healthz", host=f"{LOOPBACK}:{srv.port}"))
        assert conn.read_response(timeout=10).status == 200
    good = https_curl(srv, "--cert", str(certs / "client.pem"), "--key", str(certs / "client.key"),
                      "-w", "%{http_code}", "-o", "/dev/null", f"{srv.url}/healthz")
    assert good.stdout == b"200", good
    for client in (None, "stranger"):  # none, then one from another CA
        args = [] if client is None else ["--cert", str(certs / f"{client}.pem"), "--key", str(certs / f"{client}.key")]
        refused = https_curl(srv, *args, "-w", "%{http_code}", "-o", "/dev/null", f"{srv.url}/healthz")
        assert refused.returncode != 0 and refused.stdout in (b"000", b""), (client, refused)
    assert _wait_for(lambda: "did not return a certificate" in srv.logs() or "certificate required" in srv.logs())
    assert _wait_for(lambda: "certificate verify failed" in srv.logs()), srv.logs()[-2000:]
    srv.assert_healthy()


def test_sighup_reloads_the_certificate_and_keeps_open_connections(tls_factory, certs: Path, tmp_path: Path) -> None:
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(certs / "server.pem", live / "cert.pem")
    shutil.copy(certs / "server.key", live / "key.pem")
    srv = tls_factory({"SESSION_VAULT_TLS_CERT_FILE": str(live / "cert.pem"),
                       "SESSION_VAULT_TLS_KEY_FILE": str(live / "key.pem")})

    def served_serial() -> str:
        with srv.raw() as conn:
            der = conn.sock.getpeercert(binary_form=True)
        return subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                              stdout=subprocess.PIPE, timeout=30).stdout.decode().strip()

    def file_serial(name: str) -> str:
        return subprocess.run(["openssl", "x509", "-in", str(certs / name), "-noout", "-serial"],
                              stdout=subprocess.PIPE, timeout=30).stdout.decode().strip()

    assert served_serial() == file_serial("server.pem")
    with srv.raw() as old:
        old.send(build_request("GET", "/healthz", host=f"{LOOPBACK}:{srv.port}"))
        assert old.read_response(timeout=10).status == 200
        # A new pair: new connections get it, the open one goes on.
        shutil.copy(certs / "server2.pem", live / "cert.pem")
        shutil.copy(certs / "server2.key", live / "key.pem")
        srv.send_signal(signal.SIGHUP)
        assert _wait_for(lambda: "TLS certificate and key reloaded" in srv.logs()), srv.logs()[-2000:]
        assert served_serial() == file_serial("server2.pem")
        old.send(build_request("GET", "/healthz", host=f"{LOOPBACK}:{srv.port}"))
        assert old.read_response(timeout=10).status == 200
        # A bad pair (the key of another certificate): refused, the pair in use kept.
        shutil.copy(certs / "server.key", live / "key.pem")
        srv.send_signal(signal.SIGHUP)
        assert _wait_for(lambda: "TLS reload refused" in srv.logs()), srv.logs()[-2000:]
        assert served_serial() == file_serial("server2.pem")
        old.send(build_request("GET", "/healthz", host=f"{LOOPBACK}:{srv.port}"))
        assert old.read_response(timeout=10).status == 200
    assert srv.alive()
    _assert_no_key_bytes(srv, certs)


def test_sighup_reloads_under_load_without_a_failed_request(tls_factory, certs: Path, tmp_path: Path) -> None:
    # Issue 20: "a reload test swaps certificates under load with no failed request". Four client
    # threads for about three seconds: two open a new connection (a full handshake) per request,
    # two keep one connection alive and send request after request on it. Meanwhile the pair is
    # swapped five times (server, server2, server, ...), each with SIGHUP. Every request must get
    # its 200; every handshake must present one of the two certificates; after each reload a new
    # handshake presents the new one; and the new-connection threads see both.
    import hashlib
    import threading

    live = tmp_path / "live"
    live.mkdir()
    pairs = ["server", "server2"]

    def install(name: str) -> None:  # each file replaced atomically; SIGHUP only after both
        for suffix, target in ((".pem", "cert.pem"), (".key", "key.pem")):
            shutil.copy(certs / f"{name}{suffix}", live / f"{target}.tmp")
            (live / f"{target}.tmp").replace(live / target)

    def fingerprint(der: bytes) -> str:
        return hashlib.sha256(der).hexdigest()

    expected = {fingerprint(ssl.PEM_cert_to_DER_cert((certs / f"{name}.pem").read_text())): name for name in pairs}
    install("server")
    srv = tls_factory({"SESSION_VAULT_TLS_CERT_FILE": str(live / "cert.pem"),
                       "SESSION_VAULT_TLS_KEY_FILE": str(live / "key.pem"),
                       "SESSION_VAULT_LOG_LEVEL": "info"})
    host = f"{LOOPBACK}:{srv.port}"
    context = client_context(certs)  # one context for every client connection (thread-safe)
    stop = threading.Event()
    lock = threading.Lock()
    failures: list[str] = []
    answered = [0, 0, 0, 0]
    seen: list[set[str]] = [set(), set(), set(), set()]

    def served_by(conn: TLSRawConnection) -> str:
        der = conn.sock.getpeercert(binary_form=True)
        return expected.get(fingerprint(der), "unknown certificate")

    def new_connection_per_request(slot: int) -> None:
        while not stop.is_set():
            try:
                with TLSRawConnection(srv.port, context=context, timeout=10) as conn:
                    seen[slot].add(served_by(conn))
                    conn.send(build_request("GET", "/healthz", host=host, headers=[("Connection", "close")]))
                    status = conn.read_response(timeout=10).status
            except Exception as error:  # every failure is recorded, none ends the loop silently
                status = f"{type(error).__name__}: {error}"
            with lock:
                if status == 200:
                    answered[slot] += 1
                else:
                    failures.append(f"new connection: {status}")

    def keep_alive(slot: int) -> None:
        conn: TLSRawConnection | None = None
        try:
            while not stop.is_set():
                try:
                    if conn is None:
                        conn = TLSRawConnection(srv.port, context=context, timeout=10)
                        seen[slot].add(served_by(conn))
                    conn.send(build_request("GET", "/healthz", host=host))
                    response = conn.read_response(timeout=10)
                    status = response.status
                    if "close" in response.connection_tokens():  # the per-connection request cap
                        conn.close()
                        conn = None
                except Exception as error:
                    status = f"{type(error).__name__}: {error}"
                    if conn is not None:
                        conn.close()
                    conn = None
                with lock:
                    if status == 200:
                        answered[slot] += 1
                    else:
                        failures.append(f"keep-alive: {status}")
        finally:
            if conn is not None:
                conn.close()

    threads = [threading.Thread(target=new_connection_per_request, args=(0,)),
               threading.Thread(target=new_connection_per_request, args=(1,)),
               threading.Thread(target=keep_alive, args=(2,)),
               threading.Thread(target=keep_alive, args=(3,))]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.4)
        for reload in range(1, 6):  # five swaps, about half a second apart
            name = pairs[reload % 2]
            install(name)
            srv.send_signal(signal.SIGHUP)
            assert _wait_for(lambda: srv.logs().count("TLS certificate and key reloaded") == reload), srv.logs()[-2000:]
            with srv.raw(timeout=10) as probe:
                assert served_by(probe) == name, reload
            time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == [], failures[:10]
    assert all(count > 0 for count in answered), answered
    assert seen[0] | seen[1] == set(pairs), seen
    assert all(s <= set(pairs) for s in seen), seen
    assert "TLS reload refused" not in srv.logs()
    srv.assert_healthy()


def test_bad_certificate_or_key_exits_78_without_the_key(tmp_path: Path, certs: Path) -> None:
    from conftest import binary_path
    cases = [
        ({"SESSION_VAULT_TLS_CERT_FILE": str(certs / "server.key"), "SESSION_VAULT_TLS_KEY_FILE": str(certs / "server.key")},
         "SESSION_VAULT_TLS_CERT_FILE"),
        ({"SESSION_VAULT_TLS_CERT_FILE": str(certs / "server.pem"), "SESSION_VAULT_TLS_KEY_FILE": str(certs / "client.key")},
         "key values mismatch"),
        ({"SESSION_VAULT_TLS_CERT_FILE": str(certs / "server.pem"), "SESSION_VAULT_TLS_KEY_FILE": str(tmp_path / "missing")},
         "cannot be read"),
        ({"SESSION_VAULT_TLS_CERT_FILE": str(certs / "server.pem")}, "without SESSION_VAULT_TLS_KEY_FILE"),
    ]
    for env, expected in cases:
        completed = subprocess.run([str(binary_path()), "serve", "--dev", "--listen", f"{LOOPBACK}:0"],
                                   env={"PATH": "/usr/bin:/bin", **env}, cwd=tmp_path,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        output = (completed.stdout + completed.stderr).decode("utf-8", "replace")
        assert completed.returncode == 78, (env, output)
        assert expected in output, output
        for key in ("server.key", "client.key"):
            for line in (certs / key).read_text().splitlines():
                if "-----" not in line:
                    assert line not in output


@pytest.mark.parametrize("trusted,expected", [(None, "127.0.0.1"), ("127.0.0.0/8", "203.0.113.7"),
                                              ("10.0.0.0/8", "127.0.0.1")])
def test_x_forwarded_for_only_from_trusted_proxies(tls_factory, trusted: str | None, expected: str) -> None:
    token = new_root_token()
    env = {"SESSION_VAULT_ROOT_TOKEN": token, "SESSION_VAULT_STORAGE": "memory", "SESSION_VAULT_MASTER_KEY": new_master_key()}
    if trusted:
        env["SESSION_VAULT_TRUSTED_PROXIES"] = f"{trusted}, ::1"
    srv = tls_factory(env, test_routes=False)
    # The leftmost entry is the client's own claim; the proxy appended what it saw.
    forwarded = ["-H", "X-Forwarded-For: 198.51.100.1, 203.0.113.7"]
    session = pyrogram_current_cases()[0]["string"]
    created = https_curl(srv, "-H", f"Authorization: Bearer {token}", *forwarded, "-H", "Content-Type: application/json",
                         "--data", json.dumps({"name": "mybot", "session_string": session}), "-o", "/dev/null",
                         "-w", "%{http_code}", f"{srv.url}/v1/sessions")
    assert created.stdout == b"201", created
    denied = https_curl(srv, "-H", "Authorization: Bearer svt_wrong", *forwarded, "-o", "/dev/null",
                        f"{srv.url}/v1/sessions/mybot")
    assert denied.returncode == 0
    audit = json.loads(https_curl(srv, "-H", f"Authorization: Bearer {token}", f"{srv.url}/v1/audit?limit=100").stdout)
    events = audit["items"]
    creates = [e for e in events if e["action"] == "session.create" and e["session"] == "mybot"]
    assert creates and all(e["remote_address"] == expected for e in creates), events
    assert len(creates) == 1
    srv.stop(expect_exit=0)


def test_tls_requests_drain_on_sigterm(tls_factory) -> None:
    srv = tls_factory()
    with srv.raw() as conn:
        conn.send(build_request("GET", "/_test/slow?ms=800", host=f"{LOOPBACK}:{srv.port}"))
        time.sleep(0.3)  # let the server read the slow request before the signal (as the plain drain test)
        srv.send_signal(signal.SIGTERM)
        response = conn.read_response(timeout=10)
        assert response.status == 200 and "close" in response.connection_tokens()
    assert srv.wait(15) == 0


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def _wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # bounded poll of an observable condition
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def _assert_no_key_bytes(srv: Server, certs: Path) -> None:
    logs = srv.logs()
    for key in ("server.key", "server2.key"):
        for line in (certs / key).read_text().splitlines():
            if "-----" not in line:
                assert line not in logs, f"a line of {key} is in the logs"
