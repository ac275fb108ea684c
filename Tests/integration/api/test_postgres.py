# SPDX-License-Identifier: Apache-2.0
"""Several vault instances on one PostgreSQL database behave as one vault (real binaries on
loopback, a throwaway cluster from scripts/pg.sh). Skipped when PostgreSQL is not installed."""

from __future__ import annotations

import concurrent.futures
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from api.vault import VaultProcess, new_master_key, new_root_token, pyrogram_current_cases

ROOT = Path(__file__).resolve().parents[3]
PG_SH = ROOT / "scripts" / "pg.sh"
CASES = pyrogram_current_cases()

pytestmark = pytest.mark.skipif(
    not any(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")) or shutil.which("psql") is None,
    reason="PostgreSQL is not installed (apt-get install postgresql)")


class Cluster:
    def __init__(self, folder: Path):
        self.folder = folder
        self.url = self.start()
        self.password_file = folder / "password"

    def start(self) -> str:
        out = subprocess.run(["bash", str(PG_SH), "start", str(self.folder)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().splitlines()[-1]

    def stop(self) -> None:
        subprocess.run(["bash", str(PG_SH), "stop", str(self.folder)], check=True, capture_output=True)

    def psql(self, database: str, *args: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, PGPASSWORD=self.password_file.read_text().strip())
        base = self.url.rsplit("/", 1)[0]
        return subprocess.run(["psql", f"{base}/{database}", "-qAt", "-v", "ON_ERROR_STOP=1", *args],
                              check=True, capture_output=True, env=env)

    def new_database(self) -> str:
        name = "t_" + secrets.token_hex(6)
        self.psql("postgres", "-c", f"CREATE DATABASE {name}")
        return self.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # Directly under /tmp: as root the server runs as `postgres`, which cannot enter pytest's
    # private temporary folders.
    folder = Path(tempfile.mkdtemp(prefix="sv-pg-"))
    c = Cluster(folder)
    yield c
    subprocess.run(["bash", str(PG_SH), "destroy", str(folder)], capture_output=True)


@pytest.fixture
def pair(cluster: Cluster, vault_factory) -> tuple[VaultProcess, VaultProcess, str]:
    """Two instances (same master key and root token) on one fresh database."""
    url = cluster.new_database()
    key, token = new_master_key(), new_root_token()
    env = {"SESSION_VAULT_DATABASE_PASSWORD_FILE": str(cluster.password_file)}
    a = vault_factory("a", storage=url, master_key=key, root_token=token, env=env).start()
    b = vault_factory("b", storage=url, master_key=key, root_token=token, env=env).start()
    return a, b, url


def test_a_create_on_one_is_exported_by_the_other_and_a_revoke_is_410_at_once(pair) -> None:
    a, b, _ = pair
    assert a.client.create_string("shared", CASES[0]["string"]).status == 201
    assert b.client.export("shared").text == CASES[0]["string"]
    assert a.client.delete("/v1/sessions/shared").status in (200, 204)
    assert b.client.export("shared").status == 410


def test_a_token_revoked_on_one_is_refused_by_the_other_within_a_second(pair) -> None:
    a, b, _ = pair
    assert a.client.create_string("alpha", CASES[0]["string"]).status == 201
    token = a.client.create_token(operations=["export"], sessions=["alpha"])
    scoped_b = b.client.with_token(token["token"])
    assert scoped_b.export("alpha").status == 200  # now cached by B
    assert a.client.delete(f"/v1/tokens/{token['accessor']}").status == 204
    revoked_at = time.monotonic()
    while scoped_b.export("alpha").status != 401:
        assert time.monotonic() - revoked_at < 1.5, "B still accepts a token revoked on A"
        time.sleep(0.05)
    assert time.monotonic() - revoked_at <= 1.5


def test_a_rotation_on_one_is_used_by_the_other(pair) -> None:
    a, b, _ = pair
    assert b.client.get("/v1/sys/status").json()["keys"]["current_term"] == 1  # B has read term 1
    assert a.client.post("/v1/sys/rotate").json()["current_term"] == 2
    assert a.client.create_string("after-rotation", CASES[1]["string"]).status == 201
    assert b.client.export("after-rotation").text == CASES[1]["string"]


def test_audit_rows_come_from_both_instances(pair) -> None:
    a, b, _ = pair
    assert a.client.create_string("audited", CASES[0]["string"]).status == 201
    assert b.client.export("audited").status == 200
    deadline = time.monotonic() + 10
    while True:
        actions = {e["action"] for e in a.client.audit() if e.get("session") == "audited"}
        if {"session.create", "session.export"} <= actions:
            break
        assert time.monotonic() < deadline, actions
        time.sleep(0.1)


def test_a_thousand_concurrent_creates_over_both_instances_are_all_there(pair) -> None:
    a, b, _ = pair
    clients = [a.client, b.client]

    def create(i: int) -> int:
        return clients[i % 2].create_string(f"bulk-{i:04d}", CASES[i % len(CASES)]["string"]).status

    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(create, range(1000)))
    assert statuses == [201] * 1000
    names = {s["name"] for s in b.client.list_all_sessions()}
    assert {f"bulk-{i:04d}" for i in range(1000)} <= names
    for i in range(0, 1000, 37):
        assert clients[(i + 1) % 2].export(f"bulk-{i:04d}").text == CASES[i % len(CASES)]["string"]


def test_a_database_outage_gives_clean_503s_and_loses_nothing_acknowledged(cluster: Cluster, vault_factory) -> None:
    url = cluster.new_database()
    env = {"SESSION_VAULT_DATABASE_PASSWORD_FILE": str(cluster.password_file)}
    v = vault_factory("outage", storage=url, env=env).start()
    c = v.client
    acknowledged: list[str] = []
    statuses: set[int] = set()

    def burst(prefix: str, n: int) -> None:
        for i in range(n):
            name = f"{prefix}-{i}"
            status = c.create_string(name, CASES[0]["string"]).status
            statuses.add(status)
            if status == 201:
                acknowledged.append(name)

    burst("before", 20)
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        load = [pool.submit(burst, f"during{k}", 40) for k in range(4)]
        cluster.stop()
        # While it is down: clean 503s, liveness stays up, readiness says why.
        down = c.create_string("while-down", CASES[0]["string"])
        assert down.status == 503, down
        assert down.content_type == "application/problem+json"
        assert c.get("/healthz").status == 200
        ready = c.get("/readyz")
        assert ready.status == 503 and ready.json()["ready"] is False
        assert ready.json().get("writable_reason"), ready.json()
        assert c.export("before-0").status == 503
        cluster.start()
        for f in load:
            f.result()
    assert statuses <= {201, 503}, statuses
    # Serving again without a restart, within 30 s of the database's return.
    deadline = time.monotonic() + 30
    while c.get("/readyz").status != 200:
        assert time.monotonic() < deadline, "not ready 30 s after the database came back"
        time.sleep(0.2)
    burst("after", 20)
    assert v.server is not None and v.server.alive()
    names = {s["name"] for s in c.list_all_sessions()}
    missing = [n for n in acknowledged if n not in names]
    assert not missing, missing
    assert c.export("after-0").text == CASES[0]["string"]


def test_a_dump_of_the_database_holds_no_secret_in_plaintext(pair, cluster: Cluster) -> None:
    a, b, url = pair
    token = a.client.create_token(operations=["export"], sessions=["dump0"])
    for i, case in enumerate(CASES[:4]):
        assert [a, b][i % 2].client.create_string(f"dump{i}", case["string"]).status == 201
    assert b.client.with_token(token["token"]).export("dump0").status == 200
    assert a.client.delete("/v1/sessions/dump1").status in (200, 204)
    env = dict(os.environ, PGPASSWORD=cluster.password_file.read_text().strip())
    pg_dump = next(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"), None) or shutil.which("pg_dump")
    dump = subprocess.run([str(pg_dump), url], check=True, capture_output=True, env=env).stdout
    assert b"sessions" in dump and len(dump) > 1000
    secrets_ = [token["token"].encode(), a.root_token.encode(), a.master_key.encode()]
    for case in CASES[:4]:
        secrets_.append(case["string"].encode())
        auth_key = bytes.fromhex(case["fields"]["auth_key_hex"]) if "auth_key_hex" in case["fields"] else None
        if auth_key:
            secrets_ += [auth_key.hex().encode(), auth_key[:32].hex().encode()]
    for s in secrets_:
        assert s not in dump
