# SPDX-License-Identifier: Apache-2.0
"""Issue 18 item 5, on the real binary: purging a revoked name, rotating the root token, the
root token after its configuration is removed, audit filters, and token list pages."""

from __future__ import annotations

import re

from api.vault import expect_problem, pyrogram_current_cases


def good_string() -> str:
    return pyrogram_current_cases()[0]["string"]


def printed_root_token(v) -> str:
    tokens = re.findall(r"root token: (svt_\S+)", v.server.stdout_path.read_text())
    assert len(tokens) == 1, v.server.stdout_path.read_text()
    return tokens[0]


def test_a_revoked_name_is_purged_by_an_admin_and_then_reused(vault_factory) -> None:
    v = vault_factory().start()
    root = v.client
    assert root.create_string("old", good_string()).status == 201
    problem = expect_problem(root.delete("/v1/sessions/old?purge=true"), 409, "name")
    assert "revoke it first" in problem["detail"], problem
    assert root.delete("/v1/sessions/old").status == 204

    problem = expect_problem(root.create_string("old", good_string()), 409, "name")
    assert "revoked" in problem["detail"] and "purge" in problem["detail"], problem
    assert root.create_string("live", good_string()).status == 201
    problem = expect_problem(root.create_string("live", good_string()), 409, "name")
    assert "revoked" not in problem["detail"], problem

    writer = root.with_token(root.create_token(operations=["read", "write"], sessions=["old"])["token"])
    expect_problem(writer.delete("/v1/sessions/old?purge=true"), 403)
    expect_problem(root.delete("/v1/sessions/old?purge=yes"), 400, "purge")
    expect_problem(root.delete("/v1/sessions/never?purge=true"), 404)
    admin = root.with_token(root.create_token(operations=["admin"])["token"])
    assert admin.delete("/v1/sessions/old?purge=true").status == 204
    expect_problem(root.get("/v1/sessions/old"), 404)
    purges = [e for e in root.audit() if e["action"] == "session.purge"]
    assert [(e["session"], e["outcome"]) for e in purges][:2] == [("old", "ok"), ("old", "conflict")], purges

    assert root.create_string("old", good_string()).status == 201
    assert root.get("/v1/sessions/old").json()["revoked"] is False
    assert root.export("old", "pyrogram").status == 200
    v.stop(expect_exit=0)
    v.start()  # the purge is durable
    assert v.client.get("/v1/sessions/old").json()["version"] == 1


def test_the_root_token_is_rotated_through_the_api_and_the_old_one_stops_at_once(vault_factory) -> None:
    v = vault_factory(root_token="").start()
    first = printed_root_token(v)
    v.root_token = first
    old = v.client
    expect_problem(old.with_token(old.create_token(operations=["admin"])["token"]).post("/v1/tokens/root/rotate"), 403)
    reply = old.post("/v1/tokens/root/rotate")
    assert reply.status == 200, reply
    second = reply.json()["token"]
    assert second != first and second.startswith("svt_")
    assert second not in v.server.stderr()
    expect_problem(old.get("/v1/sessions"), 401)
    new = old.with_token(second)
    assert new.get("/v1/sessions").status == 200
    assert [e["accessor"] for e in new.audit() if e["action"] == "root_token.rotate"] == ["root"]
    v.stop(expect_exit=0)
    v.root_token = ""  # still not configured: the rotated token is the stored one
    v.start()
    assert "root token:" not in v.server.stdout_path.read_text()
    assert v.client.with_token(second).get("/v1/sessions").status == 200
    expect_problem(v.client.with_token(first).get("/v1/sessions"), 401)
    v.stop(expect_exit=0)


def test_a_configured_root_token_is_rotated_in_its_configuration_not_the_api(vault_factory) -> None:
    v = vault_factory().start()
    problem = expect_problem(v.client.post("/v1/tokens/root/rotate"), 409)
    assert "SESSION_VAULT_ROOT_TOKEN" in problem["detail"], problem
    assert v.client.get("/v1/sessions").status == 200


def test_a_generated_root_token_does_not_come_back_when_a_configured_one_is_removed(vault_factory) -> None:
    v = vault_factory(root_token="").start()
    generated = printed_root_token(v)
    v.stop(expect_exit=0)
    configured = "svt_configured-root-token-for-this-test-0123456789"
    v.root_token = configured
    v.start()
    assert v.client.get("/v1/sessions").status == 200
    expect_problem(v.client.with_token(generated).get("/v1/sessions"), 401)
    v.stop(expect_exit=0)
    v.root_token = ""  # the configuration is removed
    v.start()
    assert "root token:" not in v.server.stdout_path.read_text()
    expect_problem(v.client.with_token(generated).get("/v1/sessions"), 401)
    assert v.client.with_token(configured).get("/v1/sessions").status == 200
    v.stop(expect_exit=0)


def test_the_audit_log_is_filtered_by_session_accessor_and_action(vault_factory) -> None:
    v = vault_factory(storage="memory").start()
    root = v.client
    reader = root.create_token(operations=["read", "export"], sessions=["a"])
    for name in ("a", "b"):
        assert root.create_string(name, good_string()).status == 201
    as_reader = root.with_token(reader["token"])
    for _ in range(3):
        assert as_reader.export("a", "pyrogram").status == 200
    assert root.export("b", "pyrogram").status == 200

    def items(query: str) -> list[dict]:
        reply = root.get(f"/v1/audit?{query}")
        assert reply.status == 200, reply
        return reply.json()["items"]

    assert {e["session"] for e in items("session=a")} == {"a"}
    assert len(items("session=a&action=session.export")) == 3
    mine = items(f"accessor={reader['accessor']}")
    assert len(mine) == 3 and {e["action"] for e in mine} == {"session.export"}, mine
    assert [e["session"] for e in items("action=session.export&accessor=root")] == ["b"]
    assert items("action=session.purge") == []
    page = root.get("/v1/audit?action=session.export&limit=2").json()
    assert len(page["items"]) == 2 and page["next_before"] is not None
    rest = items(f"action=session.export&limit=2&before={page['next_before']}")
    assert len(rest) == 2 and {e["id"] for e in rest}.isdisjoint({e["id"] for e in page["items"]})
    problem = expect_problem(root.get("/v1/audit?action=session.explode"), 422, "action")
    assert "session.export" in problem["detail"], problem
    expect_problem(root.get("/v1/audit?session=bad%20name"), 400, "session")
    expect_problem(root.get("/v1/audit?accessor=NOT-AN-ACCESSOR"), 400, "accessor")
    v.stop(expect_exit=0)


def test_the_token_list_is_paginated_like_the_session_list(vault_factory) -> None:
    v = vault_factory(storage="memory").start()
    root = v.client
    made = [root.create_token(operations=["read"], sessions=[f"s{i}"])["accessor"] for i in range(5)]
    seen, after = [], None
    for _ in range(10):
        page = root.get("/v1/tokens?limit=2" + (f"&after={after}" if after else "")).json()
        assert len(page["items"]) <= 2
        seen += [t["accessor"] for t in page["items"]]
        after = page["next_after"]
        if after is None:
            break
    # Creation order (tokens made in the same millisecond by accessor), as one long page gives it.
    assert sorted(seen) == sorted(made) and len(seen) == 5, (seen, made)
    assert seen == [t["accessor"] for t in root.get("/v1/tokens?limit=1000").json()["items"]]
    assert root.get("/v1/tokens").json()["next_after"] is None
    expect_problem(root.get("/v1/tokens?limit=0"), 400, "limit")
    expect_problem(root.get("/v1/tokens?limit=1001"), 400, "limit")
    expect_problem(root.get("/v1/tokens?after=acc_0000000000000000"), 400, "after")
    expect_problem(root.get("/v1/tokens?after=Bad-Cursor"), 400, "after")
    v.stop(expect_exit=0)
