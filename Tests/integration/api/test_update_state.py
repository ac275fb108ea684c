# SPDX-License-Identifier: Apache-2.0
"""Issue 17 item 1 (server side), on the real binary: the update state rows at
/v1/sessions/{name}/state, and a new auth key given by PATCH (sealed like any key)."""

from __future__ import annotations

import base64
import secrets
import struct

import pytest

from api.vault import b64url_decode, expect_problem, pyrogram_current_cases, pyrogram_fields


def states(client, name: str) -> list[dict]:
    reply = client.get(f"/v1/sessions/{name}/state")
    assert reply.status == 200, reply
    return reply.json()["states"]


@pytest.fixture
def vault(vault_factory):
    v = vault_factory().start()
    yield v
    v.stop(expect_exit=0)


@pytest.fixture
def named(vault):
    assert vault.client.create_string("acct", pyrogram_current_cases()[0]["string"]).status == 201
    return "acct"


def test_states_round_trip_upsert_and_delete(vault, named) -> None:
    c = vault.client
    assert states(c, named) == []
    rows = [{"id": 0, "pts": 10, "qts": 2, "date": 1700000000, "seq": 7},
            {"id": -1001234567890, "pts": 55, "qts": None, "date": None, "seq": None},
            {"id": 1234567890, "pts": 3, "qts": 0, "date": 1, "seq": 0}]
    reply = c.put(f"/v1/sessions/{named}/state", {"states": rows})
    assert reply.status == 200 and reply.json() == {"upserted": 3, "state_count": 3}, reply
    assert states(c, named) == sorted(rows, key=lambda r: r["id"])
    # Upsert replaces a row by id (every column, nulls included).
    newer = {"id": 0, "pts": 11, "qts": None, "date": 1700000100, "seq": 8}
    assert c.put(f"/v1/sessions/{named}/state", {"states": [newer]}).json() == {"upserted": 1, "state_count": 3}
    assert [r for r in states(c, named) if r["id"] == 0] == [newer]
    assert c.delete(f"/v1/sessions/{named}/state?id=1234567890").status == 204
    assert c.delete(f"/v1/sessions/{named}/state?id=1234567890").status == 204  # idempotent
    assert [r["id"] for r in states(c, named)] == [-1001234567890, 0]


def test_states_survive_a_restart_and_go_with_a_revoke(vault, named) -> None:
    c = vault.client
    assert c.put(f"/v1/sessions/{named}/state", {"states": [{"id": 0, "pts": 1, "qts": 1, "date": 1, "seq": 1}]}).status == 200
    vault.stop(expect_exit=0)
    vault.start()
    c = vault.client
    assert states(c, named) == [{"id": 0, "pts": 1, "qts": 1, "date": 1, "seq": 1}]
    assert c.delete(f"/v1/sessions/{named}").status == 204
    assert states(c, named) == []  # a tombstone keeps only metadata
    expect_problem(c.put(f"/v1/sessions/{named}/state", {"states": [{"id": 0, "pts": 1}]}), 410)
    expect_problem(c.delete(f"/v1/sessions/{named}/state?id=0"), 410)


@pytest.mark.parametrize("body, status, field", [
    ({}, 422, "states"),
    ({"states": {}}, 422, "states"),
    ({"states": []}, 422, "states"),
    ({"states": [{"id": i, "pts": 1} for i in range(1001)]}, 422, "states"),
    ({"states": [{"id": 1, "pts": 1}, {"id": 1, "pts": 2}]}, 422, "states[1].id"),
    ({"states": [{"pts": 1}]}, 422, "states[0].id"),
    ({"states": [{"id": None}]}, 422, "states[0].id"),
    ({"states": [{"id": 1, "pts": "1"}]}, 422, "states[0].pts"),
    ({"states": [{"id": 1, "pts": 1.5}]}, 422, "states[0].pts"),
    ({"states": [{"id": 1, "pts": 1, "channel": 5}]}, 422, "states[0].channel"),
    ({"states": [7]}, 422, "states[0]"),
    ({"states": [], "extra": 1}, 422, "extra"),
])
def test_bad_state_bodies_are_refused_and_change_nothing(vault, named, body, status, field) -> None:
    c = vault.client
    before = [{"id": 0, "pts": 1, "qts": 2, "date": 3, "seq": 4}]
    assert c.put(f"/v1/sessions/{named}/state", {"states": before}).status == 200
    expect_problem(c.put(f"/v1/sessions/{named}/state", body), status, field)
    assert states(c, named) == before


def test_state_routes_refuse_what_they_must(vault, named) -> None:
    c = vault.client
    expect_problem(c.delete(f"/v1/sessions/{named}/state"), 400, "id")
    expect_problem(c.delete(f"/v1/sessions/{named}/state?id=x"), 400, "id")
    expect_problem(c.get("/v1/sessions/nobody/state"), 404)
    expect_problem(c.put("/v1/sessions/nobody/state", {"states": [{"id": 0, "pts": 1}]}), 404)
    expect_problem(c.call("PUT", f"/v1/sessions/{named}/state", body=b"{not json", content_type="application/json"), 400)
    reader = c.create_token(operations=["read"], sessions=[named])["token"]
    as_reader = c.with_token(reader)
    assert as_reader.get(f"/v1/sessions/{named}/state").status == 200
    expect_problem(as_reader.put(f"/v1/sessions/{named}/state", {"states": [{"id": 0, "pts": 1}]}), 403)
    expect_problem(as_reader.delete(f"/v1/sessions/{named}/state?id=0"), 403)
    other = c.create_token(operations=["read", "write"], sessions=["someone-else"])["token"]
    expect_problem(c.with_token(other).get(f"/v1/sessions/{named}/state"), 403)
    assert states(c, named) == []


def new_key() -> bytes:
    return secrets.token_bytes(256)


def test_patch_hands_the_session_a_new_auth_key(vault, named) -> None:
    c = vault.client
    before = c.get(f"/v1/sessions/{named}").json()
    key = new_key()
    text = base64.b64encode(key).decode()
    reply = c.patch(f"/v1/sessions/{named}", {"auth_key": text, "dc_id": 4})
    assert reply.status == 200, reply
    meta = reply.json()
    assert meta["dc_id"] == 4 and meta["version"] == before["version"] + 1
    assert meta["auth_key_id"] != before["auth_key_id"] and text not in reply.text
    exported = pyrogram_fields(c.export(named, "pyrogram").text)
    assert exported["auth_key"] == key and exported["dc_id"] == 4
    # Sealed like any key: neither the key nor its base64 is in the store (SQLite: the database and
    # its WAL; PostgreSQL: a dump and the relations' pages).
    vault.stop(expect_exit=0)
    material = vault.stored_material()
    assert material, vault.engine
    for where, data in material:
        assert key not in data and text.encode() not in data, where
    vault.start()
    assert pyrogram_fields(vault.client.export(named, "pyrogram").text)["auth_key"] == key


@pytest.mark.parametrize("body, field", [
    ({"auth_key": "AAAA"}, "dc_id"),                                            # no dc_id with it
    ({"auth_key": base64.b64encode(b"\x01" * 255).decode(), "dc_id": 2}, "auth_key"),  # 255 bytes
    ({"auth_key": base64.urlsafe_b64encode(b"\xfb" * 256).decode(), "dc_id": 2}, "auth_key"),  # URL alphabet
    ({"auth_key": base64.b64encode(b"\x01" * 256).decode().rstrip("="), "dc_id": 2}, "auth_key"),  # no padding
    ({"auth_key": base64.b64encode(bytes(256)).decode(), "dc_id": 2}, "auth_key"),  # all zero
    ({"auth_key": 5, "dc_id": 2}, "auth_key"),
    ({"auth_key": base64.b64encode(b"\x01" * 256).decode(), "dc_id": 0}, "dc_id"),
])
def test_bad_new_keys_are_refused_and_change_nothing(vault, named, body, field) -> None:
    c = vault.client
    exported = c.export(named, "pyrogram").text
    before = c.get(f"/v1/sessions/{named}").json()
    problem = expect_problem(c.patch(f"/v1/sessions/{named}", body), 422, field)
    if isinstance(body.get("auth_key"), str) and len(body["auth_key"]) > 8:
        assert body["auth_key"] not in str(problem)
    assert c.get(f"/v1/sessions/{named}").json() == before
    assert c.export(named, "pyrogram").text == exported


def test_session_files_carry_the_update_state_in_their_own_id_convention(vault, named, tmp_path) -> None:
    """Kurigram's v7 and Telethon's v7 files have an update_state table: an export writes the rows
    there (a channel's id marked for Kurigram, bare for Telethon, whichever convention the writer
    used), and an upload of such a file brings them back."""
    from api.vault import sqlite_rows
    c = vault.client
    assert c.patch(f"/v1/sessions/{named}", {"api_id": 12345, "user_id": 42, "is_bot": False, "test_mode": False}).status == 200
    rows = [{"id": 0, "pts": 10, "qts": 2, "date": 1700000000, "seq": 7},
            {"id": 1234567890, "pts": 55, "qts": None, "date": None, "seq": None},      # Telethon's bare id
            {"id": -1000987654321, "pts": 66, "qts": None, "date": None, "seq": None}]  # Kurigram's marked id
    assert c.put(f"/v1/sessions/{named}/state", {"states": rows}).status == 200
    sql = "SELECT id, pts, qts, date, seq FROM update_state ORDER BY id"
    kurigram = c.export(named, "kurigram-file")
    assert kurigram.status == 200, kurigram
    assert sqlite_rows(kurigram.body, tmp_path, sql) == [
        (-1001234567890, 55, None, None, None), (-1000987654321, 66, None, None, None), (0, 10, 2, 1700000000, 7)]
    telethon = c.export(named, "telethon-file")
    assert sqlite_rows(telethon.body, tmp_path, sql) == [
        (0, 10, 2, 1700000000, 7), (987654321, 66, None, None, None), (1234567890, 55, None, None, None)]
    # Uploaded again, each file's rows come back exactly as the file has them.
    assert c.upload("from-kurigram", kurigram.body).status == 201
    assert [tuple(r.values()) for r in states(c, "from-kurigram")] == sqlite_rows(kurigram.body, tmp_path, sql)
    assert c.upload("from-telethon", telethon.body).status == 201
    assert [tuple(r.values()) for r in states(c, "from-telethon")] == sqlite_rows(telethon.body, tmp_path, sql)


def test_telethon_files_with_a_float_date_in_update_state_upload(vault, named, tmp_path) -> None:
    """Telethon writes update_state.date as `datetime.timestamp()`, a REAL: an upload of such a
    file keeps the whole seconds (the interop run with the real Telethon found the 422)."""
    import sqlite3
    c = vault.client
    assert c.put(f"/v1/sessions/{named}/state", {"states": [{"id": 0, "pts": 5, "qts": 1, "date": 1, "seq": 2}]}).status == 200
    exported = c.export(named, "telethon-file")
    assert exported.status == 200, exported
    path = tmp_path / "real-date.session"
    path.write_bytes(exported.body)
    con = sqlite3.connect(path)
    con.execute("UPDATE update_state SET date = 1700000000.75 WHERE id = 0")
    con.commit()
    con.close()
    assert c.upload("real-date", path.read_bytes()).status == 201
    assert states(c, "real-date") == [{"id": 0, "pts": 5, "qts": 1, "date": 1700000000, "seq": 2}]
    con = sqlite3.connect(path)
    con.execute("UPDATE update_state SET date = 'yesterday' WHERE id = 0")
    con.commit()
    con.close()
    expect_problem(c.upload("text-date", path.read_bytes()), 422, "update_state.date")
