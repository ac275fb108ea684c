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
