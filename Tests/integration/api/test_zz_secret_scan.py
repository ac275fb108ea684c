# SPDX-License-Identifier: Apache-2.0
"""The final secret scan (named to run last): after a representative run on a file vault, no
auth key, session string, token or master key appears in the database, its WAL/SHM, the logs,
/metrics, error bodies or any other non-export response.

In the matrix's other modes (matrix.py) the same run is scanned where that mode keeps things: on
PostgreSQL, a pg_dump of the vault's database, its relations' pages (dead row versions included),
the WAL the cluster wrote during the run and the cluster's log, and the database password is one
more secret; over HTTPS, the lines of the server's TLS private key are secrets too."""

from __future__ import annotations

import base64
import secrets

import pytest

from api import matrix
from api.vault import (
    VaultProcess, b64url_decode, expect_problem, invalid_session_strings, pyrogram_current_cases,
    session_file_vectors, string_case, telethon_cases,
)

FORMATS = (None, "pyrogram", "telethon", "pyrogram-file", "kurigram-file", "telethon-file")


def forms_of_key(key: bytes) -> list[bytes]:
    """Every encoding the key could leak in (first 32 bytes suffice; every base64 alignment)."""
    head = key[:32]
    out = [head, head.hex().encode(), head.hex().upper().encode()]
    for off in range(3):
        chunk = key[off:off + 30]
        out.append(base64.b64encode(chunk))
        out.append(base64.urlsafe_b64encode(chunk))
    return out


def forms_of_text(text: str) -> list[bytes]:
    raw = text.encode()
    return [raw, raw[len(raw) // 3: len(raw) // 3 + 40]] if len(raw) > 60 else [raw]


@pytest.fixture(scope="module")
def representative_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    v = VaultProcess(tmp_path_factory.mktemp("scan"), env={"SESSION_VAULT_LOG_LEVEL": "debug"})
    keys: list[bytes] = []
    texts: list[str] = []
    lease_ids: list[str] = []
    wal = None
    stored: list[tuple[str, bytes]] = []
    try:
        if v.engine == "postgres":
            v.storage_env()  # the database exists before the WAL window opens
            wal = matrix.cluster().wal_window()
        v.start()
        c = v.client
        # Strings of every family.
        picked = pyrogram_current_cases()[:3] + [string_case("pyrogram-1.4:legacy64-dc4-prod-user-id-above-2p32")] \
            + telethon_cases()[:2] + [string_case("telethon:ipv6-dc2")]
        for i, case in enumerate(picked):
            extra = {"api_id": 4242} if case["format_name"].startswith("pyrogram-legacy") else {}
            assert c.create_string(f"s{i}", case["string"], **extra).status == 201
            keys.append(bytes.fromhex(case["fields"]["auth_key_hex"]))
            texts.append(case["string"])
        # Fields.
        key = secrets.token_bytes(256)
        keys.append(key)
        assert c.post("/v1/sessions", {"name": "fields", "dc_id": 2, "auth_key": base64.b64encode(key).decode(),
                                       "api_id": 1, "user_id": 2, "is_bot": True, "test_mode": False}).status == 201
        # Files.
        for path, meta in session_file_vectors():
            assert c.upload("f-" + path.stem.replace(".", "_"), path.read_bytes()).status == 201
            keys.append(bytes.fromhex(meta["input"]["fields"]["auth_key_hex"]))
        # Peers.
        assert c.put("/v1/sessions/s0/peers", {"peers": [
            {"id": -1002345678901, "access_hash": -9223372036854775808, "type": "channel", "usernames": ["scan_chan"]},
            {"id": 42, "access_hash": 7, "type": "user", "phone_number": "15550009999"}]}).status == 200
        # Patch Telethon sessions so every format exports.
        names = [s["name"] for s in c.list_all_sessions()]
        for name in names:
            meta = c.get(f"/v1/sessions/{name}").json()
            patch = {k: v for k, v in (("api_id", 99), ("user_id", 7), ("is_bot", False), ("test_mode", False))
                     if meta[k] is None}
            if patch:
                assert c.patch(f"/v1/sessions/{name}", patch).status == 200
        # Exports in every format, by root and by scoped tokens.
        tokens = [v.root_token]
        for name in names:
            for fmt in FORMATS:
                reply = c.export(name, fmt)
                assert reply.status == 200, (name, fmt, reply)
                if fmt in (None, "pyrogram", "telethon"):
                    texts.append(reply.text)
        token = c.create_token(operations=["export", "read"], prefixes=["s"], ttl_seconds=600)
        tokens.append(token["token"])
        scoped = c.with_token(token["token"])
        assert scoped.export("s0", "telethon").status == 200
        expect_problem(scoped.export("fields"), 403)
        admin = c.create_token(operations=["admin"])
        tokens.append(admin["token"])
        assert c.with_token(admin["token"]).get("/v1/audit").status == 200
        # Leases: acquired with an export, renewed, used as a fence, released, used after its
        # release (an error body), one held across the restart, one broken.
        got = c.post("/v1/sessions/s2/lease?export=pyrogram", {"holder": "scan:1", "ttl_seconds": 30})
        assert got.status == 201, got
        lease_ids.append(got.json()["lease_id"])
        texts.append(got.json()["session_string"])
        fence = {"Session-Vault-Lease": lease_ids[-1]}
        assert c.put("/v1/sessions/s2/lease", {"ttl_seconds": 60}, headers=fence).status == 200
        assert c.patch("/v1/sessions/s2", {"exclusive": True}, headers=fence).status == 200
        assert c.export("s2", headers=fence).status == 200
        assert c.delete("/v1/sessions/s2/lease", headers=fence).status == 204
        expect_problem(c.put("/v1/sessions/s2/lease", headers=fence), 409)
        expect_problem(c.export("s2", headers=fence), 409)
        got = c.post("/v1/sessions/s2/lease", {"holder": "scan:2", "ttl_seconds": 60})
        assert got.status == 201, got
        lease_ids.append(got.json()["lease_id"])
        got = c.post("/v1/sessions/s3/lease", {"holder": "scan:3"})
        assert got.status == 201, got
        lease_ids.append(got.json()["lease_id"])
        assert c.delete("/v1/sessions/s3/lease").status == 204
        expect_problem(c.put("/v1/sessions/s3/lease", headers={"Session-Vault-Lease": lease_ids[-1]}), 409)
        # Errors that carry secret-looking input: near-miss tokens, damaged strings, bad keys.
        expect_problem(c.with_token(token["token"][:-2] + "xx").get("/v1/sessions"), 401)
        for bad in invalid_session_strings()[:6]:
            c.create_string("bad", bad["input"])
        damaged = texts[0][:-3] + "!!!"
        expect_problem(c.create_string("bad", damaged), 422, "session_string")
        expect_problem(c.post("/v1/sessions", {"name": "bad", "dc_id": 2,
                                               "auth_key": base64.b64encode(keys[0][:255]).decode()}), 422, "auth_key")
        expect_problem(c.create_string("s0", texts[1]), 409)
        # Key management, revocations, and a restart in the middle.
        assert c.post("/v1/sys/rotate").status == 200
        assert c.post("/v1/sys/rewrap").status == 200
        assert c.delete("/v1/sessions/s1").status == 204
        assert c.delete(f"/v1/tokens/{token['accessor']}").status == 204
        c.get("/metrics", token=None)
        c.get("/v1/sys/status")
        c.get("/readyz", token=None)
        v.stop(expect_exit=0)
        v.extra_env["SESSION_VAULT_LOG_FORMAT"] = "json"
        v.start()
        c = v.client
        assert c.export("s0").text == texts[0]
        assert c.put("/v1/sessions/s2/lease", headers={"Session-Vault-Lease": lease_ids[1]}).status == 200
        assert c.get("/v1/sessions/s2/lease").status == 200
        expect_problem(c.export("s1"), 410)
        assert c.delete("/v1/sessions/f-pyrogram_user").status == 204
        c.audit()
        c.get("/metrics", token=None)
        v.stop(expect_exit=0)
        if wal is not None:
            stored.append(("PostgreSQL WAL written during the run", wal.read()))
        stored += v.stored_material()
        log = matrix.cluster().server_log() if v.engine == "postgres" else None
        if log is not None:
            stored.append(("PostgreSQL server log", log.read_bytes()))
    finally:
        if wal is not None:
            wal.close()
        v.dispose()
    return {"vault": v, "keys": keys, "texts": texts, "tokens": tokens, "lease_ids": lease_ids, "stored": stored}


def needles(run: dict) -> list[tuple[str, bytes]]:
    v: VaultProcess = run["vault"]
    out: list[tuple[str, bytes]] = []
    for i, key in enumerate(run["keys"]):
        out += [(f"auth key {i}", f) for f in forms_of_key(key)]
    for i, text in enumerate(run["texts"]):
        out += [(f"session string {i}", f) for f in forms_of_text(text)]
    for i, token in enumerate(run["tokens"]):
        out += [(f"token {i}", token.encode()), (f"token {i} body", token[4:28].encode())]
    for i, lease_id in enumerate(run["lease_ids"]):
        out += [(f"lease id {i}", lease_id.encode()), (f"lease id {i} body", lease_id[4:28].encode())]
    master = base64.b64decode(v.master_key)
    out += [("master key b64", v.master_key.encode()), ("master key raw", master), ("master key hex", master.hex().encode())]
    if v.engine == "postgres":
        out.append(("database password", matrix.cluster().password.encode()))
    tls = matrix.tls()
    if tls is not None:
        out += [(f"TLS key line {i}", line.encode()) for i, line in enumerate(tls.key_lines())]
    return out


def haystacks(run: dict) -> list[tuple[str, bytes]]:
    v: VaultProcess = run["vault"]
    out = list(run["stored"])
    for path in v.log_files():
        out.append((str(path.relative_to(v.workdir)), path.read_bytes()))
    out += [(f"/metrics body {i}", b) for i, b in enumerate(v.recorder.metrics_bodies)]
    out += [(f"error body {i}", b) for i, b in enumerate(v.recorder.error_bodies)]
    out += [(f"response body {i}", b) for i, b in enumerate(v.recorder.other_bodies)]
    return out


def test_the_run_produced_material(representative_run: dict) -> None:
    stacks = dict(haystacks(representative_run))
    v = representative_run["vault"]
    if v.engine == "postgres":
        assert len(stacks["pg_dump"]) > 4096 and b"COPY public.sessions" in stacks["pg_dump"]
        assert any(name.endswith("/sessions") and len(data) >= 8192 for name, data in stacks.items()), sorted(stacks)
        assert len(stacks["PostgreSQL WAL written during the run"]) > 65536
        # The window and the pages are the run's own: a session name it wrote is in both.
        name = ("f-" + session_file_vectors()[0][0].stem.replace(".", "_")).encode()
        assert name in stacks["PostgreSQL WAL written during the run"]
        assert any(name in data for where, data in stacks.items() if where.endswith("/sessions"))
    else:
        assert "vault.db" in stacks and len(stacks["vault.db"]) > 4096
    assert len(v.recorder.error_bodies) >= 8 and len(v.recorder.metrics_bodies) >= 2
    assert any("stderr" in name and len(data) > 200 for name, data in stacks.items())
    assert len(representative_run["keys"]) >= 15 and len(representative_run["tokens"]) == 3
    assert len(representative_run["lease_ids"]) == 3


def test_no_secret_anywhere(representative_run: dict) -> None:
    found = []
    for where, data in haystacks(representative_run):
        for what, needle in needles(representative_run):
            if needle and needle in data:
                found.append(f"{what} in {where}")
    assert not found, "secrets leaked:\n" + "\n".join(sorted(set(found)))


def test_scan_would_find_a_plaintext_key(representative_run: dict) -> None:
    """The scanner is not blind: an export (which legitimately holds keys) is found."""
    key = representative_run["keys"][0]
    text = representative_run["texts"][0]
    assert any(n in text.encode() for n in forms_of_key(key))
    assert any(n in b64url_decode(text) for n in forms_of_key(key))
