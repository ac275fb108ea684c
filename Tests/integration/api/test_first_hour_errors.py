# SPDX-License-Identifier: Apache-2.0
"""Issue 18 items 2 and 3, on the real binary: errors that say what to do, and sensible defaults.

Every refusal here is checked for its status, `application/problem+json`, the exact guidance in
`detail`, and that the vault did not change.
"""

from __future__ import annotations

import contextlib
import re
import time
from typing import Any, Iterator

import pytest

from api.vault import (
    SESSION_FILES, Client, VaultProcess, expect_problem, pyrogram_fields, string_case, telethon_cases,
)

PYROGRAM = string_case("pyrogram:dc1-prod-user")["string"]
BOTH_MEDIA_TYPES = ("application/json", "application/vnd.sqlite3")
CREATE_FIELDS = ["api_id", "auth_key", "dc_id", "exclusive", "is_bot", "name", "port", "server_address",
                 "session_string", "test_mode", "user_id"]
PATCH_FIELDS = ["api_id", "auth_key", "dc_id", "exclusive", "is_bot", "port", "server_address", "test_mode", "user_id"]
PEER_FIELDS = ["access_hash", "id", "last_update_on", "name", "phone_number", "type", "usernames"]
TOKEN_FIELDS = ["display_name", "operations", "prefixes", "sessions", "ttl_seconds"]


@contextlib.contextmanager
def unchanged(root: Client) -> Iterator[None]:
    """Every session's metadata and peers, and the token list, are the same after the block."""
    def snapshot() -> list[Any]:
        sessions = [{k: v for k, v in s.items() if k != "last_exported_at"} for s in root.list_all_sessions()]
        peers = {s["name"]: root.get(f"/v1/sessions/{s['name']}/peers").json() for s in sessions if not s["revoked"]}
        return [sessions, peers, root.get("/v1/tokens").json()]

    before = snapshot()
    yield
    assert snapshot() == before, "a refused request changed the vault"


def says_its_field_once(problem: dict[str, Any]) -> None:
    """`detail` names the field first, and no name is said twice in a row (`f: f: …`)."""
    field, detail = problem.get("field"), problem["detail"]
    if field:
        assert detail.startswith(f"{field}: ") and not detail.startswith(f"{field}: {field}"), problem
    assert not re.search(r"(^|\s)([\w.\[\]-]+): \2:", detail), problem


def accepted_fields(problem: dict[str, Any]) -> list[str]:
    detail = problem["detail"]
    assert "; accepted fields: " in detail, problem
    return detail.split("; accepted fields: ", 1)[1].split(", ")


@pytest.fixture(scope="module", autouse=True)
def existing(root: Client) -> None:
    assert root.create_string("existing", PYROGRAM).status == 201


# --------------------------------------------------------------------------
# Item 2: errors that say what to do
# --------------------------------------------------------------------------

def test_a_session_file_sent_as_json_names_both_media_types(root: Client) -> None:
    data = (SESSION_FILES / "pyrogram_user.session").read_bytes()
    with unchanged(root):
        problem = expect_problem(root.call("POST", "/v1/sessions?name=upload1", body=data,
                                           content_type="application/json"), 400, "body")
        for media_type in BOTH_MEDIA_TYPES:
            assert media_type in problem["detail"], problem
        assert "?name=" in problem["detail"], problem
        says_its_field_once(problem)
        # A JSON body that does not parse also says how a file is sent.
        problem = expect_problem(root.call("POST", "/v1/sessions", body=b"{", content_type="application/json"),
                                 400, "body")
        for media_type in BOTH_MEDIA_TYPES:
            assert media_type in problem["detail"], problem
    assert root.get("/v1/sessions/upload1").status == 404


@pytest.mark.parametrize("ctype", ["application/octet-stream", "application/x-www-form-urlencoded", "text/plain", None])
def test_a_create_with_a_wrong_content_type_names_both_media_types(root: Client, ctype: str | None) -> None:
    data = (SESSION_FILES / "pyrogram_user.session").read_bytes()
    with unchanged(root):
        problem = expect_problem(root.call("POST", "/v1/sessions?name=upload2", body=data, content_type=ctype),
                                 415, "Content-Type")
        for media_type in BOTH_MEDIA_TYPES:
            assert media_type in problem["detail"], problem
        says_its_field_once(problem)
    assert root.get("/v1/sessions/upload2").status == 404


def test_413_for_an_upload_states_the_limit_and_the_setting_that_raises_it(vault_factory) -> None:
    v: VaultProcess = vault_factory(storage="memory", env={"SESSION_VAULT_MAX_BODY_BYTES": "65536"}).start()
    c = v.client
    reply = c.call("POST", "/v1/sessions?name=big", body=b"S" * 65537, content_type="application/vnd.sqlite3")
    assert reply.status == 413, reply
    assert reply.content_type == "application/problem+json", reply
    problem = reply.json()
    assert "65536 bytes" in problem["detail"], problem
    assert "SESSION_VAULT_MAX_BODY_BYTES" in problem["detail"], problem
    assert c.list_all_sessions() == []
    # The limit is the limit: one byte under it reaches the handler (and is refused as a file).
    expect_problem(c.call("POST", "/v1/sessions?name=big", body=b"S" * 65536, content_type="application/vnd.sqlite3"),
                   422)
    assert c.list_all_sessions() == []
    v.stop(expect_exit=0)


def test_413_for_a_json_body_states_the_limit_in_bytes(root: Client) -> None:
    filler = "A" * (256 * 1024)
    with unchanged(root):
        problem = expect_problem(root.post("/v1/sessions", {"name": "big", "session_string": filler}), 413, "body")
        assert "262144 bytes" in problem["detail"], problem
        problem = expect_problem(root.put("/v1/sessions/existing/peers", {"peers": [], "pad": filler}), 413, "body")
        assert "262144 bytes" in problem["detail"], problem


@pytest.mark.parametrize("text", ["not-a-session-string", "A" * 362, PYROGRAM[:-1] + " ", PYROGRAM + "é"],
                         ids=["words", "A-362", "trailing-space", "non-ascii"])
def test_a_bad_session_string_names_its_field_once(root: Client, text: str) -> None:
    with unchanged(root):
        problem = expect_problem(root.create_string("badstring", text), 422, "session_string")
        assert problem["detail"].startswith("session_string: "), problem
        says_its_field_once(problem)


def test_other_field_errors_name_their_field_once(root: Client) -> None:
    with unchanged(root):
        for reply, field in [
            (root.create_string("..", PYROGRAM), "name"),
            (root.post("/v1/sessions", {"name": "x", "session_string": PYROGRAM, "api_id": 0}), "api_id"),
            (root.post("/v1/sessions", {"name": "x", "dc_id": 2, "auth_key": "AAAA"}), "auth_key"),
            (root.patch("/v1/sessions/existing", {"port": 0}), "port"),
            (root.put("/v1/sessions/existing/peers", {"peers": [{"id": "1", "access_hash": 2}]}), "peers[0].id"),
            (root.get("/v1/sessions?limit=0"), "limit"),
        ]:
            says_its_field_once(expect_problem(reply, reply.status, field))


def test_an_unknown_field_lists_the_accepted_ones(root: Client) -> None:
    with unchanged(root):
        problem = expect_problem(root.post("/v1/sessions", {"nmae": "x", "session_string": PYROGRAM}), 422, "nmae")
        assert accepted_fields(problem) == CREATE_FIELDS, problem
        says_its_field_once(problem)
        problem = expect_problem(root.patch("/v1/sessions/existing", {"apiid": 5}), 422, "apiid")
        assert accepted_fields(problem) == PATCH_FIELDS, problem
        problem = expect_problem(root.put("/v1/sessions/existing/peers", {"peers": [], "peer": []}), 422, "peer")
        assert accepted_fields(problem) == ["peers"], problem
        problem = expect_problem(root.put("/v1/sessions/existing/peers", {"peers": [
            {"id": 1, "access_hash": 2}, {"id": 3, "access_hash": 4, "colour": "red"}]}), 422, "peers[1].colour")
        assert accepted_fields(problem) == PEER_FIELDS, problem
        says_its_field_once(problem)
        problem = expect_problem(root.post("/v1/tokens", {"operations": ["read"], "session": ["existing"]}), 422, "session")
        assert accepted_fields(problem) == TOKEN_FIELDS, problem


@pytest.mark.parametrize("value", ["1", " 1 ", "17"])
def test_an_unquoted_if_match_says_etags_are_quoted(root: Client, value: str) -> None:
    etag = root.get("/v1/sessions/existing").header("ETag")
    with unchanged(root):
        problem = expect_problem(root.patch("/v1/sessions/existing", {"port": 443}, headers={"If-Match": value}),
                                 412, "If-Match")
        assert "quoted" in problem["detail"], problem
        assert f'If-Match: "{value.strip()}"' in problem["detail"], problem
        says_its_field_once(problem)
    assert root.get("/v1/sessions/existing").header("ETag") == etag


def test_a_weak_or_malformed_if_match_still_says_what_an_etag_looks_like(root: Client) -> None:
    with unchanged(root):
        for value in ['W/"1"', "garbage"]:
            problem = expect_problem(root.patch("/v1/sessions/existing", {"port": 443}, headers={"If-Match": value}),
                                     412, "If-Match")
            assert "quoted" in problem["detail"] or "strong" in problem["detail"], problem
            says_its_field_once(problem)


# --------------------------------------------------------------------------
# Item 3: sensible defaults
# --------------------------------------------------------------------------

def test_export_without_format_uses_a_telethon_strings_own_family(root: Client) -> None:
    case = telethon_cases()[0]
    assert root.create_string("own-telethon", case["string"]).status == 201
    reply = root.export("own-telethon")
    assert reply.status == 200, reply
    assert reply.content_type == "text/plain" and reply.text == case["string"]
    as_json = root.export("own-telethon", headers={"Accept": "application/json"})
    assert as_json.json() == {"name": "own-telethon", "format": "telethon", "session_string": case["string"]}


def test_export_without_format_uses_a_pyrogram_strings_own_family(root: Client) -> None:
    assert root.create_string("own-pyrogram", PYROGRAM).status == 201
    assert root.export("own-pyrogram").text == PYROGRAM
    as_json = root.export("own-pyrogram", headers={"Accept": "application/json"})
    assert as_json.json()["format"] == "pyrogram"


@pytest.mark.parametrize("vector,family", [("telethon_user", "telethon"), ("telethon-1.42_user", "telethon"),
                                           ("pyrogram_user", "pyrogram"), ("kurigram_user", "pyrogram")])
def test_export_without_format_uses_an_uploaded_files_own_family(root: Client, vector: str, family: str) -> None:
    name = "own-" + vector.replace(".", "-")
    assert root.upload(name, (SESSION_FILES / f"{vector}.session").read_bytes()).status == 201
    reply = root.export(name, headers={"Accept": "application/json"})
    assert reply.status == 200, reply
    body = reply.json()
    assert body["format"] == family, body
    assert root.export(name).text == root.export(name, family).text == body["session_string"]
    if family == "pyrogram":
        assert len(body["session_string"]) == 362
        pyrogram_fields(body["session_string"])
    else:
        assert body["session_string"].startswith("1") and len(body["session_string"]) == 353


def test_export_without_format_still_names_what_the_family_lacks(root: Client) -> None:
    # A legacy Pyrogram string's own family is Pyrogram, which needs api_id: 422 naming it, as before.
    assert root.create_string("own-legacy", string_case("pyrogram-1.4:legacy32-dc2-prod-user")["string"]).status == 201
    with unchanged(root):
        problem = expect_problem(root.export("own-legacy"), 422, "api_id")
        assert problem["missing_fields"] == ["api_id"], problem


SHARED_PHONE = "15550000009"


def test_a_phone_lookup_returns_every_match_with_last_update_on(root: Client) -> None:
    assert root.create_string("phones", PYROGRAM).status == 201
    peers = [
        {"id": 501, "access_hash": 1, "type": "user", "phone_number": SHARED_PHONE, "last_update_on": 1700000000},
        {"id": 502, "access_hash": 2, "type": "user", "phone_number": SHARED_PHONE, "last_update_on": 1700000100},
        {"id": 503, "access_hash": 3, "type": "user", "phone_number": "15550000010", "last_update_on": 1700000200},
        {"id": 504, "access_hash": 4, "type": "user", "phone_number": SHARED_PHONE},
    ]
    before = int(time.time())
    assert root.put("/v1/sessions/phones/peers", {"peers": peers}).json() == {"upserted": 4, "peer_count": 4}
    after = int(time.time())
    reply = root.get(f"/v1/sessions/phones/peers?phone={SHARED_PHONE}")
    assert reply.status == 200 and reply.content_type == "application/json", reply
    body = reply.json()
    assert body["next_after"] is None
    items = body["items"]
    # Every match, the most recently updated first; a peer upserted without a time gets the upsert's.
    assert [p["id"] for p in items] == [504, 502, 501], items
    assert [p["last_update_on"] for p in items[1:]] == [1700000100, 1700000000], items
    assert before <= items[0]["last_update_on"] <= after, items
    assert all(p["phone_number"] == SHARED_PHONE for p in items)
    single = root.get("/v1/sessions/phones/peers?phone=15550000010").json()["items"]
    assert [(p["id"], p["last_update_on"]) for p in single] == [(503, 1700000200)]
    assert root.get("/v1/sessions/phones/peers?phone=15550000011").json() == {"items": [], "next_after": None}
    # The other look-ups and the listing carry last_update_on too.
    assert root.get("/v1/sessions/phones/peers?id=501").json()["items"][0]["last_update_on"] == 1700000000
    listed = root.get("/v1/sessions/phones/peers").json()["items"]
    assert {p["id"]: p["last_update_on"] for p in listed if p["id"] != 504} == {501: 1700000000, 502: 1700000100,
                                                                                503: 1700000200}


def test_a_session_files_peer_times_survive_the_upload(root: Client) -> None:
    assert root.upload("phones-file", (SESSION_FILES / "pyrogram_user.session").read_bytes()).status == 201
    items = root.get("/v1/sessions/phones-file/peers").json()["items"]
    assert items and all(isinstance(p["last_update_on"], int) for p in items), items


@pytest.mark.parametrize("value", ["1700000000", -1, 1.5, True])
def test_a_bad_last_update_on_is_422_naming_it(root: Client, value: Any) -> None:
    with unchanged(root):
        problem = expect_problem(root.put("/v1/sessions/existing/peers", {"peers": [
            {"id": 9, "access_hash": 9, "last_update_on": value}]}), 422, "peers[0].last_update_on")
        says_its_field_once(problem)
