# SPDX-License-Identifier: Apache-2.0
"""Persistence, sealing and the memory fallback, across real process restarts and kills."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

import pytest

from api.matrix import requires_memory_store
from api.vault import (
    VaultProcess, api_server, expect_problem, pyrogram_current_cases, run_to_exit, session_file_vectors,
    sqlite_dump, string_case,
)

PEERS = [
    {"id": 777000, "access_hash": -5, "type": "user", "usernames": ["persist_user"], "phone_number": "15550001234"},
    {"id": -1002345678901, "access_hash": -9223372036854775808, "type": "channel", "usernames": ["persist_chan"],
     "last_update_on": 1700000000},
]


def populate(c) -> dict:
    """Sessions (string + file), peers, a token and a revoke; returns what must survive."""
    cases = pyrogram_current_cases()[:3]
    strings = {}
    for i, case in enumerate(cases):
        assert c.create_string(f"p{i}", case["string"]).status == 201
        strings[f"p{i}"] = case["string"]
    path, _meta = session_file_vectors()[0]
    assert c.upload("fromfile", path.read_bytes()).status == 201
    assert c.put("/v1/sessions/p0/peers", {"peers": PEERS}).status == 200
    token = c.create_token(operations=["export"], sessions=["p1"], display_name="persisted")
    assert c.delete("/v1/sessions/p2").status == 204
    return {"strings": strings, "token": token, "audit_ids": {e["id"] for e in c.audit()}}


def check_survived(c, state: dict) -> None:
    for name in ("p0", "p1"):
        reply = c.export(name)
        assert reply.status == 200 and reply.text == state["strings"][name], reply
    expect_problem(c.export("p2"), 410)
    assert c.get("/v1/sessions/p2").json()["revoked"] is True
    assert c.export("fromfile", "pyrogram-file").status == 200
    peer = c.get("/v1/sessions/p0/peers?username=persist_chan").json()["items"]
    assert peer == [{"id": -1002345678901, "access_hash": -9223372036854775808, "type": "channel",
                     "usernames": ["persist_chan"], "phone_number": None, "name": None, "last_update_on": 1700000000}]
    # The scoped token still works, with its scope.
    scoped = c.with_token(state["token"]["token"])
    assert scoped.export("p1").text == state["strings"]["p1"]
    expect_problem(scoped.export("p0"), 403)
    listed = {t["accessor"] for t in c.get("/v1/tokens").json()["items"]}
    assert state["token"]["accessor"] in listed
    # Every audit event recorded before the stop is still there.
    assert state["audit_ids"] <= {e["id"] for e in c.audit()}


def test_file_vault_survives_sigterm_restart(vault_factory) -> None:
    v = vault_factory().start()
    state = populate(v.client)
    assert v.stop(expect_exit=0) == 0
    v.start()
    check_survived(v.client, state)
    actions = {e["action"] for e in v.client.audit()}
    assert {"session.create", "session.revoke"} <= actions or len(actions) >= 3, actions


def test_sigkill_loses_no_acknowledged_create(vault_factory) -> None:
    v = vault_factory().start()
    c = v.client
    cases = pyrogram_current_cases()
    created = {}
    for i in range(24):
        case = cases[i % len(cases)]
        reply = c.create_string(f"k{i:02d}", case["string"])
        assert reply.status == 201, reply
        created[f"k{i:02d}"] = case["string"]
    v.sigkill()  # right after the last 201
    assert v.server.returncode in (-9, 137) or v.server.proc.returncode == -9
    v.start()
    c = v.client
    names = {s["name"] for s in c.list_all_sessions()}
    assert set(created) <= names, sorted(set(created) - names)
    for name, text in created.items():
        reply = c.export(name)
        assert reply.status == 200 and reply.text == text, (name, reply)


@requires_memory_store("a memory vault forgets everything when it restarts")
def test_memory_vault_starts_empty_after_restart(vault_factory) -> None:
    v = vault_factory(storage="memory").start()
    assert v.client.create_string("gone", string_case("pyrogram:dc1-prod-user")["string"]).status == 201
    assert len(v.client.list_all_sessions()) == 1
    v.stop(expect_exit=0)
    v.start()
    assert v.client.list_all_sessions() == []
    expect_problem(v.client.get("/v1/sessions/gone"), 404)


def file_mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_zero_config_files_modes_and_one_time_root_token(tmp_path: Path) -> None:
    data = tmp_path / "datadir"
    first = api_server(tmp_path / "first", test_routes=False, env={"SESSION_VAULT_DATA_DIR": str(data)}).start()
    try:
        out = first.stdout_path.read_text()
        tokens = re.findall(r"root token: (svt_\S+)", out)
        assert len(tokens) == 1, out
        token = tokens[0]
        assert token not in first.stderr(), "the root token must not be logged"
        ok = first.request("GET", "/v1/sessions", headers={"Authorization": f"Bearer {token}"})
        assert ok.status == 200, ok
        ok = first.request("POST", "/v1/sessions", headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                           body=('{"name":"z","session_string":"%s"}' % string_case("pyrogram:dc1-prod-user")["string"]).encode())
        assert ok.status == 201, ok
    finally:
        first.stop(expect_exit=0)
    assert file_mode(data) == 0o700, oct(file_mode(data))
    assert file_mode(data / "master.key") == 0o600, oct(file_mode(data / "master.key"))
    for name in ("vault.db", "vault.db-wal", "vault.db-shm"):
        if (data / name).exists():
            assert file_mode(data / name) == 0o600, (name, oct(file_mode(data / name)))
    assert (data / "vault.db").exists()
    key_before = (data / "master.key").read_bytes()

    second = api_server(tmp_path / "second", test_routes=False, env={"SESSION_VAULT_DATA_DIR": str(data)}).start()
    try:
        assert "root token" not in second.stdout_path.read_text(), second.stdout_path.read_text()
        again = second.request("GET", "/v1/sessions/z/export", headers={"Authorization": f"Bearer {token}"})
        assert again.status == 200 and len(again.body) == 362, again
    finally:
        second.stop(expect_exit=0)
    assert (data / "master.key").read_bytes() == key_before


# --------------------------------------------------------------------------
# Sealed
# --------------------------------------------------------------------------

V1_CALLS = [
    ("GET", "/v1/sessions", None), ("POST", "/v1/sessions", b'{"name":"x"}'), ("GET", "/v1/sessions/p0", None),
    ("PATCH", "/v1/sessions/p0", b'{"api_id":1}'), ("DELETE", "/v1/sessions/p0", None),
    ("GET", "/v1/sessions/p0/export", None), ("GET", "/v1/sessions/p0/export?format=telethon-file", None),
    ("GET", "/v1/sessions/p0/peers", None), ("PUT", "/v1/sessions/p0/peers", b'{"peers":[]}'),
    ("GET", "/v1/tokens", None), ("POST", "/v1/tokens", b'{"operations":["admin"]}'), ("GET", "/v1/audit", None),
    ("GET", "/v1/sys/status", None), ("POST", "/v1/sys/rotate", None), ("POST", "/v1/sys/rewrap", None),
]


def assert_sealed(v: VaultProcess, token: str) -> None:
    c = v.client
    ready = c.get("/readyz", token=None)
    assert ready.status == 503, ready
    assert ready.json()["sealed"] is True and ready.json()["ready"] is False
    for method, target, body in V1_CALLS:
        for t in (token, None, "svt_wrong"):
            reply = c.call(method, target, body=body, content_type="application/json" if body else None, token=t)
            expect_problem(reply, 503)


def test_wrong_master_key_seals_and_changes_nothing(vault_factory) -> None:
    v = vault_factory().start()
    state = populate(v.client)
    v.stop(expect_exit=0)
    dump_before = v.logical_dump()
    raw_before = hashlib.sha256(v.db_path.read_bytes()).hexdigest() if v.engine == "file" else None
    right_key = v.master_key

    v.master_key = VaultProcess.__init__.__globals__["new_master_key"]()
    v.start()
    assert_sealed(v, v.root_token)
    assert "sealed" in v.server.stderr().lower()
    v.stop(expect_exit=0)
    assert v.logical_dump() == dump_before, "a sealed run changed the database"
    if v.engine == "file":
        assert hashlib.sha256(v.db_path.read_bytes()).hexdigest() == raw_before, "a sealed run rewrote the database file"

    v.master_key = right_key
    v.start()
    assert v.client.get("/readyz", token=None).status == 200
    check_survived(v.client, state)


def test_missing_master_key_file_with_keyring_seals(tmp_path: Path) -> None:
    data = tmp_path / "datadir"
    env = {"SESSION_VAULT_DATA_DIR": str(data), "SESSION_VAULT_ROOT_TOKEN": "svt_missing_key_test_token_0123456789"}
    first = api_server(tmp_path / "first", test_routes=False, env=env).start()
    first.stop(expect_exit=0)
    key = data / "master.key"
    assert key.exists()
    saved = key.read_bytes()
    key.unlink()
    dump_before = sqlite_dump(data / "vault.db")

    second = api_server(tmp_path / "second", test_routes=False, env=env).start()
    try:
        ready = second.request("GET", "/readyz")
        assert ready.status == 503 and b'"sealed":true' in ready.body, ready
        listing = second.request("GET", "/v1/sessions", headers={"Authorization": f"Bearer {env['SESSION_VAULT_ROOT_TOKEN']}"})
        assert listing.status == 503, listing
        assert not key.exists(), "a new master key was generated over an existing keyring"
    finally:
        second.stop(expect_exit=0)
    assert sqlite_dump(data / "vault.db") == dump_before

    key.write_bytes(saved)
    key.chmod(0o600)
    third = api_server(tmp_path / "third", test_routes=False, env=env).start()
    try:
        assert third.request("GET", "/readyz").status == 200
    finally:
        third.stop(expect_exit=0)


# --------------------------------------------------------------------------
# Memory fallback
# --------------------------------------------------------------------------

def unwritable_storage(tmp_path: Path) -> str:
    blocker = tmp_path / "afile"
    blocker.write_text("a regular file where a folder should be\n")
    return f"file:{blocker}/vault.db"


def test_unwritable_storage_falls_back_to_memory(vault_factory, tmp_path: Path) -> None:
    v = vault_factory(storage=unwritable_storage(tmp_path)).start()
    c = v.client
    ready = c.get("/readyz", token=None)
    assert ready.status == 200, ready
    body = ready.json()
    assert body["fallback"] is True and body["engine"] == "memory" and body["fallback_reason"], body
    status = c.get("/v1/sys/status").json()
    assert status["storage"]["fallback"] is True and status["storage"]["engine"] == "memory", status
    assert status["storage"]["fallback_reason"]
    assert "fallback_reason" in status["storage"]
    assert re.search(r"fall(ing)?[ _-]?back", v.server.stderr(), re.I), v.server.stderr()
    assert "sv_storage_fallback 1" in c.get("/metrics", token=None).text
    # It really serves.
    assert c.create_string("mem", string_case("pyrogram:dc1-prod-user")["string"]).status == 201


@pytest.mark.parametrize("how", ["flag", "env"])
def test_require_persistence_refuses_to_start(tmp_path: Path, how: str) -> None:
    env = {"SESSION_VAULT_STORAGE": unwritable_storage(tmp_path), "SESSION_VAULT_LISTEN": "127.0.0.1:0",
           "SESSION_VAULT_MASTER_KEY": VaultProcess.__init__.__globals__["new_master_key"](),
           "SESSION_VAULT_ROOT_TOKEN": "svt_require_persistence_token_000000"}
    args = []
    if how == "flag":
        args = ["--require-persistence"]
    else:
        env["SESSION_VAULT_REQUIRE_PERSISTENCE"] = "true"
    done = run_to_exit(env, args, tmp_path)
    assert done.returncode == 73, (done.returncode, done.stderr[-2000:])
    assert b"listening on" not in done.stderr and b"listening on" not in done.stdout
    assert b"persistence" in done.stderr.lower()


@pytest.mark.parametrize("value", ["0", "65", "two", "-1"])
def test_event_loops_out_of_range_is_a_configuration_error(tmp_path: Path, value: str) -> None:
    env = {"SESSION_VAULT_STORAGE": "memory", "SESSION_VAULT_LISTEN": "127.0.0.1:0",
           "SESSION_VAULT_MASTER_KEY": VaultProcess.__init__.__globals__["new_master_key"](),
           "SESSION_VAULT_ROOT_TOKEN": "svt_event_loops_token_0000000000000",
           "SESSION_VAULT_EVENT_LOOPS": value}
    done = run_to_exit(env, [], tmp_path)
    assert done.returncode == 78, (done.returncode, done.stderr[-2000:])
    assert b"SESSION_VAULT_EVENT_LOOPS" in done.stderr
    assert b"listening on" not in done.stderr and b"listening on" not in done.stdout


@pytest.mark.parametrize("loops", ["1", "3"])
def test_event_loop_count_serves_the_api(vault_factory, loops: str) -> None:
    # Several connections at once, so that with 3 loops each loop gets some.
    v = vault_factory(env={"SESSION_VAULT_EVENT_LOOPS": loops}).start()
    state = populate(v.client)
    check_survived(v.client, state)
    for _ in range(6):
        assert v.client.get("/healthz", token=None).status == 200
