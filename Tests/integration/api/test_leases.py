# SPDX-License-Identifier: Apache-2.0
"""Session leases on the real binary (docs/leases.md): acquire, renew, release, break, read;
the 409 shapes; the lock-delay; the long poll; survival of a restart; fencing of exclusive
sessions; 200 concurrent acquisitions with one winner; every bad input refused with nothing
changed. Small TTLs and lock-delays come from the environment; waits are for events (the long
poll's answer, a metrics gauge), bounded."""

from __future__ import annotations

import re
import secrets
import threading
import time
from typing import Any

import pytest

from api.vault import Client, VaultProcess, expect_problem, pyrogram_current_cases

LOCK_DELAY = 2
LEASE_ID = re.compile(r"^svl_[A-Za-z0-9_-]{43}$")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
TYPE_PREFIX = "urn:session-vault:problem:"


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory):
    v = VaultProcess(tmp_path_factory.mktemp("leases"), storage="memory",
                     env={"SESSION_VAULT_LEASE_LOCK_DELAY_SECONDS": str(LOCK_DELAY),
                          "SESSION_VAULT_MAX_INFLIGHT": "512",
                          # Shorter than the long polls below: they outlive the handler deadline.
                          "SESSION_VAULT_HANDLER_TIMEOUT_MS": "2000",
                          "SESSION_VAULT_MAX_CONNECTIONS_PER_ADDRESS": "0"})
    v.start()
    yield v
    try:
        assert v.server is not None and v.server.alive()
        v.stop(expect_exit=0)
    finally:
        v.dispose()


@pytest.fixture(scope="module")
def root(vault: VaultProcess) -> Client:
    return vault.client


def string(i: int = 0) -> str:
    return pyrogram_current_cases()[i]["string"]


def new_session(c: Client, **fields: Any) -> str:
    name = "l-" + secrets.token_hex(4)
    reply = c.create_string(name, string(), **fields)
    assert reply.status == 201, reply
    return name


def lease(name: str, query: str = "") -> str:
    return f"/v1/sessions/{name}/lease{query}"


def acquire(c: Client, name: str, holder: str = "host-a:1", ttl: int = 15, wait: int = 0, query: str = "",
            timeout: float = 20.0):
    return c.post(lease(name, query), {"holder": holder, "ttl_seconds": ttl, "wait_seconds": wait}, timeout=timeout)


def hdr(lease_id: str) -> dict[str, str]:
    return {"Session-Vault-Lease": lease_id}


def metric(c: Client, name: str) -> float:
    text = c.get("/metrics", token=None).text
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    assert m, f"{name} missing from /metrics"
    return float(m.group(1))


def await_metric(c: Client, name: str, value: float, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metric(c, name) >= value:
            return
        time.sleep(0.02)
    raise AssertionError(f"{name} never reached {value}")


def expect_conflict(reply, kind: str) -> dict[str, Any]:
    problem = expect_problem(reply, 409)
    assert problem["type"] == TYPE_PREFIX + kind, problem
    return problem


def test_acquire_read_renew_release(root: Client) -> None:
    name = new_session(root)
    reply = acquire(root, name, holder="host-a:1", ttl=10)
    assert reply.status == 201, reply
    got = reply.json()
    assert set(got) == {"lease_id", "epoch", "holder", "acquired_at", "expires_at", "ttl_seconds"}
    assert LEASE_ID.match(got["lease_id"]) and got["epoch"] == 1 and got["holder"] == "host-a:1" and got["ttl_seconds"] == 10
    assert RFC3339.match(got["acquired_at"]) and RFC3339.match(got["expires_at"]) and got["expires_at"] > got["acquired_at"]
    lease_id = got["lease_id"]

    read = root.get(lease(name))
    assert read.status == 200 and lease_id not in read.text
    assert {k: read.json()[k] for k in ("holder", "epoch", "acquired_at")} == \
        {"holder": "host-a:1", "epoch": 1, "acquired_at": got["acquired_at"]}

    renewed = root.put(lease(name), {"ttl_seconds": 30}, headers=hdr(lease_id))
    assert renewed.status == 200, renewed
    assert "lease_id" not in renewed.json() and renewed.json()["ttl_seconds"] == 30 and renewed.json()["epoch"] == 1
    assert root.call("PUT", lease(name), headers=hdr(lease_id)).status == 200  # body optional

    busy = acquire(root, name, holder="host-b:2")
    problem = expect_conflict(busy, "lease_held")
    assert problem["holder"] == "host-a:1" and RFC3339.match(problem["expires_at"])
    assert 1 <= int(busy.header("Retry-After")) <= 30

    assert root.delete(lease(name), headers=hdr(lease_id)).status == 204
    expect_problem(root.get(lease(name)), 404)
    again = acquire(root, name, holder="host-b:2")  # a release frees at once: no lock-delay
    assert again.status == 201 and again.json()["epoch"] == 2
    # The old id is lost: renew, release and fenced calls all answer lease_lost.
    expect_conflict(root.put(lease(name), headers=hdr(lease_id)), "lease_lost")
    expect_conflict(root.delete(lease(name), headers=hdr(lease_id)), "lease_lost")
    assert root.get(lease(name)).json()["holder"] == "host-b:2"
    assert root.delete(lease(name), headers=hdr(again.json()["lease_id"])).status == 204


def test_acquire_with_export_is_one_round_trip(root: Client) -> None:
    name = new_session(root)
    reply = acquire(root, name, query="?export=telethon")
    assert reply.status == 201, reply
    assert reply.json()["session_string"] == root.export(name, "telethon").text
    assert root.delete(lease(name), headers=hdr(reply.json()["lease_id"])).status == 204
    for bad in ("pyrogram-file", "telethon-file", "nope", ""):
        expect_problem(acquire(root, name, query=f"?export={bad}"), 422, "export")
    expect_problem(root.get(lease(name)), 404)  # nothing acquired by the refusals
    assert acquire(root, name).json()["epoch"] == 2


def test_break_then_lock_delay_then_long_poll(root: Client) -> None:
    name = new_session(root)
    held = acquire(root, name, ttl=60).json()
    admin = root.create_token(operations=["admin"])["token"]
    leaser = root.create_token(operations=["lease"], sessions=[name])["token"]
    expect_problem(root.with_token(leaser).delete(lease(name)), 403)  # breaking takes root or admin
    assert root.with_token(admin).delete(lease(name)).status == 204
    broke = time.monotonic()
    expect_problem(root.get(lease(name)), 404)
    expect_conflict(root.put(lease(name), headers=hdr(held["lease_id"])), "lease_lost")
    refused = acquire(root, name, holder="next")
    problem = expect_conflict(refused, "lease_held")
    assert problem["holder"] == "host-a:1" and 1 <= int(refused.header("Retry-After")) <= LOCK_DELAY
    # The long poll answers when the lock-delay ends, not before.
    waited = acquire(root, name, holder="next", wait=20)
    assert waited.status == 201, waited
    assert time.monotonic() - broke >= LOCK_DELAY - 0.2
    assert waited.json()["epoch"] == 2
    actions = [(e["action"], e["outcome"]) for e in root.audit() if e.get("session") == name]
    assert ("lease.break", "ok") in actions and ("lease.acquire", "refused") in actions
    assert ("lease.renew", "lost") in actions and ("lease.acquire", "ok") in actions


def test_expiry_blocks_for_the_lock_delay_and_is_audited(root: Client) -> None:
    name = new_session(root)
    before = metric(root, "sv_lease_expiries_total")
    started = time.monotonic()
    held = acquire(root, name, ttl=5).json()
    waited = acquire(root, name, holder="successor", wait=30, timeout=40)
    assert waited.status == 201, waited
    assert time.monotonic() - started >= 5 + LOCK_DELAY - 0.3
    expect_conflict(root.put(lease(name), headers=hdr(held["lease_id"])), "lease_lost")
    assert metric(root, "sv_lease_expiries_total") >= before + 1
    assert ("lease.expire", "ok") in [(e["action"], e["outcome"]) for e in root.audit() if e.get("session") == name]


def test_long_poll_returns_when_the_holder_releases(root: Client) -> None:
    name = new_session(root)
    held = acquire(root, name, ttl=60).json()
    waiting_before = metric(root, "sv_lease_waiters")
    result: dict[str, Any] = {}

    def wait() -> None:
        reply = acquire(root, name, holder="waiter", wait=30, timeout=40)
        result["reply"], result["at"] = reply, time.monotonic()

    thread = threading.Thread(target=wait)
    thread.start()
    await_metric(root, "sv_lease_waiters", waiting_before + 1)
    released = time.monotonic()
    assert root.delete(lease(name), headers=hdr(held["lease_id"])).status == 204
    thread.join(timeout=40)
    assert not thread.is_alive()
    assert result["reply"].status == 201 and result["reply"].json()["holder"] == "waiter"
    assert result["at"] - released < 5  # woken by the release, not by the end of its wait


def test_wait_ends_with_the_conflict(root: Client) -> None:
    name = new_session(root)
    acquire(root, name, ttl=60)
    started = time.monotonic()
    reply = acquire(root, name, holder="late", wait=1)
    expect_conflict(reply, "lease_held")
    assert 0.9 <= time.monotonic() - started < 10


def test_fencing_of_an_exclusive_session(root: Client) -> None:
    name = new_session(root, exclusive=True)
    assert root.get(f"/v1/sessions/{name}").json()["exclusive"] is True
    expect_conflict(root.export(name), "lease_required")
    expect_conflict(root.patch(f"/v1/sessions/{name}", {"api_id": 5}), "lease_required")
    a = acquire(root, name, holder="a", ttl=30).json()
    assert root.export(name, headers=hdr(a["lease_id"])).text == string()
    assert root.patch(f"/v1/sessions/{name}", {"api_id": 5}, headers=hdr(a["lease_id"])).status == 200
    peers = {"peers": [{"id": 1, "access_hash": 2, "type": "user"}]}
    assert root.put(f"/v1/sessions/{name}/peers", peers, headers=hdr(a["lease_id"])).status == 200
    # A takeover: broken, then B acquires after the lock-delay.
    assert root.delete(lease(name)).status == 204
    b = acquire(root, name, holder="b", wait=20).json()
    assert b["epoch"] == a["epoch"] + 1
    before = root.get(f"/v1/sessions/{name}").json()
    expect_conflict(root.patch(f"/v1/sessions/{name}", {"api_id": 77}, headers=hdr(a["lease_id"])), "lease_lost")
    stale_peers = {"peers": [{"id": 9, "access_hash": 9, "type": "user"}]}
    expect_conflict(root.put(f"/v1/sessions/{name}/peers", stale_peers, headers=hdr(a["lease_id"])), "lease_lost")
    expect_conflict(root.export(name, headers=hdr(a["lease_id"])), "lease_lost")
    after = root.get(f"/v1/sessions/{name}").json()
    assert after == before and after["api_id"] == 5 and after["peer_count"] == 1
    assert root.get(f"/v1/sessions/{name}/peers?id=9").json()["items"] == []
    # B's writes pass; B turns exclusivity off, then exports need no lease.
    off = root.patch(f"/v1/sessions/{name}", {"exclusive": False}, headers=hdr(b["lease_id"]))
    assert off.status == 200 and off.json()["exclusive"] is False
    assert root.export(name).status == 200
    # A header is checked on any session, exclusive or not.
    expect_conflict(root.export(name, headers=hdr(a["lease_id"])), "lease_lost")
    on = root.patch(f"/v1/sessions/{name}", {"exclusive": True}, headers=hdr(b["lease_id"]))
    assert on.status == 200 and on.json()["exclusive"] is True
    # Revoking ends the lease.
    assert root.delete(f"/v1/sessions/{name}").status == 204
    expect_problem(root.get(lease(name)), 404)
    expect_problem(acquire(root, name), 410)


def test_two_hundred_concurrent_acquisitions_one_winner(root: Client) -> None:
    name = new_session(root)
    barrier = threading.Barrier(200)
    statuses: list[int] = []
    lock = threading.Lock()

    def attempt(i: int) -> None:
        barrier.wait(timeout=30)
        reply = acquire(root, name, holder=f"racer-{i}", timeout=30)
        with lock:
            statuses.append(reply.status)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(statuses) == 200
    assert statuses.count(201) == 1, sorted(set(statuses))
    assert statuses.count(409) == 199
    assert root.get(lease(name)).json()["epoch"] == 1


def test_bad_inputs_change_nothing(root: Client) -> None:
    name = new_session(root)
    expect_problem(acquire(root, "l-nosuchsession"), 404)
    expect_problem(root.get(lease("l-nosuchsession")), 404)
    cases = [
        ({"ttl_seconds": 15}, 422, "holder"),
        ({"holder": ""}, 422, "holder"),
        ({"holder": "x" * 257}, 422, "holder"),
        ({"holder": 7}, 422, "holder"),
        ({"holder": "h", "ttl_seconds": 4}, 422, "ttl_seconds"),
        ({"holder": "h", "ttl_seconds": 301}, 422, "ttl_seconds"),
        ({"holder": "h", "ttl_seconds": "15"}, 422, "ttl_seconds"),
        ({"holder": "h", "wait_seconds": 61}, 422, "wait_seconds"),
        ({"holder": "h", "wait_seconds": -1}, 422, "wait_seconds"),
        ({"holder": "h", "lease_id": "x"}, 422, "lease_id"),
    ]
    for body, status, field in cases:
        expect_problem(root.post(lease(name), body), status, field)
    expect_problem(root.call("POST", lease(name), body=b"{not json", content_type="application/json"), 400, "body")
    assert acquire(root, name, holder="h" * 256).status == 201  # 256 bytes is the limit
    held = root.get(lease(name)).json()
    assert held["epoch"] == 1
    stranger = "svl_" + secrets.token_urlsafe(32)
    for bad in ("nope", "svt_" + secrets.token_urlsafe(32), stranger[:-1], stranger + "A"):
        expect_problem(root.put(lease(name), headers=hdr(bad)), 400, "Session-Vault-Lease")
        expect_problem(root.delete(lease(name), headers=hdr(bad)), 400, "Session-Vault-Lease")
        expect_problem(root.export(name, headers=hdr(bad)), 400, "Session-Vault-Lease")
    expect_problem(root.call("PUT", lease(name)), 400, "Session-Vault-Lease")
    expect_conflict(root.put(lease(name), headers=hdr(stranger)), "lease_lost")
    expect_conflict(root.delete(lease(name), headers=hdr(stranger)), "lease_lost")
    now = root.get(lease(name)).json()
    assert {k: now[k] for k in ("holder", "epoch", "acquired_at", "ttl_seconds")} == \
        {k: held[k] for k in ("holder", "epoch", "acquired_at", "ttl_seconds")}
    # A header on a session without any lease.
    other = new_session(root)
    expect_conflict(root.put(lease(other), headers=hdr(stranger)), "lease_lost")
    expect_conflict(root.export(other, headers=hdr(stranger)), "lease_lost")
    assert acquire(root, other).json()["epoch"] == 1  # nothing was acquired by the refusals


def test_scoped_token_for_a_bot(root: Client) -> None:
    name, other = new_session(root), new_session(root)
    bot = root.with_token(root.create_token(operations=["lease", "export"], sessions=[name])["token"])
    reply = acquire(bot, name, query="?export=pyrogram")
    assert reply.status == 201 and reply.json()["session_string"] == string()
    assert bot.put(lease(name), headers=hdr(reply.json()["lease_id"])).status == 200
    assert bot.get(lease(name)).status == 200
    expect_problem(acquire(bot, other), 403)
    reader = root.with_token(root.create_token(operations=["read", "export"], sessions=[other])["token"])
    expect_problem(acquire(reader, other), 403)
    only_lease = root.with_token(root.create_token(operations=["lease"], sessions=[other])["token"])
    expect_problem(acquire(only_lease, other, query="?export=pyrogram"), 403)
    expect_problem(root.get(lease(other)), 404)


def test_metrics(root: Client) -> None:
    text = root.get("/metrics", token=None).text
    for name in ("sv_leases_held", "sv_lease_acquisitions_total", "sv_lease_conflicts_total",
                 "sv_lease_expiries_total", "sv_lease_breaks_total"):
        assert re.search(rf"^{name} \d+$", text, re.M), name
    assert metric(root, "sv_lease_acquisitions_total") >= 1


def test_leases_survive_a_restart(vault_factory) -> None:
    v: VaultProcess = vault_factory(env={"SESSION_VAULT_LEASE_LOCK_DELAY_SECONDS": str(LOCK_DELAY)}).start()
    c = v.client
    name = new_session(c, exclusive=True)
    first = acquire(c, name, ttl=5).json()
    assert c.delete(lease(name), headers=hdr(first["lease_id"])).status == 204
    held = acquire(c, name, holder="survivor", ttl=30).json()
    assert held["epoch"] == 2
    v.sigkill()
    v.start()
    c = v.client
    read = c.get(lease(name)).json()
    assert read["holder"] == "survivor" and read["epoch"] == 2
    assert c.put(lease(name), headers=hdr(held["lease_id"])).status == 200
    expect_conflict(acquire(c, name, holder="intruder"), "lease_held")
    assert c.get(f"/v1/sessions/{name}").json()["exclusive"] is True
    expect_conflict(c.export(name), "lease_required")
    assert c.export(name, headers=hdr(held["lease_id"])).status == 200
    assert c.delete(lease(name), headers=hdr(held["lease_id"])).status == 204
    v.stop(expect_exit=0)
    v.start()
    c = v.client
    assert acquire(c, name).json()["epoch"] == 3  # the epoch never repeats


def test_update_state_writes_are_fenced_like_every_write(root: Client) -> None:
    """The update state routes (issue 17) take the lease like PATCH and peers: an exclusive session
    needs the current lease id, a stale one changes nothing."""
    name = new_session(root, exclusive=True)
    row = {"states": [{"id": 0, "pts": 1, "qts": 1, "date": 1, "seq": 1}]}
    expect_conflict(root.put(f"/v1/sessions/{name}/state", row), "lease_required")
    expect_conflict(root.delete(f"/v1/sessions/{name}/state?id=0"), "lease_required")
    a = acquire(root, name, holder="a", ttl=30).json()
    assert root.put(f"/v1/sessions/{name}/state", row, headers=hdr(a["lease_id"])).status == 200
    assert root.delete(lease(name)).status == 204  # broken by root
    b = acquire(root, name, holder="b", wait=20).json()
    stale = {"states": [{"id": 0, "pts": 99, "qts": 99, "date": 99, "seq": 99}]}
    expect_conflict(root.put(f"/v1/sessions/{name}/state", stale, headers=hdr(a["lease_id"])), "lease_lost")
    expect_conflict(root.delete(f"/v1/sessions/{name}/state?id=0", headers=hdr(a["lease_id"])), "lease_lost")
    assert root.get(f"/v1/sessions/{name}/state").json()["states"] == row["states"]
    assert root.put(f"/v1/sessions/{name}/state", stale, headers=hdr(b["lease_id"])).status == 200
    assert root.get(f"/v1/sessions/{name}/state").json()["states"] == stale["states"]


def test_a_session_that_had_a_lease_can_be_purged_and_its_name_reused(root: Client) -> None:
    name = new_session(root)
    a = acquire(root, name, holder="a", ttl=30).json()
    assert root.delete(lease(name), headers=hdr(a["lease_id"])).status == 204
    assert root.delete(f"/v1/sessions/{name}").status == 204
    assert root.delete(f"/v1/sessions/{name}?purge=true").status == 204
    assert root.create_string(name, string()).status == 201
    again = acquire(root, name, holder="b", ttl=30)
    assert again.status == 201, again
    expect_conflict(root.export(name, headers=hdr(a["lease_id"])), "lease_lost")
