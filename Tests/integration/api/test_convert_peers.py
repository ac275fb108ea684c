# SPDX-License-Identifier: Apache-2.0
"""Conversions that lack data are refused, then work once PATCHed; the peers cache end to end."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from api.vault import Client, expect_problem, pyrogram_fields, sqlite_rows, string_case, telethon_cases


@pytest.mark.parametrize("case", telethon_cases(), ids=[c["id"] for c in telethon_cases()])
def test_telethon_to_pyrogram_is_refused_then_patched(root: Client, case: dict) -> None:
    name = "tl-" + case["id"].split(":")[1]
    created = root.create_string(name, case["string"])
    assert created.status == 201, created
    meta = created.json()
    assert meta["source_format"] == "telethon" and meta["api_id"] is None and meta["user_id"] is None
    before = root.get(f"/v1/sessions/{name}").json()
    problem = expect_problem(root.export(name, "pyrogram"), 422)
    missing = set(problem["missing_fields"])
    assert {"api_id", "user_id", "is_bot"} <= missing, problem
    assert missing <= {"api_id", "user_id", "is_bot", "test_mode"}, problem
    for f in missing:
        assert f in problem["detail"]
    assert root.get(f"/v1/sessions/{name}").json() == before, "a refused conversion changed the session"
    # Telethon export of a Telethon session needs nothing and returns the same string.
    assert root.export(name, "telethon").text == case["string"]

    patch = {"api_id": 12345, "user_id": 5000000000, "is_bot": False}
    if "test_mode" in missing:
        patch["test_mode"] = False
    etag = root.get(f"/v1/sessions/{name}").header("ETag")
    patched = root.patch(f"/v1/sessions/{name}", patch, headers={"If-Match": etag})
    assert patched.status == 200, patched
    text = root.export(name, "pyrogram").text
    assert len(text) == 362, text
    decoded = pyrogram_fields(text)
    assert decoded["auth_key"].hex() == case["fields"]["auth_key_hex"]
    assert decoded["dc_id"] == case["fields"]["dc_id"]
    assert (decoded["api_id"], decoded["user_id"], decoded["is_bot"]) == (12345, 5000000000, False)
    as_json = root.export(name, "pyrogram", headers={"Accept": "application/json"})
    assert as_json.content_type == "application/json"
    assert as_json.json() == {"name": name, "format": "pyrogram", "session_string": text}


def test_legacy_string_needs_api_id(root: Client) -> None:
    case = string_case("pyrogram-1.4:legacy64-dc4-prod-user-id-above-2p32")
    assert root.create_string("legacy", case["string"]).status == 201
    problem = expect_problem(root.export("legacy"), 422, "api_id")
    assert problem["missing_fields"] == ["api_id"]
    assert root.patch("/v1/sessions/legacy", {"api_id": 777}).status == 200
    decoded = pyrogram_fields(root.export("legacy").text)
    assert decoded["auth_key"].hex() == case["fields"]["auth_key_hex"] and decoded["user_id"] == 5000000000
    assert decoded["api_id"] == 777


def test_pyrogram_to_telethon_uses_dc_table(root: Client) -> None:
    case = string_case("pyrogram:dc2-prod-user-id-above-2p32")
    assert root.create_string("p2t", case["string"]).status == 201
    text = root.export("p2t", "telethon").text
    assert text.startswith("1") and len(text) == 353
    raw = base64.urlsafe_b64decode(text[1:])
    # Telethon StringSession v1: '1' + base64(>B4sH256s) = dc_id, IPv4, port, key.
    assert raw[0] == 2 and raw[7:263].hex() == case["fields"]["auth_key_hex"]
    assert raw[1:5] == bytes([149, 154, 167, 51]) and int.from_bytes(raw[5:7], "big") == 443


# --------------------------------------------------------------------------
# Peers
# --------------------------------------------------------------------------

PEERS = [
    {"id": 100000001, "access_hash": 2695612316679382524, "type": "user", "usernames": ["Alice_Vault"],
     "phone_number": "15550000001", "name": "Alice"},
    {"id": 6000000123, "access_hash": -8523398516501710323, "type": "bot", "usernames": ["VaultTestBot"]},
    {"id": -4000001, "access_hash": 0, "type": "group", "name": "Basic group"},
    {"id": -1002345678901, "access_hash": -9223372036854775808, "type": "channel", "usernames": ["VaultNews", "VaultNews2"]},
    {"id": -1001500000000, "access_hash": 9223372036854775807, "type": "supergroup", "usernames": ["MultiA", "MultiB", "MultiC"]},
    {"id": 9223372036854775807, "access_hash": -1, "type": "user", "phone_number": "447700900002"},
    {"id": 5000000001, "access_hash": 1, "type": None},
]


@pytest.fixture(scope="module")
def peered(root: Client) -> str:
    case = string_case("pyrogram:dc1-prod-user")
    assert root.create_string("peered", case["string"]).status == 201
    reply = root.put("/v1/sessions/peered/peers", {"peers": PEERS})
    assert reply.status == 200, reply
    assert reply.json() == {"upserted": len(PEERS), "peer_count": len(PEERS)}
    return "peered"


def normal(peer: dict) -> dict:
    return {"id": peer["id"], "access_hash": peer["access_hash"], "type": peer.get("type"),
            "usernames": [u.lower() for u in peer.get("usernames", [])], "phone_number": peer.get("phone_number"),
            "name": peer.get("name")}


def lookup(root: Client, query: str) -> list[dict]:
    """The items of a look-up, without `last_update_on` (the upsert's time: checked to be one)."""
    reply = root.get(f"/v1/sessions/peered/peers?{query}")
    assert reply.status == 200, reply
    items = reply.json()["items"]
    assert all(isinstance(p.pop("last_update_on"), int) for p in items), items
    return items


def test_peer_lookups(root: Client, peered: str) -> None:
    by_id = {p["id"]: normal(p) for p in PEERS}
    for p in PEERS:
        assert lookup(root, f"id={p['id']}") == [by_id[p["id"]]]
    assert lookup(root, "username=vaultnews2") == [by_id[-1002345678901]]
    assert lookup(root, "username=VAULTNEWS") == [by_id[-1002345678901]]
    assert lookup(root, "username=multic") == [by_id[-1001500000000]]
    assert lookup(root, "username=alice_vault") == [by_id[100000001]]
    assert lookup(root, "phone=447700900002") == [by_id[9223372036854775807]]
    assert lookup(root, "phone=15550000001") == [by_id[100000001]]
    assert lookup(root, "id=42") == []
    assert lookup(root, "username=nobody") == []
    assert lookup(root, "phone=1") == []
    assert root.get("/v1/sessions/peered").json()["peer_count"] == len(PEERS)


def test_peer_pagination(root: Client, peered: str) -> None:
    seen, after = [], None
    for _ in range(len(PEERS) + 2):
        page = root.get("/v1/sessions/peered/peers?limit=2" + (f"&after={after}" if after is not None else "")).json()
        assert len(page["items"]) <= 2
        seen += [p["id"] for p in page["items"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == sorted(p["id"] for p in PEERS)


def test_peer_upsert_replaces_by_id(root: Client, peered: str) -> None:
    case = string_case("pyrogram:dc3-prod-bot")
    assert root.create_string("upsert", case["string"]).status == 201
    assert root.put("/v1/sessions/upsert/peers", {"peers": PEERS[:2]}).json()["peer_count"] == 2
    changed = dict(PEERS[0], access_hash=-77, usernames=["renamed"])
    reply = root.put("/v1/sessions/upsert/peers", {"peers": [changed, PEERS[2]]})
    assert reply.json() == {"upserted": 2, "peer_count": 3}
    got = root.get(f"/v1/sessions/upsert/peers?id={PEERS[0]['id']}").json()["items"][0]
    assert got["access_hash"] == -77 and got["usernames"] == ["renamed"]
    assert root.get("/v1/sessions/upsert/peers?username=alice_vault").json()["items"] == []


@pytest.mark.parametrize("peers,field", [
    ([{"access_hash": 1}], "peers[0].id"),
    ([PEERS[0], {"id": 5}], "peers[1].access_hash"),
    ([{"id": "5", "access_hash": 1}], "peers[0].id"),
    ([{"id": 9223372036854775808, "access_hash": 1}], "peers[0].id"),
    ([{"id": 5, "access_hash": 1.5}], "peers[0].access_hash"),
    ([PEERS[0], PEERS[1], {"id": 5, "access_hash": 1, "type": "robot"}], "peers[2].type"),
    ([{"id": 5, "access_hash": 1, "usernames": "bob"}], "peers[0].usernames"),
    ([{"id": 5, "access_hash": 1, "usernames": ["bad name"]}], "peers[0].usernames"),
    ([{"id": 5, "access_hash": 1, "phone_number": "+15550000"}], "peers[0].phone_number"),
    ([{"id": 5, "access_hash": 1, "phone_number": "1" * 21}], "peers[0].phone_number"),
    ([{"id": 5, "access_hash": 1, "name": "x" * 257}], "peers[0].name"),
    ([{"id": 5, "access_hash": 1, "colour": "red"}], "peers[0].colour"),
    ([PEERS[0], PEERS[0]], "peers[1].id"),
])
def test_bad_peer_entries_are_422_naming_the_index(root: Client, peered: str, peers: list, field: str) -> None:
    before = root.get("/v1/sessions/peered/peers").json()
    expect_problem(root.put("/v1/sessions/peered/peers", {"peers": peers}), 422, field)
    assert root.get("/v1/sessions/peered/peers").json() == before


def test_non_object_peer_entry_names_the_entry(root: Client, peered: str) -> None:
    problem = expect_problem(root.put("/v1/sessions/peered/peers", {"peers": ["not an object"]}), 422)
    assert problem["field"] == "peers[0]", problem


def test_peer_lookup_by_int64_min(root: Client) -> None:
    assert root.create_string("int64min", string_case("pyrogram:dc1-test-user")["string"]).status == 201
    assert root.put("/v1/sessions/int64min/peers", {"peers": [
        {"id": -9223372036854775808, "access_hash": 3, "type": "channel"}]}).status == 200
    reply = root.get("/v1/sessions/int64min/peers?id=-9223372036854775808")
    assert reply.status == 200, reply
    assert [p["id"] for p in reply.json()["items"]] == [-9223372036854775808]
    assert root.get("/v1/sessions/int64min/peers?after=-9223372036854775808&limit=1").status == 200


def test_peer_put_bad_bodies(root: Client, peered: str) -> None:
    expect_problem(root.put("/v1/sessions/peered/peers", {}), 422, "peers")
    expect_problem(root.put("/v1/sessions/peered/peers", {"peers": {}}), 422, "peers")
    too_many = [{"id": i, "access_hash": i} for i in range(1, 1002)]
    expect_problem(root.put("/v1/sessions/peered/peers", {"peers": too_many}), 422, "peers")
    expect_problem(root.put("/v1/sessions/nosuch/peers", {"peers": []}), 404, "name")
    expect_problem(root.get("/v1/sessions/peered/peers?id=1&username=x"), 400)
    expect_problem(root.get("/v1/sessions/peered/peers?phone=abc"), 400, "phone")
    expect_problem(root.get("/v1/sessions/peered/peers?id=9223372036854775808"), 400, "id")
    expect_problem(root.get("/v1/sessions/peered/peers?limit=0"), 400, "limit")


def test_peers_in_pyrogram_file_export(root: Client, peered: str, tmp_path: Path) -> None:
    data = root.export("peered", "pyrogram-file")
    assert data.status == 200 and data.content_type == "application/vnd.sqlite3"
    assert 'filename="peered.session"' in (data.header("Content-Disposition") or "")
    rows = {r[0]: r for r in sqlite_rows(data.body, tmp_path, "SELECT id, access_hash, username, phone_number FROM peers")}
    assert set(rows) == {p["id"] for p in PEERS}
    assert rows[-1002345678901][1] == -9223372036854775808 and rows[-1002345678901][2] == "vaultnews"
    assert rows[9223372036854775807][1:] == (-1, None, "447700900002")
    assert rows[-1001500000000][1] == 9223372036854775807
    session = sqlite_rows(data.body, tmp_path, "SELECT dc_id, api_id, test_mode, auth_key, user_id, is_bot FROM sessions")
    decoded = pyrogram_fields(string_case("pyrogram:dc1-prod-user")["string"])
    assert session == [(1, 12345, 0, decoded["auth_key"], 123456789, 0)]


def test_peers_in_kurigram_file_export(root: Client, peered: str, tmp_path: Path) -> None:
    data = root.export("peered", "kurigram-file").body
    rows = {r[0]: r for r in sqlite_rows(data, tmp_path, "SELECT id, access_hash, phone_number FROM peers")}
    assert set(rows) == {p["id"] for p in PEERS}
    assert rows[-1002345678901][1] == -9223372036854775808
    names = sqlite_rows(data, tmp_path, "SELECT id, username FROM usernames ORDER BY id, username")
    assert (-1001500000000, "multic") in names and (-1002345678901, "vaultnews2") in names
    assert (100000001, "alice_vault") in names


def test_peers_in_telethon_file_export(root: Client, peered: str, tmp_path: Path) -> None:
    data = root.export("peered", "telethon-file").body
    rows = {r[0]: r for r in sqlite_rows(data, tmp_path, "SELECT id, hash, username, phone, name FROM entities")}
    assert {p["id"] for p in PEERS} <= set(rows)
    assert rows[-1002345678901][1] == -9223372036854775808 and rows[-1002345678901][2] == "vaultnews"
    assert rows[100000001][2:] == ("alice_vault", 15550000001, "Alice") or rows[100000001][3] in (15550000001, "15550000001")
    key = sqlite_rows(data, tmp_path, "SELECT dc_id, server_address, port, auth_key FROM sessions")
    assert len(key) == 1 and key[0][0] == 1 and key[0][2] == 443
    assert key[0][3] == pyrogram_fields(string_case("pyrogram:dc1-prod-user")["string"])["auth_key"]
