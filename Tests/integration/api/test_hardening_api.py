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
server on 127.0.0.1: loopback only.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from api.vault import VaultProcess, expect_problem, new_master_key, run_to_exit, string_case, wait_until
from conftest import RawConnection, build_request

GOOD = string_case("pyrogram:dc1-prod-user")["string"]
BAD_TOKEN = "svt_not_a_real_token_for_issue_14_000000000"


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
# Item 9: dot names# --------------------------------------------------------------------------

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
    con = sqlite3.connect(str(v.db_path))
    try:
        assert con.execute("UPDATE tokens SET expires_at = expires_at + 3600000 WHERE accessor = ?",
                           (token["accessor"],)).rowcount == 1
        con.commit()
    finally:
        con.close()
    v.start()
    expect_problem(v.client.with_token(token["token"]).get("/v1/sessions/t1"), 401, "authorization")
    assert v.client.get(f"/v1/tokens/{token['accessor']}").json()["revoked"] is True
