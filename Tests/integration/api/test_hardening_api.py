# SPDX-License-Identifier: Apache-2.0
"""Issue 14 (API hardening), on the real binary: items 2, 7 and two of item 9.

* item 2: listing shows a scoped token only the sessions its policy covers; neither items nor
  `next_after` cursors name anything outside the scope, and paging returns every in-scope
  session exactly once.
* item 7: the failed-authentication throttle never refuses a valid token; unauthenticated
  failures are aggregated in the audit log instead of one row each; the audit log has a
  retention setting.
* item 9: names made only of dots are refused everywhere a name is accepted; a token seen
  expired stays expired (also after a restart, and when the clock is behind its expiry).

Requests "from" other addresses bind the client socket to 127.0.0.x before connecting to the
server on 127.0.0.1: loopback only. The store is edited through `VaultProcess.sql_execute`, so the
same tests run on SQLite and on PostgreSQL (matrix.py).
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from api.vault import VaultProcess, expect_problem, new_master_key, run_to_exit, string_case, wait_until
from conftest import RawConnection, build_request

GOOD = string_case("pyrogram:dc1-prod-user")["string"]
BAD_TOKEN = "svt_not_a_real_token_for_issue_14_000000000"


# --------------------------------------------------------------------------
# Requests from another loopback address
# --------------------------------------------------------------------------

class From:
    """Sends requests from one source address, reusing a keep-alive connection while it lasts."""

    def __init__(self, vault: VaultProcess, source: str):
        assert source.startswith("127."), source
        self.vault = vault
        self.source = source
        self.conn: RawConnection | None = None

    def get(self, target: str, token: str | None):
        headers = [("Authorization", f"Bearer {token}")] if token is not None else []
        request = build_request("GET", target, headers=headers)
        for _attempt in range(2):
            if self.conn is None:
                self.conn = self.vault.server.raw(source=self.source, timeout=10.0)
            try:
                self.conn.send(request)
                response = self.conn.read_response()
            except (OSError, Exception) as error:  # the server closed the idle connection: reconnect once
                self.close()
                if _attempt == 1:
                    raise error
                continue
            if "close" in response.connection_tokens():
                self.close()
            return response
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# --------------------------------------------------------------------------
# Item 2: listing
# --------------------------------------------------------------------------

IN_SCOPE = ["a-mine", "mybot", "team-1", "team-3", "team-x.y"]
OUT_OF_SCOPE = ["alice", "bob", "carol-ceo-account", "mybot2", "myb", "team", "team_2", "teal", "zed"]


def scoped_listing_vault(vault_factory):
    v = vault_factory(storage="memory").start()
    root = v.client
    for name in sorted(IN_SCOPE + OUT_OF_SCOPE):
        assert root.create_string(name, GOOD).status == 201, name
    token = root.create_token(operations=["read"], sessions=["mybot", "a-mine"], prefixes=["team-"])
    return v, root.with_token(token["token"])


def walk(client, limit: int, extra: str = "") -> tuple[list[str], list[str], list[bytes]]:
    """Pages through the listing; returns item names, cursors and raw bodies."""
    names, cursors, bodies = [], [], []
    after = None
    for _ in range(100):
        target = f"/v1/sessions?limit={limit}{extra}" + (f"&after={after}" if after else "")
        reply = client.get(target)
        assert reply.status == 200, reply
        bodies.append(reply.body)
        page = reply.json()
        assert len(page["items"]) <= limit
        names += [item["name"] for item in page["items"]]
        after = page["next_after"]
        if after is None:
            return names, cursors, bodies
        cursors.append(after)
    raise AssertionError("paging did not end")


def test_item2_listing_hides_out_of_scope_names(vault_factory) -> None:
    _v, scoped = scoped_listing_vault(vault_factory)
    for limit in (1, 2, 3, 1000):
        names, cursors, bodies = walk(scoped, limit)
        assert names == sorted(IN_SCOPE), (limit, names)
        assert set(cursors) <= set(IN_SCOPE), (limit, cursors)
        for body in bodies:
            for hidden in OUT_OF_SCOPE:
                assert f'"{hidden}"'.encode() not in body, (limit, hidden, body)
    # With limit=1 there is one page per in-scope session and nothing more: the last page says so.
    names, cursors, _ = walk(scoped, 1)
    assert len(cursors) == len(IN_SCOPE) - 1


def test_item2_listing_with_prefix_filter_stays_in_scope(vault_factory) -> None:
    _v, scoped = scoped_listing_vault(vault_factory)
    for prefix, expected in (("m", ["mybot"]), ("te", ["team-1", "team-3", "team-x.y"]),
                             ("team-x", ["team-x.y"]), ("a", ["a-mine"]), ("b", []), ("team_", [])):
        for limit in (1, 1000):
            names, cursors, bodies = walk(scoped, limit, f"&prefix={prefix}")
            assert names == expected, (prefix, limit, names)
            assert set(cursors) <= set(expected), (prefix, limit, cursors)


def test_item2_cursor_outside_scope_reveals_nothing(vault_factory) -> None:
    """A client-chosen cursor between hidden names continues with the next in-scope name."""
    _v, scoped = scoped_listing_vault(vault_factory)
    page = scoped.get("/v1/sessions?limit=1&after=alice").json()
    assert [i["name"] for i in page["items"]] == ["mybot"] and page["next_after"] == "mybot", page
    page = scoped.get("/v1/sessions?limit=10&after=team-3").json()
    assert [i["name"] for i in page["items"]] == ["team-x.y"] and page["next_after"] is None, page
    page = scoped.get("/v1/sessions?limit=10&after=team-x.y").json()
    assert page == {"items": [], "next_after": None}, page


def test_item2_root_listing_unchanged(vault_factory) -> None:
    v, _scoped = scoped_listing_vault(vault_factory)
    assert [s["name"] for s in v.client.list_all_sessions()] == sorted(IN_SCOPE + OUT_OF_SCOPE)
    names, _, _ = walk(v.client, 2)
    assert names == sorted(IN_SCOPE + OUT_OF_SCOPE)


# --------------------------------------------------------------------------
# Item 7: throttle and audit
# --------------------------------------------------------------------------

def test_item7_throttle_never_refuses_a_valid_token(vault_factory) -> None:
    v = vault_factory(storage="memory").start()
    root = v.client
    assert root.create_string("x", GOOD).status == 201
    scoped = root.create_token(operations=["read"], sessions=["x"])["token"]
    attacker = From(v, "127.0.0.2")
    try:
        statuses = [attacker.get("/v1/sessions", BAD_TOKEN).status for _ in range(200)]
        assert statuses[:10] == [401] * 10 and set(statuses[10:]) == {429}, statuses
        # The root token and a scoped token from the same address are served, every time.
        for i in range(50):
            assert attacker.get("/v1/sessions/x", v.root_token).status == 200, i
            assert attacker.get("/v1/sessions/x", scoped).status == 200, i
            # ...while a bad token (or none) from that address is still refused with 429.
            reply = attacker.get("/v1/sessions/x", BAD_TOKEN if i % 2 else None)
            assert reply.status == 429, (i, reply)
            retry = reply.header("Retry-After")
            assert retry is not None and retry.isdigit() and 1 <= int(retry) <= 60, reply
    finally:
        attacker.close()
    # Another address is not throttled.
    assert root.get("/v1/sessions").status == 200
    expect_problem(root.with_token(BAD_TOKEN).get("/v1/sessions"), 401)


def audit_denied_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["action"] == "auth.denied"]


def failures_in(detail: str | None) -> int:
    """`failures=N` from an aggregated auth.denied row's detail."""
    for part in (detail or "").split():
        if part.startswith("failures="):
            return int(part.split("=", 1)[1])
    return 1  # an unaggregated row stands for one failure


def test_item7_unauthenticated_failures_are_aggregated_in_audit(vault_factory) -> None:
    v = vault_factory(storage="file").start()
    root = v.client
    addresses = [f"127.0.{2 + i // 200}.{1 + i % 200}" for i in range(300)]
    per_address = 5
    for address in addresses:
        sender = From(v, address)
        try:
            for _ in range(per_address):
                assert sender.get("/v1/sessions", BAD_TOKEN).status == 401
        finally:
            sender.close()
    total = len(addresses) * per_address
    rows = audit_denied_rows(root.audit(limit=1000))
    assert rows, "no auth.denied row at all"
    # Bounded: not one row per failure (1,500 failures), nor even one per address (300).
    assert len(rows) <= 101, len(rows)
    assert sum(failures_in(r["detail"]) for r in rows) == total, [r["detail"] for r in rows][:5]
    for r in rows:
        assert BAD_TOKEN not in (r["detail"] or "")
    # After a clean stop the table holds no more auth.denied rows than that either.
    v.stop()
    details = [detail for (detail,) in v.sql_rows("SELECT detail FROM audit WHERE action = 'auth.denied'")]
    assert len(details) <= 102, len(details)
    parts = [part for detail in details for part in (detail or "").split(" ") if part.startswith("failures=")]
    assert sum(failures_in(part) for part in parts) >= total


def age_audit_rows(v: VaultProcess, days: int) -> int:
    cutoff = int(time.time() * 1000) - days * 86_400_000
    return v.sql_execute(f"UPDATE audit SET time = {cutoff} WHERE action = 'session.create'")


def test_item7_audit_retention_prunes_old_rows(vault_factory) -> None:
    v = vault_factory(storage="file", env={"SESSION_VAULT_AUDIT_RETENTION_DAYS": "30"}).start()
    root = v.client
    for name in ("old1", "old2"):
        assert root.create_string(name, GOOD).status == 201
    assert wait_until(lambda: {"old1", "old2"} <= {e["session"] for e in root.audit()}, timeout=10)
    v.stop()
    assert age_audit_rows(v, 40) == 2
    v.start()
    root = v.client
    assert root.create_string("fresh", GOOD).status == 201

    def pruned() -> bool:
        sessions = {e["session"] for e in root.audit()}
        return "fresh" in sessions and not ({"old1", "old2"} & sessions)

    assert wait_until(pruned, timeout=15), [(e["action"], e["session"], e["time"]) for e in root.audit()]


def test_item7_audit_retention_zero_keeps_everything(vault_factory) -> None:
    v = vault_factory(storage="file", env={"SESSION_VAULT_AUDIT_RETENTION_DAYS": "0"}).start()
    assert v.client.create_string("kept", GOOD).status == 201
    assert wait_until(lambda: "kept" in {e["session"] for e in v.client.audit()}, timeout=10)
    v.stop()
    assert age_audit_rows(v, 4000) == 1
    v.start()
    time.sleep(1.0)
    assert "kept" in {e["session"] for e in v.client.audit()}


@pytest.mark.parametrize("value", ["-1", "ten", "100000"])
def test_item7_audit_retention_bad_value_is_a_configuration_error(tmp_path: Path, value: str) -> None:
    env = {"SESSION_VAULT_STORAGE": "memory", "SESSION_VAULT_LISTEN": "127.0.0.1:0",
           "SESSION_VAULT_MASTER_KEY": new_master_key(), "SESSION_VAULT_ROOT_TOKEN": "svt_retention_token_00000000000000",
           "SESSION_VAULT_AUDIT_RETENTION_DAYS": value}
    try:
        done = run_to_exit(env, [], tmp_path, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"SESSION_VAULT_AUDIT_RETENTION_DAYS={value} was accepted: the vault kept serving")
    assert done.returncode == 78, (done.returncode, done.stderr[-2000:])
    assert b"SESSION_VAULT_AUDIT_RETENTION_DAYS" in done.stderr


# --------------------------------------------------------------------------
# Item 9: dot names, expired tokens
# --------------------------------------------------------------------------

DOT_NAMES = [".", "..", "..."]


@pytest.mark.parametrize("name", DOT_NAMES)
def test_item9_names_made_of_dots_are_refused(vault_factory, name: str) -> None:
    v = vault_factory(storage="memory").start()
    root = v.client
    expect_problem(root.create_string(name, GOOD), 422, "name")
    expect_problem(root.upload(name, b"SQLite format 3\x00" + b"\x00" * 100), 422, "name")
    for target in (f"/v1/sessions/{name}", f"/v1/sessions/{name}/export", f"/v1/sessions/{name}/peers"):
        reply = root.get(target)
        assert reply.status == 400, reply
    expect_problem(root.post("/v1/tokens", {"operations": ["read"], "sessions": [name]}), 422, "sessions")
    assert root.list_all_sessions() == []
    # Names that merely contain dots stay valid.
    assert root.create_string(f"a{name}b", GOOD).status == 201
    assert root.create_string(f"{name}x", GOOD).status == 201


def test_item9_import_file_refuses_dot_names(tmp_path: Path) -> None:
    lines = tmp_path / "import.txt"
    lines.write_text(f"ok {GOOD}\n.. {GOOD}\n")
    env = {"SESSION_VAULT_STORAGE": "memory", "SESSION_VAULT_LISTEN": "127.0.0.1:0",
           "SESSION_VAULT_MASTER_KEY": new_master_key(), "SESSION_VAULT_ROOT_TOKEN": "svt_import_dots_token_000000000000",
           "SESSION_VAULT_IMPORT_FILE": str(lines)}
    try:
        done = run_to_exit(env, [], tmp_path, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("an import file with the name '..' was accepted: the vault kept serving")
    assert done.returncode == 65, (done.returncode, done.stderr[-2000:])
    assert b"line 2" in done.stderr and b"name" in done.stderr


def test_item9_expired_token_stays_expired(vault_factory) -> None:
    v = vault_factory(storage="file").start()
    root = v.client
    assert root.create_string("t1", GOOD).status == 201
    token = root.create_token(operations=["read"], sessions=["t1"], ttl_seconds=1)
    scoped = root.with_token(token["token"])
    assert scoped.get("/v1/sessions/t1").status == 200
    time.sleep(1.3)
    expect_problem(scoped.get("/v1/sessions/t1"), 401, "authorization")
    # Once seen expired, it is recorded as such (with the next commit, a few milliseconds on).
    assert wait_until(lambda: root.get(f"/v1/tokens/{token['accessor']}").json()["revoked"] is True, timeout=5)
    assert any(e["action"] == "token.expire" and e["detail"] == token["accessor"] for e in root.audit())
    v.stop()
    # The wall clock stepping back an hour makes "now" an hour before the stored expiry; moving
    # the stored expiry an hour ahead is the same thing, seen from the token's side.
    assert re.fullmatch(r"acc_[A-Za-z0-9_-]+", token["accessor"]), token
    assert v.sql_execute(f"UPDATE tokens SET expires_at = expires_at + 3600000 WHERE accessor = '{token['accessor']}'") == 1
    v.start()
    expect_problem(v.client.with_token(token["token"]).get("/v1/sessions/t1"), 401, "authorization")
    assert v.client.get(f"/v1/tokens/{token['accessor']}").json()["revoked"] is True
