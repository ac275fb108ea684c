# SPDX-License-Identifier: Apache-2.0
"""Tokens, audit, key rotation and metrics."""

from __future__ import annotations

import re

import pytest

from api.vault import Client, VaultProcess, expect_problem, pyrogram_current_cases, session_file_vectors, wait_until

CASES = pyrogram_current_cases()[:4]


@pytest.fixture(scope="module", autouse=True)
def sessions(root: Client) -> None:
    for i, case in enumerate(CASES):
        assert root.create_string(f"adm{i}", case["string"]).status == 201


def test_token_lifecycle_shows_the_secret_once(root: Client) -> None:
    created = root.post("/v1/tokens", {"operations": ["export", "read"], "sessions": ["adm0"], "prefixes": ["adm"],
                                       "ttl_seconds": 3600, "display_name": "ci bot"})
    assert created.status == 201, created
    body = created.json()
    token, accessor = body["token"], body["accessor"]
    assert token.startswith("svt_") and len(token) >= 40
    assert created.header("Location") == f"/v1/tokens/{accessor}"
    assert body["operations"] == ["export", "read"] and body["sessions"] == ["adm0"] and body["prefixes"] == ["adm"]
    assert body["display_name"] == "ci bot" and body["expires_at"] and body["revoked"] is False

    listing = root.get("/v1/tokens")
    one = root.get(f"/v1/tokens/{accessor}")
    for reply in (listing, one):
        assert reply.status == 200
        assert token.encode() not in reply.body and token[4:20].encode() not in reply.body
        assert b'"token"' not in reply.body
    info = one.json()
    assert info == {k: v for k, v in body.items() if k != "token"}
    assert accessor in {t["accessor"] for t in listing.json()["items"]}

    assert root.with_token(token).export("adm0").text == CASES[0]["string"]
    assert root.delete(f"/v1/tokens/{accessor}").status == 204
    assert root.get(f"/v1/tokens/{accessor}").json()["revoked"] is True
    expect_problem(root.with_token(token).export("adm0"), 401)


def test_audit_records_events_without_secrets(root: Client) -> None:
    token = root.create_token(operations=["export"], sessions=["adm1"])
    scoped = root.with_token(token["token"])
    assert scoped.export("adm1").status == 200
    expect_problem(scoped.export("adm2"), 403)
    expect_problem(root.with_token("svt_wrong_token_for_the_audit_0000000000").get("/v1/sessions"), 401)
    assert root.delete("/v1/sessions/adm3").status == 204
    assert root.delete(f"/v1/tokens/{token['accessor']}").status == 204

    wanted = {("session.create", "root", "adm0"), ("session.export", token["accessor"], "adm1"),
              ("access.denied", token["accessor"], "adm2"), ("auth.denied", None, None),
              ("session.revoke", "root", "adm3"), ("token.create", "root", None), ("token.revoke", "root", None)}

    def seen() -> set:
        return {(e["action"], e["accessor"], e["session"]) for e in root.audit()}

    assert wait_until(lambda: wanted <= seen(), timeout=10), wanted - seen()
    reply = root.get("/v1/audit?limit=1000")
    events = reply.json()["items"]
    for e in events:
        assert re.fullmatch(r"127\.0\.0\.1(:\d+)?", e["remote_address"] or ""), e
        assert e["outcome"] and e["time"]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids, reverse=True), "audit must be newest first"
    for case in CASES:
        assert case["string"].encode() not in reply.body
        assert case["fields"]["auth_key_hex"][:32].encode() not in reply.body
    assert token["token"].encode() not in reply.body and root.token.encode() not in reply.body
    # Paging with before.
    page = root.get("/v1/audit?limit=2").json()
    assert len(page["items"]) == 2 and page["next_before"] == page["items"][-1]["id"]
    nxt = root.get(f"/v1/audit?limit=2&before={page['next_before']}").json()
    assert nxt["items"][0]["id"] < page["items"][-1]["id"]


def test_rotate_and_rewrap(root: Client) -> None:
    status = root.get("/v1/sys/status").json()
    term = status["keys"]["current_term"]
    rotated = root.post("/v1/sys/rotate")
    assert rotated.status == 200, rotated
    assert rotated.json()["current_term"] == term + 1
    assert [t["term"] for t in rotated.json()["terms"]] == list(range(1, term + 2))
    live = root.get("/v1/sys/status").json()["counts"]["sessions"]
    rewrapped = root.post("/v1/sys/rewrap")
    assert rewrapped.status == 200, rewrapped
    assert rewrapped.json() == {"rewrapped": live, "current_term": term + 1}
    for i, case in enumerate(CASES[:3]):
        assert root.export(f"adm{i}").text == case["string"]
    assert root.post("/v1/sessions", {"name": "after-rotate", "session_string": CASES[0]["string"]}).status == 201
    assert root.export("after-rotate").text == CASES[0]["string"]


def test_first_rotation_is_term_2(vault_factory) -> None:
    v = vault_factory().start()
    c = v.client
    for i, case in enumerate(CASES):
        assert c.create_string(f"r{i}", case["string"]).status == 201
    path, _ = session_file_vectors()[0]
    assert c.upload("rfile", path.read_bytes()).status == 201
    assert c.delete("/v1/sessions/r3").status == 204
    assert c.post("/v1/sys/rotate").json()["current_term"] == 2
    assert c.post("/v1/sys/rewrap").json() == {"rewrapped": 4, "current_term": 2}
    v.stop()
    v.start()
    c = v.client
    assert c.get("/v1/sys/status").json()["keys"]["current_term"] == 2
    for i, case in enumerate(CASES[:3]):
        assert c.export(f"r{i}").text == case["string"]


def test_metrics(root: Client, module_vault: VaultProcess) -> None:
    root.get("/v1/sessions/adm0")
    root.export("adm0")
    root.get("/v1/sessions/no-such-name-in-metrics")
    reply = root.get("/metrics", token=None)
    assert reply.status == 200 and reply.content_type == "text/plain"
    text = reply.text
    assert re.search(r'sv_http_requests_total\{route="/v1/sessions/\{name\}",method="GET",status="200"\} \d+', text), text
    assert re.search(r'sv_http_requests_total\{route="/v1/sessions/\{name\}/export",method="GET",status="200"\} \d+', text)
    assert re.search(r'sv_http_requests_total\{route="/v1/sessions/\{name\}",method="GET",status="404"\} \d+', text)
    assert re.search(r'^sv_sessions\{state="active"\} \d+$', text, re.M)
    assert f'sv_storage_engine{{engine="{module_vault.engine}"}} 1' in text
    assert re.search(r"^sv_storage_fallback 0$", text, re.M)
    for name in ("adm0", "adm1", "no-such-name-in-metrics", "after-rotate"):
        assert name not in text, name
    for line in text.splitlines():
        if line and not line.startswith("#"):
            assert re.fullmatch(r"[a-z_]+(\{.*\})? [0-9.e+-]+", line), line
