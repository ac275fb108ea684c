# SPDX-License-Identifier: Apache-2.0
"""Start the real session-vault binary on loopback and talk to it with urllib (stdlib only).

API assumptions (openapi.yaml; listed again in the interop report so the API author can
match them):

* ``session-vault serve --dev --listen 127.0.0.1:PORT`` serves HTTP/1.1 on that address.
  Env: ``SESSION_VAULT_ROOT_TOKEN`` (we choose it), ``SESSION_VAULT_MASTER_KEY`` (base64 of 32
  random bytes), ``SESSION_VAULT_STORAGE=memory``. If the vault prints a line containing
  ``root token:`` on stderr, the token after it wins (dev mode may generate its own).
* ``GET /healthz`` → 200 once the vault is serving (used only to wait for start-up).
* Everything under ``/v1`` takes ``Authorization: Bearer <root token>``.
* ``POST /v1/sessions`` JSON ``{"name", "session_string"}`` → 201; ``POST /v1/sessions?name=N``
  with ``Content-Type: application/vnd.sqlite3`` and the file bytes → 201.
* ``GET /v1/sessions/{name}`` → 200 JSON metadata (``dc_id``, ``api_id``, ``test_mode``,
  ``user_id``, ``is_bot``, ``server_address``, ``port``, ``auth_key_id``) + ``ETag``.
* ``PATCH /v1/sessions/{name}`` JSON fields + ``If-Match: <ETag>`` → 200 (or 204).
* ``GET /v1/sessions/{name}/export?format=F`` → 200 ``text/plain`` (strings) or
  ``application/vnd.sqlite3`` (files); 422 ``application/problem+json`` naming the missing
  field in ``detail`` or in an ``errors`` / ``missing_fields`` member.
* ``session-vault inspect PATH`` reads a session file without changing it or its directory.
"""

import base64
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import harness

SQLITE_TYPE = "application/vnd.sqlite3"
# Never route loopback calls through an http_proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, {k.lower(): v for k, v in headers.items()}, body

    @property
    def content_type(self):
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def text(self):
        return self.body.decode("utf-8")

    def __repr__(self):
        preview = self.body[:300] if self.content_type != SQLITE_TYPE else f"<{len(self.body)} bytes>"
        return f"<HTTP {self.status} {self.content_type} {preview!r}>"


class Vault:
    def __init__(self, base_url, token, process=None, log_path=None, binary=None):
        self.base_url, self.token, self.process, self.log_path, self.binary = (
            base_url, token, process, log_path, binary)

    def request(self, method, path, body=None, headers=None, json_body=None, auth=True, timeout=30):
        headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode("utf-8")
            headers.setdefault("Content-Type", "application/json")
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base_url + path, data=body, method=method, headers=headers)
        try:
            with _OPENER.open(req, timeout=timeout) as resp:
                return Response(resp.status, dict(resp.headers), resp.read())
        except urllib.error.HTTPError as err:
            return Response(err.code, dict(err.headers), err.read())

    # -- the calls the matrix makes ---------------------------------------------------------

    def import_string(self, name, string):
        return self.request("POST", "/v1/sessions", json_body={"name": name, "session_string": string})

    def import_file(self, name, data):
        return self.request("POST", "/v1/sessions?name=" + urllib.parse.quote(name), body=data,
                            headers={"Content-Type": SQLITE_TYPE})

    def metadata(self, name):
        return self.request("GET", "/v1/sessions/" + urllib.parse.quote(name))

    def patch(self, name, fields, etag):
        headers = {"If-Match": etag} if etag else {}
        return self.request("PATCH", "/v1/sessions/" + urllib.parse.quote(name), json_body=fields, headers=headers)

    def export(self, name, fmt):
        return self.request("GET", f"/v1/sessions/{urllib.parse.quote(name)}/export?format={fmt}")

    def log_tail(self, n=4000):
        try:
            return pathlib.Path(self.log_path).read_text(errors="replace")[-n:]
        except (OSError, TypeError):
            return ""


def find_binary():
    explicit = os.environ.get("SESSION_VAULT_BIN")
    if explicit:
        return explicit
    default = harness.REPO / ".build" / "debug" / "session-vault"
    return str(default) if default.exists() else None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, log_path, startup_timeout=60):
    """Start ``binary serve --dev`` on a free loopback port; return a ready ``Vault``."""
    token = "interop-" + base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
    env = dict(os.environ)
    env.update(
        SESSION_VAULT_ROOT_TOKEN=token,
        SESSION_VAULT_MASTER_KEY=base64.b64encode(os.urandom(32)).decode(),
        SESSION_VAULT_STORAGE="memory",
    )
    env.pop("PORT", None)
    if binary.endswith(".py"):  # the reference fake vault (fake_vault.py) for harness self-tests
        argv = [sys.executable, binary]
    else:
        argv = [binary]
    last_error = None
    for _attempt in range(3):  # a free port can be taken between probe and bind
        port = _free_port()
        log = open(log_path, "ab")
        proc = subprocess.Popen(argv + ["serve", "--dev", "--listen", f"127.0.0.1:{port}"], env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.PIPE)
        printed = {}

        def pump(stream=proc.stderr, sink=log, found=printed):
            for line in iter(stream.readline, b""):
                sink.write(line)
                sink.flush()
                text = line.decode("utf-8", "replace")
                if "root token:" in text and "token" not in found:
                    rest = text.split("root token:", 1)[1].strip().split()
                    if rest:
                        found["token"] = rest[0]

        threading.Thread(target=pump, daemon=True).start()
        vault = Vault(f"http://127.0.0.1:{port}", token, proc, log_path, binary)
        deadline = time.monotonic() + startup_timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if vault.request("GET", "/healthz", auth=False, timeout=2).status == 200:
                    if "token" in printed:
                        vault.token = printed["token"]
                    return vault
            except OSError as exc:
                last_error = exc
            time.sleep(0.1)  # polling start-up, not synchronising test steps
        stop(vault)
        last_error = last_error or RuntimeError(f"vault exited with {proc.returncode}")
    raise RuntimeError(f"session-vault did not become ready: {last_error}\n{Vault(None, None, None, log_path).log_tail()}")


def stop(vault):
    proc = vault.process
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
