# SPDX-License-Identifier: Apache-2.0
"""Several vault instances on one PostgreSQL database behave as one vault (real binaries on
loopback, a throwaway cluster from scripts/pg.sh). Skipped when PostgreSQL is not installed."""

from __future__ import annotations

import concurrent.futures
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from api.vault import Client, VaultProcess, expect_problem, new_master_key, new_root_token, pyrogram_current_cases

ROOT = Path(__file__).resolve().parents[3]
PG_SH = ROOT / "scripts" / "pg.sh"
CASES = pyrogram_current_cases()
LOCK_DELAY = 2

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
    env = {"SESSION_VAULT_DATABASE_PASSWORD_FILE": str(cluster.password_file),
           "SESSION_VAULT_LEASE_LOCK_DELAY_SECONDS": str(LOCK_DELAY)}
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


# Leases across instances (docs/postgres.md, docs/leases.md): the database decides and times them.

LEASE_TYPE = "urn:session-vault:problem:"


def lease(name: str) -> str:
    return f"/v1/sessions/{name}/lease"


def acquire(c: Client, name: str, holder: str, ttl: int = 30, wait: int = 0):
    return c.post(lease(name), {"holder": holder, "ttl_seconds": ttl, "wait_seconds": wait}, timeout=40)


def hdr(lease_id: str) -> dict[str, str]:
    return {"Session-Vault-Lease": lease_id}


def conflict(reply, kind: str) -> dict:
    problem = expect_problem(reply, 409)
    assert problem["type"] == LEASE_TYPE + kind, problem
    return problem


def test_a_lease_held_through_one_instance_is_held_for_the_other(pair) -> None:
    a, b, _ = pair
    assert a.client.create_string("leased", CASES[0]["string"], exclusive=True).status == 201
    assert b.client.get(lease("leased")).status == 404  # B has looked: nothing held yet
    got = acquire(a.client, "leased", "host-a:1", ttl=30)
    assert got.status == 201, got
    held = got.json()
    assert held["epoch"] == 1

    # Refused through B, naming A's holder and the same deadline (one clock decided it).
    busy = acquire(b.client, "leased", "host-b:2")
    problem = conflict(busy, "lease_held")
    assert problem["holder"] == "host-a:1" and problem["expires_at"] == held["expires_at"]
    assert 1 <= int(busy.header("Retry-After")) <= 30
    read = b.client.get(lease("leased")).json()
    assert {k: read[k] for k in ("holder", "epoch", "acquired_at", "expires_at")} == \
        {k: held[k] for k in ("holder", "epoch", "acquired_at", "expires_at")}

    # B fences with A's lease: the id passes, its absence does not.
    conflict(b.client.export("leased"), "lease_required")
    assert b.client.export("leased", headers=hdr(held["lease_id"])).text == CASES[0]["string"]
    assert b.client.patch("/v1/sessions/leased", {"api_id": 5}, headers=hdr(held["lease_id"])).status == 200

    # Renew through B with A's id: the lease A acquired, with the new TTL, seen through A.
    renewed = b.client.put(lease("leased"), {"ttl_seconds": 20}, headers=hdr(held["lease_id"]))
    assert renewed.status == 200, renewed
    assert renewed.json()["epoch"] == 1 and renewed.json()["ttl_seconds"] == 20 and "lease_id" not in renewed.json()
    assert a.client.get(lease("leased")).json()["ttl_seconds"] == 20
    stranger = "svl_" + secrets.token_urlsafe(32)
    conflict(b.client.put(lease("leased"), headers=hdr(stranger)), "lease_lost")
    conflict(b.client.delete(lease("leased"), headers=hdr(stranger)), "lease_lost")

    # Released through B: free for both at once (no lock-delay); the id is lost everywhere.
    assert b.client.delete(lease("leased"), headers=hdr(held["lease_id"])).status == 204
    expect_problem(a.client.get(lease("leased")), 404)
    conflict(a.client.delete(lease("leased"), headers=hdr(held["lease_id"])), "lease_lost")
    conflict(a.client.export("leased", headers=hdr(held["lease_id"])), "lease_lost")
    again = acquire(a.client, "leased", "host-a:3")
    assert again.status == 201 and again.json()["epoch"] == 2
    assert b.client.get(lease("leased")).json()["holder"] == "host-a:3"

    # Exclusivity switched through A binds B at its next request; a revoke through A ends the lease for B.
    assert a.client.create_string("plain", CASES[1]["string"]).status == 201
    assert b.client.export("plain").status == 200
    assert a.client.patch("/v1/sessions/plain", {"exclusive": True}).json()["exclusive"] is True
    assert b.client.get("/v1/sessions/plain").json()["exclusive"] is True
    conflict(b.client.export("plain"), "lease_required")
    assert a.client.delete("/v1/sessions/leased").status == 204
    expect_problem(b.client.get(lease("leased")), 404)
    expect_problem(acquire(b.client, "leased", "host-b:4"), 410)


def test_concurrent_acquisitions_through_both_instances_have_one_winner(pair) -> None:
    a, b, _ = pair
    assert a.client.create_string("raced", CASES[0]["string"]).status == 201
    clients = [a.client, b.client]

    def attempt(i: int) -> int:
        return acquire(clients[i % 2], "raced", f"racer-{i}").status

    with concurrent.futures.ThreadPoolExecutor(max_workers=60) as pool:
        statuses = list(pool.map(attempt, range(60)))
    assert statuses.count(201) == 1 and statuses.count(409) == 59, sorted(set(statuses))
    assert a.client.get(lease("raced")).json()["epoch"] == 1


def test_a_long_poll_through_one_instance_wakes_when_the_other_releases(pair) -> None:
    a, b, _ = pair
    assert a.client.create_string("polled", CASES[0]["string"]).status == 201
    held = acquire(a.client, "polled", "first", ttl=60).json()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(acquire, b.client, "polled", "waiter", 30, 30)
        deadline = time.monotonic() + 10
        while not re.search(r"^sv_lease_waiters 1$", b.client.get("/metrics", token=None).text, re.M):
            assert time.monotonic() < deadline, "B never parked the acquisition"
            time.sleep(0.02)
        assert a.client.delete(lease("polled"), headers=hdr(held["lease_id"])).status == 204
        got = waiting.result(timeout=40)
    assert got.status == 201, got
    assert got.json()["holder"] == "waiter" and got.json()["epoch"] == 2


def test_an_expired_lease_taken_over_through_one_instance_fences_the_other(pair, cluster: Cluster) -> None:
    """Expiry is judged by the database's clock: the deadline is stored as the database's
    clock_timestamp() plus the TTL, and each decision reads that clock after locking the session
    row. A's lease expires, B takes it over after the lock-delay, and A's late writes with the old
    id, through A or B, are refused and change nothing."""
    a, b, url = pair
    assert a.client.create_string("fenced", CASES[0]["string"], exclusive=True).status == 201
    old = acquire(a.client, "fenced", "old", ttl=5).json()
    # The stored deadline is the database's clock plus the TTL.
    database = url.rsplit("/", 1)[1]
    left = int(cluster.psql(database, "-c",
                            "SELECT l.deadline_ms - (extract(epoch FROM clock_timestamp()) * 1000)::bigint "
                            "FROM session_leases l JOIN sessions s ON s.seq = l.session_seq WHERE s.name = 'fenced'")
               .stdout.decode().strip())
    assert 0 < left <= 5000, left
    row = {"states": [{"id": 0, "pts": 1, "qts": 1, "date": 1, "seq": 1}]}
    assert a.client.patch("/v1/sessions/fenced", {"api_id": 5}, headers=hdr(old["lease_id"])).status == 200
    assert a.client.put("/v1/sessions/fenced/peers", {"peers": [{"id": 1, "access_hash": 2, "type": "user"}]},
                        headers=hdr(old["lease_id"])).status == 200
    assert a.client.put("/v1/sessions/fenced/state", row, headers=hdr(old["lease_id"])).status == 200

    started = time.monotonic()
    new = acquire(b.client, "fenced", "new", ttl=30, wait=30)
    assert new.status == 201, new
    assert time.monotonic() - started >= 5 + LOCK_DELAY - 1.5  # not before the TTL and the lock-delay
    new = new.json()
    assert new["epoch"] == old["epoch"] + 1 and new["holder"] == "new"

    before = a.client.get("/v1/sessions/fenced").json()
    stale = hdr(old["lease_id"])
    for c in (a.client, b.client):
        conflict(c.patch("/v1/sessions/fenced", {"api_id": 77}, headers=stale), "lease_lost")
        conflict(c.put("/v1/sessions/fenced/peers", {"peers": [{"id": 9, "access_hash": 9, "type": "user"}]},
                       headers=stale), "lease_lost")
        conflict(c.put("/v1/sessions/fenced/state",
                       {"states": [{"id": 0, "pts": 99, "qts": 99, "date": 99, "seq": 99}]}, headers=stale), "lease_lost")
        conflict(c.export("fenced", headers=stale), "lease_lost")
        conflict(c.put(lease("fenced"), headers=stale), "lease_lost")
        conflict(c.delete(lease("fenced"), headers=stale), "lease_lost")
    for c in (a.client, b.client):
        after = c.get("/v1/sessions/fenced").json()
        assert after == before and after["api_id"] == 5 and after["peer_count"] == 1
        assert c.get("/v1/sessions/fenced/peers?id=9").json()["items"] == []
        assert c.get("/v1/sessions/fenced/state").json()["states"] == row["states"]
        assert c.get(lease("fenced")).json()["holder"] == "new"
    # The new holder's writes pass through A.
    assert a.client.patch("/v1/sessions/fenced", {"api_id": 6}, headers=hdr(new["lease_id"])).status == 200
    # The expiry was decided once, for both instances.
    expiries = [e for e in a.client.audit() if e.get("session") == "fenced" and e["action"] == "lease.expire"]
    assert len(expiries) == 1 and expiries[0]["detail"] == "epoch=1", expiries
