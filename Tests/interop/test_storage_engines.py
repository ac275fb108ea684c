# SPDX-License-Identifier: Apache-2.0
"""Issue 17's proof for the storage engines (clients/python): the real Pyrogram 2.0.106, Hydrogram
0.2.0, Kurigram 2.2.26, Pyrofork 2.3.69 and Telethon 1.45, each in its own venv with
``session_vault`` installed, offline under the network guard, against the real vault binary.

The lease and update-state routes (issues 16 and 17) are probed once: a vault that answers 404/405
on them skips this module with that reason instead of failing.
``SESSION_VAULT_ENGINE_BIN`` may name another vault for this module only (e.g.
clients/python/tests/fake_vault.py, to debug the library side before the server routes exist).
"""

import base64
import ipaddress
import json
import os
import signal
import sqlite3
import struct
import subprocess
import tempfile
import time
import urllib.parse

import pytest

import harness
import sessionfile
import vault as vaultlib

LIBS = ["pyrogram", "hydrogram", "kurigram", "pyrofork", "telethon"]
WITH_STATE = {"kurigram", "pyrofork", "telethon"}
FILE_FORMAT = {"pyrogram": "pyrogram-file", "hydrogram": "pyrogram-file", "pyrofork": "pyrogram-file",
               "kurigram": "kurigram-file", "telethon": "telethon-file"}
ENGINE_WORKER = harness.WORKERS / "engine_worker.py"
KEY = bytes((i * 7 + 3) % 256 for i in range(256))
USER_ID = 5000000042

PEERS = [
    {"kind": "user", "id": 100000001, "access_hash": -8000000000000000001, "username": "Alice_Vault",
     "phone": "15550000001", "title": "Alice"},
    {"kind": "bot", "id": 6000000123, "access_hash": 7000000000000000123, "username": "VaultTestBot", "title": "Bot"},
    {"kind": "group", "id": 4000001, "title": "Basic group"},
    {"kind": "channel", "id": 2345678901, "access_hash": 123456789012345, "username": "VaultNews", "title": "News"},
    {"kind": "supergroup", "id": 1987654321, "access_hash": -42, "username": "Vault_Supergroup", "title": "SG"},
]
EXPECTED = {  # marked id -> (InputPeer class, its id field, access hash)
    100000001: ("InputPeerUser", {"user_id": 100000001, "access_hash": -8000000000000000001}),
    6000000123: ("InputPeerUser", {"user_id": 6000000123, "access_hash": 7000000000000000123}),
    -4000001: ("InputPeerChat", {"chat_id": 4000001}),
    -1002345678901: ("InputPeerChannel", {"channel_id": 2345678901, "access_hash": 123456789012345}),
    -1001987654321: ("InputPeerChannel", {"channel_id": 1987654321, "access_hash": -42}),
}
BY_USERNAME = {"alice_vault": 100000001, "vaulttestbot": 6000000123, "vaultnews": -1002345678901,
               "vault_supergroup": -1001987654321}


def states_for(lib):
    """Update states in the library's own id convention (Telethon: bare channel ids)."""
    channel = 2345678901 if lib == "telethon" else -1002345678901
    return [{"id": 0, "pts": 100, "qts": 5, "date": 1700000000, "seq": 7},
            {"id": channel, "pts": 55, "qts": 0, "date": 1700000001, "seq": 0}]


# -- the vault ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def engine_vault(tmp_path_factory):
    binary = os.environ.get("SESSION_VAULT_ENGINE_BIN") or vaultlib.find_binary()
    if not binary or not os.path.exists(binary):
        pytest.skip("no session-vault binary (set SESSION_VAULT_BIN or build .build/debug/session-vault)")
    for lib in LIBS:
        try:
            harness.venv_python(lib)
        except harness.WorkerError as exc:
            pytest.skip(str(exc))
    log = tmp_path_factory.mktemp("engine-vault") / "vault.log"
    v = vaultlib.start(binary, str(log))
    try:
        probe(v)
        yield v
    finally:
        vaultlib.stop(v)


def probe(v):
    r = v.import_string("engine-probe", pyrogram_string())
    assert r.status == 201, r
    r = v.request("POST", "/v1/sessions/engine-probe/lease?export=pyrogram",
                  json_body={"holder": "probe", "ttl_seconds": 5, "wait_seconds": 0})
    if r.status in (404, 405):
        pytest.skip(f"this vault has no lease route yet (POST /v1/sessions/{{name}}/lease answered {r.status}; "
                    "issue 16): the storage-engine proof runs once it does")
    assert r.status == 201, r
    lease_id = r.json()["lease_id"]
    r = v.request("GET", "/v1/sessions/engine-probe/state")
    if r.status in (404, 405):
        pytest.skip(f"this vault has no update-state route yet (GET /v1/sessions/{{name}}/state answered {r.status}; "
                    "issue 17): the storage-engine proof runs once it does")
    assert r.status == 200, r
    assert v.request("DELETE", "/v1/sessions/engine-probe/lease", headers={"Session-Vault-Lease": lease_id}).status == 204


def pyrogram_string():
    packed = struct.pack(">BI?256sQ?", 2, 12345, False, KEY, USER_ID, False)
    return base64.urlsafe_b64encode(packed).decode().rstrip("=")


def telethon_string():
    packed = struct.pack(">B4sH256s", 2, ipaddress.ip_address("149.154.167.51").packed, 443, KEY)
    return "1" + base64.urlsafe_b64encode(packed).decode()


def create(v, lib, purpose):
    name = f"eng-{lib}-{purpose}"
    if lib == "telethon":
        r = v.request("POST", "/v1/sessions", json_body={"name": name, "session_string": telethon_string(),
                                                         "api_id": 12345, "user_id": USER_ID, "is_bot": False})
    else:
        r = v.import_string(name, pyrogram_string())
    assert r.status == 201, r
    return name


def peers_in_vault(v, name):
    found, after = {}, None
    while True:
        q = "?limit=10000" + (f"&after={after}" if after is not None else "")
        r = v.request("GET", f"/v1/sessions/{urllib.parse.quote(name)}/peers{q}")
        assert r.status == 200, r
        body = r.json()
        for p in body["items"]:
            found[p["id"]] = p
        after = body["next_after"]
        if after is None:
            return found


# -- the workers -------------------------------------------------------------------------------------

def request_for(v, lib, name, **extra):
    return dict({"lib": lib, "name": name, "url": v.base_url, "token": v.token}, **extra)


def worker_env():
    env = {k: val for k, val in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "SESSION_VAULT"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def call(lib, request, timeout=180):
    proc = subprocess.run([str(harness.venv_python(lib)), str(ENGINE_WORKER)], input=json.dumps(request),
                          capture_output=True, text=True, timeout=timeout, env=worker_env(),
                          cwd=str(harness.WORKERS))
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        raise AssertionError(f"{lib} engine worker exited {proc.returncode}: {proc.stderr[-3000:]}")
    out = json.loads(lines[-1])
    if "fatal" in out:
        raise AssertionError(f"{lib} engine worker failed: {out['fatal']}\n{out.get('traceback', '')}\n"
                             f"{proc.stderr[-2000:]}")
    assert out.get("guard_hits") == [], f"{lib} tried to leave loopback: {out.get('guard_hits')}"
    return out


def spawn(lib, request):
    """A long-running worker; its stderr goes to a file (read with ``stderr_of``)."""
    err = tempfile.NamedTemporaryFile(prefix=f"engine-{lib}-", suffix=".log", delete=False)
    proc = subprocess.Popen([str(harness.venv_python(lib)), str(ENGINE_WORKER)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=err, text=True, env=worker_env(),
                            cwd=str(harness.WORKERS))
    err.close()
    proc.stderr_path = err.name
    proc.stdin.write(json.dumps(request))
    proc.stdin.close()
    return proc


def stderr_of(proc):
    with open(proc.stderr_path, encoding="utf-8", errors="replace") as fh:
        return fh.read()[-3000:]


def finish(proc, lib, timeout=120):
    out = proc.stdout.read()
    proc.wait(timeout=timeout)
    proc.stdout.close()
    lines = [line for line in out.splitlines() if line.strip()]
    assert proc.returncode == 0 and lines, f"{lib} worker exited {proc.returncode}: {stderr_of(proc)}"
    result = json.loads(lines[-1])
    assert "fatal" not in result, f"{lib} worker failed: {result['fatal']}\n{result.get('traceback', '')}"
    return result


def wait_for(path, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise AssertionError(f"worker exited {proc.returncode} early: {stderr_of(proc)}")
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


# -- the proof ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("lib", LIBS)
def test_round_trip_through_the_library(engine_vault, lib, tmp_path):
    """Load, learn peers, record state, close; a fresh process resolves them offline and reads the
    same state; the vault's .session export contains them."""
    v = engine_vault
    name = create(v, lib, "roundtrip")
    wrote = call(lib, request_for(v, lib, name, op="write", peers=PEERS, states=states_for(lib), flush_interval=30))
    assert wrote["fields"]["auth_key_hex"] == KEY.hex() and wrote["fields"]["dc_id"] == 2
    if lib == "kurigram":
        assert (wrote["fields"]["server_address"], wrote["fields"]["port"]) == ("149.154.167.51", 443)
    if lib != "telethon":
        assert wrote["fields"]["user_id"] == USER_ID and wrote["fields"]["api_id"] == 12345

    read = call(lib, request_for(v, lib, name, op="read", ids=list(EXPECTED), usernames=list(BY_USERNAME)))
    for key, result in read["lookups"].items():
        marked = BY_USERNAME.get(key, None if key.lstrip("-").isdigit() is False else int(key))
        cls, ids = EXPECTED[marked]
        assert result["ok"], f"{lib}: resolving {key}: {result}"
        assert result["peer"] == dict(ids, **{"class": cls}), f"{lib}: resolving {key}"
    if lib in WITH_STATE:
        assert read["states"] == sorted([[s["id"], s["pts"], s["qts"], s["date"], s["seq"]] for s in states_for(lib)])

    stored = peers_in_vault(v, name)
    assert set(EXPECTED) <= set(stored)
    if v.binary.endswith(".py"):
        return  # the stand-in vault makes no .session files
    r = v.export(name, FILE_FORMAT[lib])
    assert r.status == 200 and r.content_type == vaultlib.SQLITE_TYPE, r
    path = tmp_path / "export.session"
    path.write_bytes(r.body)
    info = sessionfile.inspect(str(path))
    assert set(EXPECTED) <= {p["id"] for p in info["peers"]}
    if lib in ("kurigram", "telethon"):
        conn = sqlite3.connect(str(path))
        try:
            rows = sorted(list(row) for row in conn.execute("SELECT id, pts, qts, date, seq FROM update_state"))
        finally:
            conn.close()
        assert rows == sorted([[s["id"], s["pts"], s["qts"], s["date"], s["seq"]] for s in states_for(lib)])


@pytest.mark.parametrize("lib", LIBS)
def test_second_client_is_refused_naming_the_holder_then_opens(engine_vault, lib, tmp_path):
    v = engine_vault
    name = create(v, lib, "twice")
    first = spawn(lib, request_for(v, lib, name, op="hold", dir=str(tmp_path), holder=f"first {lib} holder"))
    try:
        wait_for(tmp_path / "ready", first)
        refused = call(lib, request_for(v, lib, name, op="try_open", holder="second"))
        assert refused["opened"] is False and refused["type"] == "LeaseHeld"
        assert refused["holder"] == f"first {lib} holder" and f"first {lib} holder" in refused["message"]
        (tmp_path / "release").write_text("go")
        assert finish(first, lib)["closed"] is True
    finally:
        if first.poll() is None:
            first.kill()
    started = time.monotonic()
    assert call(lib, request_for(v, lib, name, op="try_open", holder="second"))["opened"] is True
    assert time.monotonic() - started < 30  # no lock-delay after a release: "at once" (process start included)


def break_lease(v, name):
    r = v.request("DELETE", f"/v1/sessions/{urllib.parse.quote(name)}/lease")
    assert r.status == 204, r


@pytest.mark.parametrize("lib", LIBS)
def test_broken_lease_is_noticed_within_one_renewal_interval(engine_vault, lib, tmp_path):
    v = engine_vault
    name = create(v, lib, "broken")
    proc = spawn(lib, request_for(v, lib, name, op="lease_lost", mode="poll", dir=str(tmp_path), ttl_seconds=6))
    try:
        wait_for(tmp_path / "ready", proc)
        break_lease(v, name)
        (tmp_path / "broken").write_text("now")
        out = finish(proc, lib)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert out["raised"] == "LeaseLost"
    assert out["seconds_after_break"] <= out["renew_interval"] + 1.0, out


@pytest.mark.parametrize("lib", LIBS)
def test_late_writes_after_a_break_are_refused(engine_vault, lib, tmp_path):
    v = engine_vault
    name = create(v, lib, "late")
    late = {"kind": "user", "id": 300000003, "access_hash": 33, "username": "Late_Writer", "title": "Late"}
    proc = spawn(lib, request_for(v, lib, name, op="lease_lost", mode="write", dir=str(tmp_path), ttl_seconds=60,
                                  peers=[late], flush_interval=30))
    try:
        wait_for(tmp_path / "ready", proc)
        break_lease(v, name)
        (tmp_path / "broken").write_text("now")
        out = finish(proc, lib)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert out["raised"] == "LeaseLost"
    r = v.request("GET", f"/v1/sessions/{urllib.parse.quote(name)}/peers?id=300000003")
    assert r.status == 200 and r.json()["items"] == [], r


@pytest.mark.parametrize("lib", LIBS)
def test_sigkill_loses_at_most_the_last_flush_interval(engine_vault, lib, tmp_path):
    v = engine_vault
    name = create(v, lib, "killed")
    before = v.metadata(name).json()["auth_key_id"]
    flush = 1.0
    proc = spawn(lib, request_for(v, lib, name, op="churn", dir=str(tmp_path), first_id=700000000,
                                  flush_interval=flush))
    progress = tmp_path / "progress"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"churn worker exited early: {stderr_of(proc)}"
            lines = progress.read_text().splitlines() if progress.exists() else []
            if len(lines) >= 50 and float(lines[-1].split()[1]) - float(lines[0].split()[1]) >= 3 * flush:
                break
            assert time.monotonic() < deadline, "the churn worker made no progress"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        killed_at = time.time()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    learned = [(int(a), float(b)) for a, b in (line.split() for line in progress.read_text().splitlines() if line)]
    stored = peers_in_vault(v, name)
    # One flush interval plus one round trip of slack: everything learned before that is stored.
    must = [pid for pid, at in learned if at < killed_at - flush - 1.0]
    missing = [pid for pid in must if pid not in stored]
    assert must and not missing, f"{len(missing)} of {len(must)} peers older than one flush interval were lost"
    assert v.metadata(name).json()["auth_key_id"] == before
