# SPDX-License-Identifier: Apache-2.0
"""Every bad input gets its precise status and a problem naming the field, and changes nothing."""

from __future__ import annotations

import base64
import contextlib
import secrets
import sqlite3
from pathlib import Path
from typing import Iterator

import pytest

from api.vault import (
    Client, expect_problem, invalid_session_strings, session_file_vectors, string_case,
)

GOOD = string_case("pyrogram:dc1-prod-user")["string"]
KEY_B64 = base64.b64encode(secrets.token_bytes(256)).decode()


@contextlib.contextmanager
def unchanged(root: Client) -> Iterator[None]:
    """The full listing (every session's metadata, versions, peer counts) is the same after."""
    def snapshot() -> list[dict]:
        # last_exported_at is stamped by the storage writer's next group commit, after the
        # export answered, so an earlier test's export may land during the block.
        return [{k: v for k, v in s.items() if k != "last_exported_at"} for s in root.list_all_sessions()]

    before = snapshot()
    yield
    assert snapshot() == before, "a refused request changed the vault"


@pytest.fixture(scope="module", autouse=True)
def existing(root: Client) -> None:
    assert root.create_string("existing", GOOD).status == 201


# --------------------------------------------------------------------------
# Body shape
# --------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [b"{", b'{"name":"x",}', b"nul", b'{"name":"x"} trailing', b'{"name":"x","name":"y"}',
                                 b"\xff\xfe", b'{"name":"\\ud800"}'])
def test_malformed_json_is_400(root: Client, raw: bytes) -> None:
    with unchanged(root):
        expect_problem(root.call("POST", "/v1/sessions", body=raw, content_type="application/json"), 400, "body")


@pytest.mark.parametrize("body,field", [
    ({"name": 5, "session_string": GOOD}, "name"),
    ({"name": "t1", "session_string": 5}, "session_string"),
    ({"name": "t1", "dc_id": "2", "auth_key": KEY_B64}, "dc_id"),
    ({"name": "t1", "dc_id": 2.5, "auth_key": KEY_B64}, "dc_id"),
    ({"name": "t1", "dc_id": 2, "auth_key": 12}, "auth_key"),
    ({"name": "t1", "session_string": GOOD, "is_bot": "no"}, "is_bot"),
    ({"name": "t1", "session_string": GOOD, "api_id": "12345"}, "api_id"),
    ({"name": "t1", "session_string": GOOD, "test_mode": 0}, "test_mode"),
    ({"name": "t1", "session_string": GOOD, "user_id": [1]}, "user_id"),
    ({"name": "t1", "session_string": GOOD, "port": "443"}, "port"),
])
def test_wrong_types_are_422_naming_the_field(root: Client, body: dict, field: str) -> None:
    with unchanged(root):
        expect_problem(root.post("/v1/sessions", body), 422, field)


def test_non_object_body_is_422(root: Client) -> None:
    with unchanged(root):
        expect_problem(root.post("/v1/sessions", [1, 2]), 422, "body")


def test_unknown_field_is_422_naming_it(root: Client) -> None:
    with unchanged(root):
        expect_problem(root.post("/v1/sessions", {"name": "t2", "session_string": GOOD, "sesion_strng": "x"}), 422,
                       "sesion_strng")


def test_missing_name_is_422(root: Client) -> None:
    with unchanged(root):
        problem = expect_problem(root.post("/v1/sessions", {"session_string": GOOD}), 422, "name")
        assert GOOD not in problem["detail"]


def test_missing_everything_but_name_is_422(root: Client) -> None:
    with unchanged(root):
        expect_problem(root.post("/v1/sessions", {"name": "t3"}), 422, "dc_id")


@pytest.mark.parametrize("name", ["", "a b", "a/b", "caf\u00e9", "x" * 65, "semi;colon", "tab\tname", "a\u0000b"])
def test_invalid_names_are_422(root: Client, name: str) -> None:
    with unchanged(root):
        expect_problem(root.post("/v1/sessions", {"name": name, "session_string": GOOD}), 422, "name")


def test_longest_name_is_accepted(root: Client) -> None:
    name = "N" * 64
    assert root.create_string(name, GOOD).status == 201
    assert root.get(f"/v1/sessions/{name}").json()["name"] == name


def test_duplicate_name_is_409(root: Client) -> None:
    with unchanged(root):
        expect_problem(root.create_string("existing", GOOD), 409, "name")


def test_oversized_json_is_413(root: Client) -> None:
    filler = "A" * (256 * 1024)
    with unchanged(root):
        expect_problem(root.post("/v1/sessions", {"name": "big", "session_string": filler}), 413, "body")
        expect_problem(root.put("/v1/sessions/existing/peers", {"peers": [], "pad": filler}), 413, "body")


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", None])
def test_wrong_content_type_is_415(root: Client, ctype: str | None) -> None:
    body = ('{"name":"ct","session_string":"%s"}' % GOOD).encode()
    with unchanged(root):
        expect_problem(root.call("POST", "/v1/sessions", body=body, content_type=ctype), 415, "Content-Type")
        expect_problem(root.call("PATCH", "/v1/sessions/existing", body=b'{"api_id":1}', content_type=ctype), 415,
                       "Content-Type")


def test_content_type_parameters_and_case_are_accepted(root: Client) -> None:
    body = ('{"name":"ctok","session_string":"%s"}' % GOOD).encode()
    reply = root.call("POST", "/v1/sessions", body=body, content_type="Application/JSON; charset=utf-8")
    assert reply.status == 201, reply


# --------------------------------------------------------------------------
# Session strings and files
# --------------------------------------------------------------------------

INVALID = invalid_session_strings()


@pytest.mark.parametrize("case", INVALID, ids=[c["id"] for c in INVALID])
def test_invalid_session_strings(root: Client, case: dict) -> None:
    name = "inv-" + case["id"][:58]
    if case["id"] == "current-bad-padding":
        # Documented acceptance ("with =/== padding: yes, as the Python readers do").
        assert root.create_string(name, case["input"]).status == 201
        assert root.export(name).text == case["input"].rstrip("=")
        return
    with unchanged(root):
        problem = expect_problem(root.create_string(name, case["input"]), 422, "session_string")
        if len(case["input"]) > 16:
            assert case["input"] not in problem["detail"] and case["input"][:40] not in problem["detail"]


def sqlite_bytes(tmp_path: Path, sql: str) -> bytes:
    path = tmp_path / f"made-{secrets.token_hex(4)}.session"
    con = sqlite3.connect(str(path))
    con.executescript(sql)
    con.close()
    return path.read_bytes()


def bad_uploads(tmp_path: Path) -> dict[str, bytes]:
    real = session_file_vectors()[0][0].read_bytes()
    return {
        "truncated-half": real[: len(real) // 2],
        "truncated-header": real[:50],
        "garbage": secrets.token_bytes(4096),
        "text": b"this is not a database\n" * 50,
        "sqlite-without-sessions": sqlite_bytes(tmp_path, "CREATE TABLE t(x); INSERT INTO t VALUES (1);"),
        "empty-sessions-table": sqlite_bytes(
            tmp_path, "CREATE TABLE sessions(dc_id INTEGER PRIMARY KEY, api_id INTEGER, test_mode INTEGER, "
                      "auth_key BLOB, date INTEGER NOT NULL, user_id INTEGER, is_bot INTEGER);"
                      "CREATE TABLE version(number INTEGER PRIMARY KEY); INSERT INTO version VALUES (3);"),
        "short-key": sqlite_bytes(
            tmp_path, "CREATE TABLE sessions(dc_id INTEGER PRIMARY KEY, api_id INTEGER, test_mode INTEGER, "
                      "auth_key BLOB, date INTEGER NOT NULL, user_id INTEGER, is_bot INTEGER);"
                      "CREATE TABLE peers(id INTEGER PRIMARY KEY, access_hash INTEGER, type INTEGER NOT NULL, "
                      "username TEXT, phone_number TEXT, last_update_on INTEGER NOT NULL DEFAULT 0);"
                      "CREATE TABLE version(number INTEGER PRIMARY KEY); INSERT INTO version VALUES (3);"
                      "INSERT INTO sessions VALUES (2, 1, 0, x'0102', 0, 5, 0);"),
    }


def test_bad_session_file_uploads_are_422(root: Client, tmp_path: Path) -> None:
    with unchanged(root):
        for label, data in bad_uploads(tmp_path).items():
            reply = root.upload(f"bad-{label}", data)
            assert reply.status == 422, (label, reply)
            expect_problem(reply, 422)
        expect_problem(root.upload("bad-empty", b""), 422, "file")


def test_upload_without_name_or_bad_name(root: Client) -> None:
    data = session_file_vectors()[0][0].read_bytes()
    with unchanged(root):
        expect_problem(root.call("POST", "/v1/sessions", body=data, content_type="application/vnd.sqlite3"), 422, "name")
        expect_problem(root.upload("bad%20name", data), 422, "name")
        expect_problem(root.upload("existing", data), 409, "name")


VECTOR_FILES = session_file_vectors()


def usernames_in(meta: dict) -> set[str]:
    """Usernames the file really holds (`expected_peer_lookups` lists the writer's inputs)."""
    tables = meta["expected"]["tables"]
    names = {r["username"] for t in ("peers", "entities") for r in tables.get(t, []) if r.get("username")}
    names |= {r["username"] for r in tables.get("usernames", []) if r.get("username")}
    assert names, "every vector file holds at least one username"
    return names


@pytest.mark.parametrize("path,meta", VECTOR_FILES, ids=[p.name for p, _ in VECTOR_FILES])
def test_vector_session_file_uploads(root: Client, path: Path, meta: dict) -> None:
    name = "file-" + path.stem.replace(".", "_")
    reply = root.upload(name, path.read_bytes())
    assert reply.status == 201, reply
    body = reply.json()
    assert reply.header("Location") == f"/v1/sessions/{name}"
    assert body["peer_count"] == len(meta["expected_peer_lookups"]["peer_ids"]), body
    fields = meta["input"]["fields"]
    assert body["dc_id"] == fields["dc_id"]
    for key in ("api_id", "user_id", "is_bot", "test_mode"):
        if fields.get(key) is not None:
            assert body[key] == fields[key], (key, body)
    # Peers are really there: every expected look-up resolves.
    lookups = meta["expected_peer_lookups"]
    for peer_id in lookups["peer_ids"]:
        found = root.get(f"/v1/sessions/{name}/peers?id={peer_id}").json()["items"]
        assert [p["id"] for p in found] == [peer_id], (peer_id, found)
    for username in usernames_in(meta):
        found = root.get(f"/v1/sessions/{name}/peers?username={username}").json()["items"]
        assert len(found) == 1, (username, found)


# --------------------------------------------------------------------------
# Field values
# --------------------------------------------------------------------------

@pytest.mark.parametrize("body,field", [
    ({"dc_id": 2, "auth_key": base64.b64encode(secrets.token_bytes(255)).decode()}, "auth_key"),
    ({"dc_id": 2, "auth_key": base64.b64encode(secrets.token_bytes(257)).decode()}, "auth_key"),
    ({"dc_id": 2, "auth_key": "not base64!!"}, "auth_key"),
    ({"dc_id": 2, "auth_key": base64.b64encode(bytes(256)).decode()}, "auth_key"),
    ({"dc_id": 0, "auth_key": KEY_B64}, "dc_id"),
    ({"dc_id": 256, "auth_key": KEY_B64}, "dc_id"),
    ({"dc_id": -1, "auth_key": KEY_B64}, "dc_id"),
    ({"dc_id": 2, "auth_key": KEY_B64, "user_id": -1}, "user_id"),
    ({"dc_id": 2, "auth_key": KEY_B64, "user_id": 9223372036854775808}, "user_id"),
    ({"dc_id": 2, "auth_key": KEY_B64, "api_id": 4294967296}, "api_id"),
    ({"dc_id": 2, "auth_key": KEY_B64, "api_id": 0}, "api_id"),
    ({"dc_id": 2, "auth_key": KEY_B64, "port": 65536}, "port"),
    ({"dc_id": 2, "auth_key": KEY_B64, "server_address": "not-an-ip"}, "server_address"),
    ({"dc_id": 2}, "auth_key"),
    ({"auth_key": KEY_B64}, "dc_id"),
    ({"session_string": GOOD, "dc_id": 2}, "dc_id"),
    ({"session_string": GOOD, "auth_key": KEY_B64}, "auth_key"),
    ({"session_string": GOOD, "api_id": 999}, "api_id"),
    ({"session_string": GOOD, "user_id": 1}, "user_id"),
])
def test_bad_field_values_are_422(root: Client, body: dict, field: str) -> None:
    with unchanged(root):
        problem = expect_problem(root.post("/v1/sessions", {"name": "fv", **body}), 422, field)
        assert KEY_B64[:24] not in problem["detail"]


def test_fields_create_roundtrip(root: Client) -> None:
    key = secrets.token_bytes(256)
    reply = root.post("/v1/sessions", {"name": "fields", "dc_id": 4, "auth_key": base64.urlsafe_b64encode(key).decode(),
                                       "api_id": 4294967295, "user_id": 9223372036854775807, "is_bot": True,
                                       "test_mode": False})
    assert reply.status == 201, reply
    assert reply.json()["user_id"] == 9223372036854775807
    from api.vault import pyrogram_fields
    exported = pyrogram_fields(root.export("fields").text)
    assert exported["auth_key"] == key and exported["user_id"] == 9223372036854775807 and exported["dc_id"] == 4


# --------------------------------------------------------------------------
# PATCH, If-Match, export, revoke
# --------------------------------------------------------------------------

def test_if_match(root: Client) -> None:
    assert root.create_string("etag", GOOD).status == 201
    etag = root.get("/v1/sessions/etag").header("ETag")
    assert etag == '"1"'
    with unchanged(root):
        expect_problem(root.patch("/v1/sessions/etag", {"port": 443}, headers={"If-Match": '"7"'}), 412, "If-Match")
        expect_problem(root.patch("/v1/sessions/etag", {"port": 443}, headers={"If-Match": 'W/"1"'}), 412, "If-Match")
        expect_problem(root.patch("/v1/sessions/etag", {"port": 443}, headers={"If-Match": "garbage"}), 412, "If-Match")
    ok = root.patch("/v1/sessions/etag", {"port": 443}, headers={"If-Match": etag})
    assert ok.status == 200 and ok.header("ETag") == '"2"' and ok.json()["version"] == 2 and ok.json()["port"] == 443, ok
    expect_problem(root.patch("/v1/sessions/etag", {"port": 80}, headers={"If-Match": etag}), 412, "If-Match")
    assert root.get("/v1/sessions/etag").json()["port"] == 443
    ok = root.patch("/v1/sessions/etag", {"port": 80}, headers={"If-Match": "*"})
    assert ok.status == 200 and ok.header("ETag") == '"3"', ok


@pytest.mark.parametrize("body,field", [
    ({"api_id": None}, "api_id"), ({"user_id": None}, "user_id"), ({"is_bot": None}, "is_bot"),
    ({"dc_id": 0}, "dc_id"), ({"api_id": 4294967296}, "api_id"), ({"name": "renamed"}, "name"),
    ({"auth_key": KEY_B64}, "dc_id"), ({}, "body"),  # a new key needs its dc_id (test_update_state.py)
])
def test_patch_bad_bodies_are_422(root: Client, body: dict, field: str) -> None:
    with unchanged(root):
        expect_problem(root.patch("/v1/sessions/existing", body), 422, field)


def test_patch_unknown_session_is_404(root: Client) -> None:
    with unchanged(root):
        expect_problem(root.patch("/v1/sessions/nope", {"api_id": 5}), 404, "name")


@pytest.mark.parametrize("fmt", ["pyrogram2", "PYROGRAM", "", "session", "telethon-file%00"])
def test_export_unknown_format_is_400(root: Client, fmt: str) -> None:
    expect_problem(root.get(f"/v1/sessions/existing/export?format={fmt}"), 400, "format")


def test_export_unknown_session_is_404(root: Client) -> None:
    expect_problem(root.export("nope"), 404, "name")


def test_revoke_then_export_and_revoke_again_are_410(root: Client) -> None:
    assert root.create_string("torevoke", GOOD).status == 201
    assert root.delete("/v1/sessions/torevoke").status == 204
    with unchanged(root):
        for fmt in (None, "telethon", "pyrogram-file", "kurigram-file", "telethon-file"):
            expect_problem(root.export("torevoke", fmt), 410, "name")
        expect_problem(root.delete("/v1/sessions/torevoke"), 410, "name")
        expect_problem(root.patch("/v1/sessions/torevoke", {"api_id": 5}), 410, "name")
        expect_problem(root.put("/v1/sessions/torevoke/peers", {"peers": []}), 410, "name")
    meta = root.get("/v1/sessions/torevoke").json()
    assert meta["revoked"] is True and meta["revoked_at"] and meta["auth_key_id"] is None or meta["revoked"] is True
    expect_problem(root.create_string("torevoke", GOOD), 409, "name")


def test_revoke_unknown_is_404(root: Client) -> None:
    expect_problem(root.delete("/v1/sessions/nope"), 404, "name")


# --------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["/", "/v1", "/v1/", "/v2/sessions", "/v1/session", "/v1/sessions/existing/exports",
                                    "/v1/sessions/existing/peers/1", "/v1/sys", "/v1/sys/nope", "/healthz/x",
                                    "/v1/sessions/existing/export/"])
def test_unknown_routes_are_404(root: Client, target: str) -> None:
    expect_problem(root.get(target), 404)


@pytest.mark.parametrize("method,target,allowed", [
    ("PUT", "/v1/sessions", {"GET", "POST", "HEAD"}),
    ("POST", "/v1/sessions/existing", {"GET", "PATCH", "DELETE", "HEAD"}),
    ("DELETE", "/v1/sessions/existing/export", {"GET", "HEAD"}),
    ("POST", "/v1/sessions/existing/peers", {"GET", "PUT", "HEAD"}),
    ("PATCH", "/v1/tokens", {"GET", "POST", "HEAD"}),
    ("GET", "/v1/sys/rotate", {"POST"}),
    ("POST", "/healthz", {"GET", "HEAD"}),
    ("DELETE", "/metrics", {"GET", "HEAD"}),
])
def test_wrong_method_is_405_with_allow(root: Client, method: str, target: str, allowed: set[str]) -> None:
    with unchanged(root):
        reply = root.call(method, target, body=b"{}" if method in ("PUT", "POST", "PATCH") else None,
                          content_type="application/json" if method in ("PUT", "POST", "PATCH") else None)
        expect_problem(reply, 405)
        allow = {m.strip() for m in (reply.header("Allow") or "").split(",") if m.strip()}
        assert allow == allowed, reply


def test_invalid_path_name_is_400(root: Client) -> None:
    expect_problem(root.get("/v1/sessions/" + "x" * 65), 400, "name")
    expect_problem(root.get("/v1/sessions/a%20b"), 400, "name")
