# SPDX-License-Identifier: Apache-2.0
"""Helpers for the API end-to-end suite: a vault process with known secrets and a small client.

`VaultProcess` wraps the harness `Server` (Tests/integration/conftest.py) with the env a real
deployment uses (file or memory storage, master key, root token), and `Client` sends one request
per fresh loopback connection, recording every error body and /metrics body so the secret scan
can look at everything the service ever said.

The suite's matrix (matrix.py) applies here: in the https mode a `VaultProcess` (and `api_server`)
serves TLS and the harness connects with TLS; in the postgres mode the `file` and `memory` stores
are a PostgreSQL database of the vault's own. `storage_env`, `stored_material`, `logical_dump`,
`sql_rows` and `sql_execute` give tests the same view of the store on either engine.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from api import matrix
from conftest import REPO_ROOT, Response, Server, binary_path, free_port, _SCRUBBED_ENV_NAMES, _SCRUBBED_ENV_PREFIXES

VECTORS = REPO_ROOT / "Tests" / "VaultCoreTests" / "Vectors"
SESSION_FILES = VECTORS / "sessions"
PROBLEM_JSON = "application/problem+json"


# --------------------------------------------------------------------------
# Vectors
# --------------------------------------------------------------------------

def session_strings() -> list[dict[str, Any]]:
    return json.loads((VECTORS / "session_strings.json").read_text())


def invalid_session_strings() -> list[dict[str, Any]]:
    return json.loads((VECTORS / "invalid_session_strings.json").read_text())


def string_case(case_id: str) -> dict[str, Any]:
    for case in session_strings():
        if case["id"] == case_id:
            return case
    raise KeyError(case_id)


def pyrogram_current_cases() -> list[dict[str, Any]]:
    """Current-format pyrogram strings that round-trip (api_id 0 is read as "unknown")."""
    return [c for c in session_strings()
            if c["string_length"] == 362 and c["library"] == "pyrogram" and c["fields"]["api_id"] > 0]


def telethon_cases() -> list[dict[str, Any]]:
    return [c for c in session_strings() if c["format_name"].startswith("telethon")]


def session_file_vectors() -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in sorted(SESSION_FILES.glob("*.session")):
        out.append((path, json.loads(path.with_suffix(".json").read_text())))
    return out


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def pyrogram_fields(text: str) -> dict[str, Any]:
    """Decodes a current Pyrogram string (`>BI?256sQ?`)."""
    raw = b64url_decode(text)
    assert len(raw) == 271, len(raw)
    return {
        "dc_id": raw[0], "api_id": int.from_bytes(raw[1:5], "big"), "test_mode": bool(raw[5]),
        "auth_key": raw[6:262], "user_id": int.from_bytes(raw[262:270], "big"), "is_bot": bool(raw[270]),
    }


# --------------------------------------------------------------------------
# Client
# --------------------------------------------------------------------------

@dataclass
class Reply:
    """A response plus convenience accessors."""

    response: Response
    method: str
    target: str

    @property
    def status(self) -> int:
        return self.response.status

    @property
    def body(self) -> bytes:
        return self.response.body

    @property
    def text(self) -> str:
        return self.response.text

    def header(self, name: str) -> str | None:
        return self.response.header(name)

    @property
    def content_type(self) -> str:
        return (self.header("Content-Type") or "").split(";")[0].strip().lower()

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<{self.method} {self.target} -> {self.response!r}>"


class Recorder:
    """Everything the service said that must never hold a secret."""

    def __init__(self) -> None:
        self.error_bodies: list[bytes] = []
        self.metrics_bodies: list[bytes] = []
        self.other_bodies: list[bytes] = []  # non-secret 2xx bodies (metadata, lists, audit)


class Client:
    """One request per fresh connection to a `Server`, bearer token by default."""

    def __init__(self, server: Server, token: str | None, recorder: Recorder | None = None):
        self.server = server
        self.token = token
        self.recorder = recorder or Recorder()

    def with_token(self, token: str | None) -> "Client":
        return Client(self.server, token, self.recorder)

    def call(self, method: str, target: str, *, json_body: Any = None, body: bytes | None = None,
             content_type: str | None = None, headers: Mapping[str, str] | None = None,
             token: str | None | type(...) = ..., timeout: float = 20.0) -> Reply:
        pairs: list[tuple[str, str]] = []
        use = self.token if token is ... else token
        if use is not None:
            pairs.append(("Authorization", f"Bearer {use}"))
        if json_body is not None:
            body = json.dumps(json_body).encode()
            content_type = content_type or "application/json"
        if content_type is not None:
            pairs.append(("Content-Type", content_type))
        if body is not None and not body:
            pairs.append(("Content-Length", "0"))
        pairs += list((headers or {}).items())
        response = self.server.request(method, target, headers=pairs, body=body or b"", timeout=timeout)
        reply = Reply(response, method, target)
        if response.status >= 400:
            self.recorder.error_bodies.append(response.body)
        elif target.startswith("/metrics"):
            self.recorder.metrics_bodies.append(response.body)
        elif "/export" not in target and not (method == "POST" and target == "/v1/tokens") \
                and not (method == "POST" and target.split("?")[0].endswith("/lease")):
            # Everything but exports and the one-time token and lease-id replies must be free of secrets.
            self.recorder.other_bodies.append(response.body)
        return reply

    # Shorthands
    def get(self, target: str, **kw: Any) -> Reply:
        return self.call("GET", target, **kw)

    def post(self, target: str, json_body: Any = None, **kw: Any) -> Reply:
        return self.call("POST", target, json_body=json_body, **kw)

    def patch(self, target: str, json_body: Any = None, **kw: Any) -> Reply:
        return self.call("PATCH", target, json_body=json_body, **kw)

    def put(self, target: str, json_body: Any = None, **kw: Any) -> Reply:
        return self.call("PUT", target, json_body=json_body, **kw)

    def delete(self, target: str, **kw: Any) -> Reply:
        return self.call("DELETE", target, **kw)

    # Domain helpers
    def create_string(self, name: str, session_string: str, **fields: Any) -> Reply:
        return self.post("/v1/sessions", {"name": name, "session_string": session_string, **fields})

    def upload(self, name: str, data: bytes, content_type: str = "application/vnd.sqlite3") -> Reply:
        return self.call("POST", f"/v1/sessions?name={name}", body=data, content_type=content_type)

    def export(self, name: str, fmt: str | None = None, **kw: Any) -> Reply:
        target = f"/v1/sessions/{name}/export" + (f"?format={fmt}" if fmt else "")
        return self.get(target, **kw)

    def create_token(self, **spec: Any) -> dict[str, Any]:
        reply = self.post("/v1/tokens", spec)
        assert reply.status == 201, reply
        return reply.json()

    def list_all_sessions(self) -> list[dict[str, Any]]:
        items, after = [], None
        for _ in range(100):
            target = "/v1/sessions?limit=1000" + (f"&after={after}" if after else "")
            reply = self.get(target)
            assert reply.status == 200, reply
            page = reply.json()
            items += page["items"]
            after = page["next_after"]
            if after is None:
                return items
        raise AssertionError("pagination did not end")

    def audit(self, limit: int = 1000) -> list[dict[str, Any]]:
        reply = self.get(f"/v1/audit?limit={limit}")
        assert reply.status == 200, reply
        return reply.json()["items"]


def expect_problem(reply: Reply, status: int, field: str | None = None) -> dict[str, Any]:
    """`reply` is an RFC 9457 problem with `status` whose `field` (or `missing_fields`) names `field`."""
    assert reply.status == status, f"expected {status}: {reply!r}"
    assert reply.content_type == PROBLEM_JSON, f"not problem+json: {reply!r}"
    problem = reply.json()
    for key in ("type", "title", "status", "detail"):
        assert key in problem, f"problem without {key}: {problem}"
    assert problem["status"] == status, problem
    if field is not None:
        named = [problem.get("field")] + list(problem.get("missing_fields", []))
        assert field in named, f"problem does not name {field!r}: {problem}"
        if status in (400, 412, 413, 415, 422):
            assert field in problem["detail"], f"detail does not mention {field!r}: {problem}"
    return problem


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------

def new_master_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def new_root_token() -> str:
    return "svt_" + secrets.token_urlsafe(32)


class VaultProcess:
    """A session-vault with a fixed workdir, storage, master key and root token, restartable.

    `storage` is a kind, "file" (vault.db in the workdir's data folder) or "memory", which the
    matrix may map to a PostgreSQL database of this vault's own (made at the first start, kept
    across restarts, dropped by `dispose`), or an explicit SESSION_VAULT_STORAGE value, used as is.
    """

    def __init__(self, workdir: Path, *, storage: str = "file", master_key: str | None = None,
                 root_token: str | None = None, env: Mapping[str, str] | None = None,
                 args: Iterable[str] = ()):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.db_path = self.data_dir / "vault.db"
        self.storage = storage
        self.database: str | None = None  # the PostgreSQL database when the matrix maps `storage`
        self.master_key = master_key if master_key is not None else new_master_key()
        self.root_token = root_token if root_token is not None else new_root_token()
        self.extra_env = dict(env or {})
        self.args = list(args)
        self.server: Server | None = None
        self.recorder = Recorder()
        self.generation = 0

    @property
    def engine(self) -> str:
        """The engine the vault runs on, as /metrics and /readyz name it: file, memory or postgres."""
        if matrix.maps(self.storage) or self.storage.startswith(("postgres://", "postgresql://")):
            return "postgres"
        if self.storage.startswith("file:"):
            return "file"
        return self.storage

    def storage_env(self) -> dict[str, str]:
        """SESSION_VAULT_STORAGE (with the database password file on PostgreSQL): what `serve` and
        a CLI command run against this vault's store need."""
        if matrix.maps(self.storage):
            cluster = matrix.cluster()
            if self.database is None:
                self.database = cluster.create_database()
            return {"SESSION_VAULT_STORAGE": cluster.url_of(self.database),
                    "SESSION_VAULT_DATABASE_PASSWORD_FILE": str(cluster.password_file)}
        if self.storage == "file":
            return {"SESSION_VAULT_STORAGE": f"file:{self.db_path}"}
        return {"SESSION_VAULT_STORAGE": self.storage}

    def env(self) -> dict[str, str]:
        env = self.storage_env()
        if self.master_key:
            env["SESSION_VAULT_MASTER_KEY"] = self.master_key
        if self.root_token:
            env["SESSION_VAULT_ROOT_TOKEN"] = self.root_token
        tls = matrix.tls()
        if tls is not None:
            env.update(tls.server_env())
        env.update(self.extra_env)
        return env

    def start(self) -> "VaultProcess":
        assert self.server is None or not self.server.alive()
        # Each start gets its own log files (the scan reads them all).
        run_dir = self.workdir / f"run{self.generation}"
        self.generation += 1
        tls = matrix.tls()
        server = Server(run_dir, env=self.env(), args=self.args, test_routes=False,
                        tls=tls.context if tls is not None else None)
        server.workdir = self.workdir  # cwd: the vault's own folder (relative defaults land here)
        server.stdout_path = run_dir / "stdout.log"
        server.stderr_path = run_dir / "stderr.log"
        self.server = server
        server.start()
        return self

    @property
    def client(self) -> Client:
        assert self.server is not None
        return Client(self.server, self.root_token, self.recorder)

    def stop(self, expect_exit: int | None = 0) -> int | None:
        assert self.server is not None
        return self.server.stop(expect_exit=expect_exit)

    def sigkill(self) -> None:
        assert self.server is not None and self.server.proc is not None
        self.server.proc.send_signal(signal.SIGKILL)
        self.server.proc.wait(timeout=10)

    def kill(self) -> None:
        if self.server is not None:
            self.server.kill()

    def dispose(self) -> None:
        """Kills the process if it still runs and drops the vault's PostgreSQL database, if any."""
        self.kill()
        if self.database is not None:
            matrix.cluster().drop_database(self.database)
            self.database = None

    def log_files(self) -> list[Path]:
        return sorted(self.workdir.glob("run*/std*.log"))

    # -- the store, on whichever engine ----------------------------------------
    def stored_material(self) -> list[tuple[str, bytes]]:
        """Everything the store keeps, for secret scans: vault.db with its WAL, SHM and journal
        (file); a pg_dump and the on-disk pages of the database's relations (postgres); nothing
        (memory). Read it with the vault stopped."""
        if self.engine == "postgres":
            assert self.database is not None, "only a vault the matrix put on PostgreSQL has its database here"
            cluster = matrix.cluster()
            return [("pg_dump", cluster.dump(self.database))] + cluster.relation_files(self.database)
        if self.engine == "file":
            out = []
            for suffix in ("", "-wal", "-shm", "-journal"):
                path = Path(str(self.db_path) + suffix)
                if path.exists():
                    out.append((path.name, path.read_bytes()))
            return out
        return []

    def logical_dump(self) -> bytes:
        """The store's logical content (schema and rows), independent of page layout."""
        if self.engine == "postgres":
            assert self.database is not None
            return matrix.cluster().logical_dump(self.database)
        assert self.engine == "file", self.engine
        return "\n".join(sqlite_dump(self.db_path)).encode()

    def sql_rows(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of one query on the stopped vault's store (SQL both engines read alike)."""
        if self.engine == "postgres":
            assert self.database is not None
            return matrix.cluster().rows(self.database, sql)
        assert self.engine == "file", self.engine
        con = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def sql_execute(self, sql: str) -> int:
        """Runs one UPDATE/DELETE on the stopped vault's store; returns the rows it changed."""
        if self.engine == "postgres":
            assert self.database is not None
            return matrix.cluster().execute(self.database, sql)
        assert self.engine == "file", self.engine
        con = sqlite3.connect(str(self.db_path))
        try:
            changed = con.execute(sql).rowcount
            con.commit()
            return changed
        finally:
            con.close()


def api_server(workdir: Path, **kwargs: Any) -> Server:
    """A harness `Server` for the API suite's own configurations (a data folder, --dev, ...), not
    started: in the https mode with the test certificate and a TLS client."""
    tls = matrix.tls()
    if tls is not None:
        kwargs["env"] = {**tls.server_env(), **dict(kwargs.get("env") or {})}
        kwargs["tls"] = tls.context
    return Server(workdir, **kwargs)


def run_to_exit(env: Mapping[str, str], args: Iterable[str], cwd: Path, timeout: float = 30.0) -> subprocess.CompletedProcess[bytes]:
    """Runs `session-vault serve` expecting it to exit by itself (bounded)."""
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(_SCRUBBED_ENV_PREFIXES) and k not in _SCRUBBED_ENV_NAMES}
    full["HOME"] = str(cwd)
    full.update(env)
    return subprocess.run([str(binary_path()), "serve", *args], cwd=cwd, env=full, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def sqlite_dump(path: Path) -> list[str]:
    """Logical content of an SQLite file (schema and rows), independent of page layout."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def sqlite_rows(data: bytes, tmp: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of `sql` over an in-memory copy of an exported `.session` file."""
    path = tmp / f"export-{secrets.token_hex(4)}.session"
    path.write_bytes(data)
    con = sqlite3.connect(str(path))
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
