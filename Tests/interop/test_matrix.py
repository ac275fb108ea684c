# SPDX-License-Identifier: Apache-2.0
"""The interop proof: every writer's session → vault (as its string and as its file) → every
export format → every library that can read it (docs/formats.md, "Which library reads what")
must see the same session.

One vault process serves the whole run; everything is computed once in session fixtures and
each test below only checks its own slice, so every cell is its own test id.
"""

import base64
import hashlib
import ipaddress
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time

import pytest

import cases
import expectations as ex
import harness
import sessionfile
import vault as vaultlib

IMPORTS = ["string", "file"]
FORMATS = ["pyrogram", "telethon", "pyrogram-file", "kurigram-file", "telethon-file"]
FILE_FORMATS = {"pyrogram-file", "kurigram-file", "telethon-file"}
PATCHABLE = ["api_id", "user_id", "is_bot", "test_mode"]
ADDRESS = ["server_address", "port", "dc_id"]
NAMEABLE = PATCHABLE + ADDRESS + ["auth_key"]
PATCH_API_ID = 424242

# The shape each export format must have (docs/formats.md, "What the vault reads and writes";
# the README's export list); used to tell which reader limitations apply, independent of what the vault actually produced.
SPEC_INFO = {
    "pyrogram-file": {"family": "pyrogram", "schema_version": 3, "tables": ["peers", "sessions", "version"],
                      "peer_columns": ["id", "access_hash", "type", "username", "phone_number", "last_update_on"]},
    "kurigram-file": {"family": "pyrogram", "schema_version": 7,
                      "tables": ["peers", "sessions", "update_state", "usernames", "version"],
                      "peer_columns": ["id", "access_hash", "type", "phone_number", "last_update_on"]},
    "telethon-file": {"family": "telethon", "schema_version": 7},
}
SPEC_SESSION_COLUMNS = {
    "pyrogram-file": ["dc_id", "api_id", "test_mode", "auth_key", "date", "user_id", "is_bot"],
    "kurigram-file": ["dc_id", "server_address", "port", "api_id", "test_mode", "auth_key", "date", "user_id",
                      "is_bot"],
    "telethon-file": ["dc_id", "server_address", "port", "auth_key", "takeout_id"],
}


# ------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="session")
def vault(tmp_path_factory):
    binary = vaultlib.find_binary()
    if not binary or not os.path.exists(binary):
        message = ("session-vault binary not found (build it with `swift build`, or set SESSION_VAULT_BIN); "
                   "the vault side of the matrix did not run")
        if os.environ.get("INTEROP_REQUIRE_VAULT") == "1":
            pytest.fail(message)
        pytest.skip(message)
    log = tmp_path_factory.mktemp("vault") / "vault.log"
    v = vaultlib.start(binary, str(log))
    os.environ["INTEROP_VAULT_DESCRIPTION"] = binary
    yield v
    vaultlib.stop(v)


class Export:
    def __init__(self, fmt):
        self.fmt = fmt
        self.pre = self.post = None
        self.truth = None       # session values the export should carry
        self.named = set()      # fields a 422 named
        self.problems = []      # HTTP-level problems (unexpected status, bad problem document)
        self.state = None       # ok / refused (documented 422) / error
        self.path = None        # file on disk for file exports
        self.info = None        # sessionfile.inspect of a file export

    @property
    def final(self):
        return self.post if self.post is not None else self.pre

    @property
    def available(self):
        return self.final is not None and self.final.status == 200


class Flow:
    def __init__(self, case, path, made_case):
        self.case, self.path, self.made = case, path, made_case
        self.name = f"{case.key}-{path}"
        self.exports = {f: Export(f) for f in FORMATS}
        self.patch = None
        self.file_hash_before = self.file_hash_after = None

    def known_after_import(self):
        """What the vault can know from this source (docs/formats.md, "What the vault reads and writes")."""
        c, key = self.case, self.made["auth_key_hex"]
        if c.is_telethon:
            return {"dc_id": c.fields["dc_id"], "server_address": c.fields["server_address"],
                    "port": c.fields["port"], "auth_key_hex": key, "api_id": None, "test_mode": None,
                    "is_bot": None, "user_id": c.fields["user_id"] if self.path == "file" else None}
        truth = {k: c.fields[k] for k in ("dc_id", "api_id", "test_mode", "user_id", "is_bot")}
        truth["auth_key_hex"] = key
        addr = ex.address_for(c.fields["test_mode"], c.fields["dc_id"])
        truth["server_address"], truth["port"] = addr if addr else (None, None)
        return truth


def problem_fields(resp):
    """Field names a problem+json names in detail / errors / missing_fields."""
    try:
        doc = resp.json()
    except ValueError:
        return set(), "422 body is not JSON"
    text = " ".join(json.dumps(doc.get(k, "")) for k in ("detail", "errors", "missing_fields"))
    named = {f for f in NAMEABLE if re.search(rf"(?<![A-Za-z0-9_]){f}(?![A-Za-z0-9_])", text)}
    return named, None


def classify(export, truth, source_is_telethon):
    """Judge one export response against what the vault knows. Returns (state, problems)."""
    resp = export.final
    unknown = {k for k in PATCHABLE if truth.get(k) is None}
    no_address = truth.get("server_address") is None
    fmt = export.fmt
    if resp.status == 200:
        want_type = vaultlib.SQLITE_TYPE if fmt in FILE_FORMATS else "text/plain"
        if resp.content_type != want_type:
            return "error", [f"content type {resp.content_type!r}, expected {want_type}"]
        must = set()
        if fmt == "pyrogram":
            must = unknown - {"test_mode"} if source_is_telethon else unknown
        if fmt in ("telethon", "telethon-file") and no_address:
            must = {"server_address"}
        if must:
            return "error", [f"exported although the session lacks {sorted(must)} (must be 422, never invented)"]
        return "ok", []
    if resp.status != 422:
        return "error", [f"unexpected HTTP {resp.status}: {resp.body[:200]!r}"]
    if resp.content_type != "application/problem+json":
        return "error", [f"422 with content type {resp.content_type!r}, expected application/problem+json"]
    named, err = problem_fields(resp)
    export.named = named
    if err:
        return "error", [err]
    if not named:
        return "error", [f"422 does not name the missing field: {resp.body[:300]!r}"]
    allowed = set(unknown)
    if no_address:
        allowed |= set(ADDRESS)
    if source_is_telethon and fmt in ("pyrogram", "pyrogram-file", "kurigram-file"):
        allowed.add("test_mode")  # may be refused rather than derived from the address
    wrong = named - allowed - {"dc_id"}
    if wrong:
        return "error", [f"422 names {sorted(wrong)}, which the session has"]
    if fmt == "pyrogram":
        must = unknown - {"test_mode"} if source_is_telethon else unknown
        if not must <= named:
            return "error", [f"422 names {sorted(named)} but not all missing {sorted(must)}"]
    return "refused", []


@pytest.fixture(scope="session")
def flows(made, vault, tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    out = {}
    for case in cases.CASES:
        for path in IMPORTS:
            flow = Flow(case, path, made[case.key])
            run_flow(vault, flow, root / flow.name)
            out[flow.name] = flow
    return out


def run_flow(v, flow, directory):
    directory.mkdir(parents=True, exist_ok=True)
    m = flow.made
    if flow.path == "string":
        flow.import_resp = v.import_string(flow.name, m["string"])
    else:
        with open(m["file"], "rb") as fh:
            data = fh.read()
        flow.file_hash_before = hashlib.sha256(data).hexdigest()
        flow.import_resp = v.import_file(flow.name, data)
        with open(m["file"], "rb") as fh:
            flow.file_hash_after = hashlib.sha256(fh.read()).hexdigest()
    flow.meta = v.metadata(flow.name)
    truth = flow.known_after_import()
    for export in flow.exports.values():
        export.pre = v.export(flow.name, export.fmt)
        export.truth = dict(truth)
        export.state, export.problems = classify(export, truth, flow.case.is_telethon)

    # Conversions that lack data: 422 naming the fields, then PATCH them and export again.
    refused_for_fields = [e for e in flow.exports.values()
                          if e.state == "refused" and e.named & set(PATCHABLE)]
    if refused_for_fields:
        values = {"api_id": PATCH_API_ID, "user_id": flow.case.fields["user_id"], "is_bot": False,
                  "test_mode": (truth.get("server_address") in ex.TEST_ADDRESSES)}
        fields = {k: values[k] for k in PATCHABLE if truth.get(k) is None}
        meta = v.metadata(flow.name)
        etag = meta.headers.get("etag")
        flow.patch = {"fields": fields, "etag": etag, "response": v.patch(flow.name, fields, etag)}
        flow.meta_after_patch = v.metadata(flow.name)
        patched = dict(truth, **fields)
        for export in refused_for_fields:
            export.post = v.export(flow.name, export.fmt)
            export.truth = dict(patched)
            export.state, export.problems = classify(export, patched, flow.case.is_telethon)
            if export.state == "refused" and export.named & set(PATCHABLE):
                export.state, export.problems = "error", [f"still 422 after PATCH {sorted(fields)}: "
                                                          f"{export.post.body[:200]!r}"]

    for export in flow.exports.values():
        if export.available and export.fmt in FILE_FORMATS:
            export.path = str(directory / f"{export.fmt}.session")
            with open(export.path, "wb") as fh:
                fh.write(export.final.body)
            try:
                export.info = sessionfile.inspect(export.path)
            except Exception as exc:  # not even SQLite: the export test reports it
                export.info = {"family": "unreadable", "error": repr(exc)}
        if export.available and flow.case.is_telethon and export.truth.get("test_mode") is None:
            # Telethon has no test flag; deriving it from the address (docs/formats.md, "Data
            # centers") is allowed.
            derived = export.truth.get("server_address") in ex.TEST_ADDRESSES
            if export.fmt == "pyrogram":
                carried = _decode_pyrogram(export.final.text())["test_mode"]
            elif export.fmt in ("pyrogram-file", "kurigram-file") and export.info.get("session"):
                carried = export.info["session"].get("test_mode")
                carried = None if carried is None else bool(carried)
            else:
                carried = None
            if carried == derived:
                export.truth["test_mode"] = derived


def source_peers(flow):
    """The peers the vault received (none through a string) with what the writer stored."""
    if flow.path != "file":
        return []
    return flow.made["info"]["peers"]


@pytest.fixture(scope="session")
def reads(flows, tmp_path_factory):
    scratch = tmp_path_factory.mktemp("reads")
    items = []
    for flow in flows.values():
        peers = source_peers(flow)
        for export in flow.exports.values():
            if not export.available:
                continue
            item = {"key": f"{flow.name}:{export.fmt}"}
            if export.fmt in FILE_FORMATS:
                item.update(kind="file", path=export.path,
                            ids=[p["id"] for p in peers],
                            usernames=[u for p in peers for u in p["usernames"]],
                            phones=[p["phone"] for p in peers if p.get("phone")])
            else:
                item.update(kind="string", value=export.final.text())
            items.append(item)
    return harness.load_all(ex.READERS, items, scratch)


# ------------------------------------------------------------------------------ tests

FLOW_IDS = [(c, p) for c in cases.CASES for p in IMPORTS]


def _secrets(flow):
    key_hex = flow.made["auth_key_hex"]
    return [key_hex, base64.b64encode(bytes.fromhex(key_hex)).decode(), flow.made["string"][:40]]


@pytest.mark.parametrize("case,path", FLOW_IDS, ids=[f"{c.key}-{p}" for c, p in FLOW_IDS])
def test_import(flows, case, path):
    """The vault accepts what the library wrote and reports the right metadata, no secrets."""
    flow = flows[f"{case.key}-{path}"]
    assert flow.import_resp.status == 201, flow.import_resp
    if path == "file":
        assert flow.file_hash_after == flow.file_hash_before, "uploading changed the library's file"
    meta = flow.meta
    assert meta.status == 200, meta
    assert meta.headers.get("etag"), "metadata must carry an ETag (needed for PATCH If-Match)"
    doc = meta.json()
    truth = flow.known_after_import()
    problems = []
    for key in ("dc_id", "api_id", "user_id", "is_bot"):
        if doc.get(key) != truth[key]:
            problems.append(f"{key}: vault {doc.get(key)!r}, source {truth[key]!r}")
    if case.is_telethon:
        if doc.get("test_mode") not in (None, truth["server_address"] in ex.TEST_ADDRESSES):
            problems.append(f"test_mode {doc.get('test_mode')!r} contradicts the address")
    elif doc.get("test_mode") != truth["test_mode"]:
        problems.append(f"test_mode: vault {doc.get('test_mode')!r}, source {truth['test_mode']!r}")
    carries_address = case.is_telethon or (case.writer == "kurigram" and path == "file")
    for key in ("server_address", "port"):
        allowed = [truth[key]] if carries_address else [None, truth[key]]
        if doc.get(key) not in allowed:
            problems.append(f"{key}: vault {doc.get(key)!r}, expected one of {allowed}")
    key_id = hashlib.sha1(bytes.fromhex(truth["auth_key_hex"])).digest()[-8:].hex()
    if doc.get("auth_key_id") != key_id:
        problems.append(f"auth_key_id {doc.get('auth_key_id')!r} != {key_id} (last 8 bytes of SHA-1)")
    assert problems == []
    body = meta.body.decode("utf-8", "replace")
    assert not any(s in body for s in _secrets(flow)), "metadata leaks the auth key or session string"


def _decode_pyrogram(s):
    raw = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    dc, api, test, key, uid, bot = struct.unpack(">BI?256sQ?", raw)
    return {"dc_id": dc, "api_id": api, "test_mode": test, "auth_key_hex": key.hex(), "user_id": uid, "is_bot": bot}


def _decode_telethon(s):
    raw = base64.urlsafe_b64decode(s[1:])
    ip_len = 4 if len(raw) == 263 else 16
    dc, ip, port, key = struct.unpack(f">B{ip_len}sH256s", raw)
    return {"dc_id": dc, "server_address": ipaddress.ip_address(ip).compressed, "port": port,
            "auth_key_hex": key.hex()}


def check_export_shape(flow, export):
    """Independent of the libraries: the bytes are exactly the documented format."""
    truth = export.truth
    problems = []
    body = export.final.body
    if export.fmt == "pyrogram":
        s = body.decode("ascii", "replace")
        if len(s) != 362 or any(ch in s for ch in "+/=\r\n "):
            return [f"pyrogram string must be 362 URL-safe unpadded chars, got {len(s)}: {s[:20]!r}…"]
        got = _decode_pyrogram(s)
        want = {k: truth[k] for k in got}
        problems += [f"{k}: string has {got[k]!r}, session {want[k]!r}" for k in got if got[k] != want[k]]
    elif export.fmt == "telethon":
        s = body.decode("ascii", "replace")
        if not s.startswith("1") or len(s) not in (353, 369):
            return [f"telethon string must be '1' + padded base64 (353/369 chars), got {len(s)}"]
        got = _decode_telethon(s)
        problems += [f"{k}: string has {got[k]!r}, session {truth[k]!r}" for k in got if got[k] != truth[k]]
    else:
        info = export.info
        spec = SPEC_INFO[export.fmt]
        if (info.get("family"), info.get("schema_version")) != (spec["family"], spec["schema_version"]):
            return [f"expected {spec['family']} schema v{spec['schema_version']}, got {info}"]
        if info["journal_mode"] != "rollback":
            problems.append("exported file should not be left in WAL mode")
        if info["session_columns"] != SPEC_SESSION_COLUMNS[export.fmt]:
            problems.append(f"sessions columns {info['session_columns']} != {SPEC_SESSION_COLUMNS[export.fmt]}")
        if info["session_rows"] != 1:
            problems.append(f"{info['session_rows']} rows in sessions (libraries expect exactly one)")
        stored = ex.truth_from_file(info)
        for k in ex.CARRIED[export.fmt]:
            want = truth.get(k)
            have = stored.get(k)
            if k in ("test_mode", "is_bot") and have is not None:
                have = bool(have)
            if have != want:
                problems.append(f"file {k} = {have!r}, session {want!r}")
        problems += check_exported_peers(flow, export, info)
    return problems


def check_exported_peers(flow, export, info):
    problems = []
    exported = {p["id"]: p for p in info["peers"]}
    now = time.time()
    for src in source_peers(flow):
        got = exported.get(src["id"])
        if got is None:
            problems.append(f"peer {src['id']} missing")
            continue
        if got["access_hash"] != src["access_hash"]:
            problems.append(f"peer {src['id']} access_hash {got['access_hash']} != {src['access_hash']}")
        if (got.get("phone") or None) != (src.get("phone") or None):
            problems.append(f"peer {src['id']} phone {got.get('phone')!r} != {src.get('phone')!r}")
        want_names = src["usernames"] if export.fmt == "kurigram-file" else src["usernames"][:1]
        if got["usernames"][:len(want_names)] != want_names:
            problems.append(f"peer {src['id']} usernames {got['usernames']} != {want_names}")
        if export.fmt != "telethon-file":
            allowed = ex.KNOWN_TYPES["kurigram"] if export.fmt == "kurigram-file" else ex.BASIC_TYPES
            if got["type"] not in allowed:
                problems.append(f"peer {src['id']} type {got['type']!r} not valid for {export.fmt}")
            elif src.get("type") in allowed and got["type"] != src["type"]:
                problems.append(f"peer {src['id']} type {got['type']!r} != source {src['type']!r}")
            elif src.get("type") and src["type"] not in allowed and got["type"] not in ("supergroup", "channel"):
                problems.append(f"peer {src['id']} {src['type']!r} should map to a channel-like type, "
                                f"got {got['type']!r}")
            if src["usernames"] and abs(now - (got.get("last_update_on") or 0)) > ex.USERNAME_TTL - 3600:
                problems.append(f"peer {src['id']} last_update_on {got.get('last_update_on')} is stale: "
                                "Pyrogram-family readers would refuse its username (8 h TTL)")
    if export.fmt == "telethon-file" and export.truth.get("user_id") is not None:
        if info.get("self_user_id") != export.truth["user_id"]:
            problems.append(f"own user entity (id 0) holds {info.get('self_user_id')}, "
                            f"expected {export.truth['user_id']}")
    return problems


EXPORT_IDS = [(c, p, f) for c in cases.CASES for p in IMPORTS for f in FORMATS]


@pytest.mark.parametrize("case,path,fmt", EXPORT_IDS, ids=[f"{c.key}-{p}-{f}" for c, p, f in EXPORT_IDS])
def test_export(flows, case, path, fmt):
    """Each export answers as documented: the exact format, or 422 naming what is missing
    (then, after PATCH, the exact format)."""
    flow = flows[f"{case.key}-{path}"]
    export = flow.exports[fmt]
    assert export.problems == [], (export.pre, export.post)
    if export.pre.status == 422 and export.post is not None:
        assert flow.patch["response"].status in (200, 204), flow.patch["response"]
    if not export.available:
        assert export.state == "refused"
        return
    assert check_export_shape(flow, export) == []


def spec_type(fmt, src):
    """Peer type text a correct export carries: kurigram files keep kurigram's kinds, v3 files
    know only user/bot/group/channel/supergroup, Telethon sources have no type at all."""
    t = src.get("type")
    if t is None:
        return "user" if src["id"] > 0 else ("group" if src["id"] > -1000000000000 else "channel")
    if fmt == "kurigram-file" or t in ex.BASIC_TYPES:
        return t
    return "supergroup"


@pytest.mark.parametrize("reader", ex.READERS)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("path", IMPORTS)
@pytest.mark.parametrize("case", cases.CASES, ids=lambda c: c.key)
def test_cell(cell, flows, reads, case, path, fmt, reader):
    """One matrix cell: the reader loads the vault's export and sees the writer's session."""
    flow = flows[f"{case.key}-{path}"]
    export = flow.exports[fmt]
    if export.post is not None and export.available:
        cell["note"] = f"after PATCH {sorted(flow.patch['fields'])} (first export: 422 naming {sorted(export.named)})"
    if not export.available:
        assert export.state == "refused", f"export failed: {export.problems}"
        cell.update(status="n.a.", reason=f"vault refuses the conversion (422 names {sorted(export.named)})")
        return
    res = reads[reader][f"{flow.name}:{fmt}"]
    if fmt in FILE_FORMATS:
        spec = dict(SPEC_INFO[fmt], session={"dc_id": export.truth["dc_id"],
                                             "test_mode": export.truth.get("test_mode")})
        expect = ex.expect_file_open(reader, spec)
    else:
        expect = ex.expect_string(reader, "pyrogram-current" if fmt == "pyrogram" else "telethon-ipv4",
                                  export.truth)
    assert ex.check_result(expect, res) == [], expect
    if not expect.ok:
        cell.update(status="n.a.", reason=f"{res['error']['type']}: {expect.reason}")
        return
    problems = ex.compare_fields(ex.expected_reader_fields(reader, fmt, export.truth), res["fields"])
    limited = set()
    if fmt in FILE_FORMATS:
        spec = dict(SPEC_INFO[fmt])
        for src in source_peers(flow):
            # The type the format *should* carry, not what the vault wrote: a wrong type must
            # fail the cell, not shift the expectation.
            peer = dict(src, type=spec_type(fmt, src))
            looks = [("id", src["id"])] + [("username", u) for u in src["usernames"]]
            if src.get("phone"):
                looks.append(("phone", src["phone"]))
            for how, value in looks:
                want = ex.expect_lookup(reader, spec, peer, how, value)
                if not want.ok and not want.skip:
                    limited.add(f"{how}: {want.reason}")
                got = res["lookups"].get(f"{how}:{value}", {"ok": False, "error": {"type": "missing"}})
                problems += [f"{how} {value}: {p}" for p in ex.check_result(want, got)]
    assert problems == []
    if limited:
        cell["reason"] = "partial (library limits): " + "; ".join(sorted(limited))


@pytest.mark.parametrize("case", [c for c in cases.CASES], ids=lambda c: c.key)
def test_cli_inspect_leaves_file_untouched(vault, made, case, tmp_path):
    """``session-vault inspect PATH`` on the library's original file changes neither the file
    nor its directory (no -wal/-shm/-journal left, hydrogram's WAL file included) and prints
    no secret."""
    src = made[case.key]["file"]
    directory = tmp_path / "original"
    directory.mkdir()
    path = directory / os.path.basename(src)
    shutil.copyfile(src, path)
    before = sessionfile.snapshot(str(directory))
    argv = [vault.binary] if not vault.binary.endswith(".py") else [sys.executable, vault.binary]
    proc = subprocess.run(argv + ["inspect", str(path)], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    after = sessionfile.snapshot(str(directory))
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert after == before
    key_hex = made[case.key]["auth_key_hex"]
    assert key_hex not in proc.stdout + proc.stderr
    assert base64.b64encode(bytes.fromhex(key_hex)).decode() not in proc.stdout + proc.stderr


def test_patch_requires_matching_etag(vault, made):
    """PATCH honours If-Match: a stale ETag is refused (412) and changes nothing."""
    name = "interop-etag-check"
    assert vault.import_string(name, made["pyrogram-1.4"]["string"]).status == 201
    before = vault.metadata(name)
    stale = vault.patch(name, {"api_id": 1}, '"stale-etag"')
    assert stale.status == 412, stale
    assert vault.metadata(name).json().get("api_id") == before.json().get("api_id")
    fresh = vault.patch(name, {"api_id": 1}, before.headers.get("etag"))
    assert fresh.status in (200, 204), fresh
    assert vault.metadata(name).json().get("api_id") == 1


def test_cli_inspect_leaves_hot_wal_untouched(vault, tmp_path):
    """A hydrogram file whose process died before close() has a live -wal and -shm beside it;
    ``inspect`` must not checkpoint, truncate or delete them (every byte and name unchanged)."""
    directory = tmp_path / "hot"
    case = cases.BY_KEY["hydrogram"]
    out = harness.call_worker("hydrogram", {"op": "make", "dir": str(directory), "name": "hot",
                                            "fields": case.fields, "peers": case.peers(), "leave_open": True})
    names = sorted(os.listdir(directory))
    assert names == ["hot.session", "hot.session-shm", "hot.session-wal"], names
    before = sessionfile.snapshot(str(directory))
    argv = [vault.binary] if not vault.binary.endswith(".py") else [sys.executable, vault.binary]
    proc = subprocess.run(argv + ["inspect", out["file"]], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert sessionfile.snapshot(str(directory)) == before
    assert out["auth_key_hex"] not in proc.stdout + proc.stderr
