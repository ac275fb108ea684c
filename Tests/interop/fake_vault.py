# SPDX-License-Identifier: Apache-2.0
"""A tiny stand-in for session-vault, used ONLY to self-test the interop harness while the real
HTTP API is being built (``SESSION_VAULT_BIN=Tests/interop/fake_vault.py scripts/interop.sh``).

It implements the slice of the documented API the matrix uses (see vault.py's docstring), in
memory, with no encryption and no hardening. It is not the product and never ships; it exists so
that the vault-side glue is exercised now and its expectations are executable. Where a choice is
open it does what docs/formats.md describes for the vault ("What the vault reads and
writes", "Conversions and exports").
"""

import base64
import hashlib
import http.server
import ipaddress
import json
import os
import sqlite3
import struct
import sys
import tempfile
import threading
import time
import urllib.parse

PROD = {1: "149.154.175.53", 2: "149.154.167.51", 3: "149.154.175.100", 4: "149.154.167.91",
        5: "91.108.56.130", 203: "91.105.192.100"}
TEST = {1: "149.154.175.10", 2: "149.154.167.40", 3: "149.154.175.117"}
FIELDS = ["dc_id", "api_id", "test_mode", "user_id", "is_bot", "server_address", "port"]


class Problem(Exception):
    def __init__(self, status, detail, missing=None):
        super().__init__(detail)
        self.status, self.detail, self.missing = status, detail, missing


# ----------------------------------------------------------------------------- import

def parse_string(s):
    if s.startswith("1") and len(s) in (353, 369):
        raw = base64.urlsafe_b64decode(s[1:])
        n = 4 if len(raw) == 263 else 16
        dc, ip, port, key = struct.unpack(f">B{n}sH256s", raw)
        return {"dc_id": dc, "server_address": ipaddress.ip_address(ip).compressed, "port": port,
                "auth_key": key, "source": "telethon"}, []
    raw = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    if len(s) == 362:
        dc, api, test, key, uid, bot = struct.unpack(">BI?256sQ?", raw)
        return {"dc_id": dc, "api_id": api or None, "test_mode": test, "auth_key": key, "user_id": uid,
                "is_bot": bot, "source": "pyrogram"}, []
    if len(s) in (351, 356):
        fmt = ">B?256sI?" if len(s) == 351 else ">B?256sQ?"
        dc, test, key, uid, bot = struct.unpack(fmt, raw)
        return {"dc_id": dc, "test_mode": test, "auth_key": key, "user_id": uid, "is_bot": bot,
                "source": "pyrogram"}, []
    raise Problem(422, "session_string: unrecognised length")


def parse_file(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "upload.session")
        with open(path, "wb") as fh:
            fh.write(data)
        conn = sqlite3.connect(path)
        try:
            return _parse_db(conn)
        except sqlite3.DatabaseError as exc:
            raise Problem(422, f"body: not a session file ({exc})")
        finally:
            conn.close()


def _cols(conn, table):
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def _parse_db(conn):
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    vcols = _cols(conn, "version")
    scols = _cols(conn, "sessions")
    row = dict(zip(scols, conn.execute("SELECT * FROM sessions").fetchone()))
    peers = []
    if "number" in vcols:
        s = {"dc_id": row["dc_id"], "api_id": row.get("api_id"), "test_mode": _b(row.get("test_mode")),
             "auth_key": row["auth_key"], "user_id": row.get("user_id"), "is_bot": _b(row.get("is_bot")),
             "server_address": row.get("server_address"), "port": row.get("port"), "source": "pyrogram"}
        pcols = _cols(conn, "peers")
        extra = {}
        if "usernames" in tables:
            if "peer_id" in _cols(conn, "usernames"):
                q = "SELECT peer_id, id FROM usernames ORDER BY rowid"
            else:
                q = "SELECT id, username FROM usernames ORDER BY rowid"
            for pid, name in conn.execute(q):
                extra.setdefault(pid, []).append(name)
        sel = "id, access_hash, type, phone_number, last_update_on" + (", username" if "username" in pcols else "")
        for r in conn.execute(f"SELECT {sel} FROM peers ORDER BY rowid"):
            names = [r[5]] if len(r) > 5 and r[5] else []
            names += [n for n in extra.get(r[0], []) if n and n not in names]
            peers.append({"id": r[0], "access_hash": r[1], "type": r[2], "phone": r[3],
                          "last_update_on": r[4], "usernames": names})
    elif "version" in vcols:
        s = {"dc_id": row["dc_id"], "server_address": row["server_address"], "port": row["port"],
             "auth_key": row["auth_key"] or None, "source": "telethon"}
        for pid, h, uname, phone, name, date in conn.execute(
                "SELECT id, hash, username, phone, name, date FROM entities ORDER BY rowid"):
            if pid == 0:
                s["user_id"] = h
                continue
            peers.append({"id": pid, "access_hash": h, "type": None,
                          "phone": None if phone is None else str(phone), "name": name,
                          "last_update_on": date, "usernames": [uname] if uname else []})
    else:
        raise Problem(422, "body: unknown session schema (no version table)")
    return s, peers


def _b(v):
    return None if v is None else bool(v)


# ----------------------------------------------------------------------------- export

def address(rec):
    if rec.get("server_address"):
        return rec["server_address"], rec["port"]
    table = TEST if rec.get("test_mode") else PROD
    if rec["dc_id"] not in table:
        return None
    return table[rec["dc_id"]], (80 if rec.get("test_mode") else 443)


def test_mode_of(rec):
    if rec.get("test_mode") is not None:
        return rec["test_mode"]
    if rec.get("server_address"):
        return rec["server_address"] in TEST.values()
    return None


def require(rec, names):
    missing = [n for n in names if rec.get(n) is None]
    if missing:
        raise Problem(422, "missing fields for this export: " + ", ".join(missing), missing)


def peer_type(p, kurigram):
    t = p.get("type")
    if t and (kurigram or t in ("user", "bot", "group", "channel", "supergroup")):
        return t
    if t:  # forum / direct / community → pyrogram v3 knows them as supergroups
        return "supergroup"
    if p["id"] > 0:
        return "user"
    return "group" if p["id"] > -1000000000000 else "channel"


def export(rec, peers, fmt):
    tm = test_mode_of(rec)
    if fmt == "pyrogram":
        full = dict(rec, test_mode=tm)
        require(full, ["api_id", "user_id", "is_bot", "test_mode"])
        raw = struct.pack(">BI?256sQ?", rec["dc_id"], rec["api_id"], tm, rec["auth_key"], rec["user_id"],
                          rec["is_bot"])
        return "text/plain", base64.urlsafe_b64encode(raw).decode().rstrip("=").encode()
    if fmt == "telethon":
        addr = address(rec)
        if not addr:
            raise Problem(422, "server_address: no address known for this DC", ["server_address"])
        ip = ipaddress.ip_address(addr[0]).packed
        raw = struct.pack(f">B{len(ip)}sH256s", rec["dc_id"], ip, addr[1], rec["auth_key"])
        return "text/plain", ("1" + base64.urlsafe_b64encode(raw).decode()).encode()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "out.session")
        conn = sqlite3.connect(path)
        now = int(time.time())
        if fmt == "pyrogram-file":
            conn.executescript("""
                CREATE TABLE sessions (dc_id INTEGER PRIMARY KEY, api_id INTEGER, test_mode INTEGER,
                    auth_key BLOB, date INTEGER NOT NULL, user_id INTEGER, is_bot INTEGER);
                CREATE TABLE peers (id INTEGER PRIMARY KEY, access_hash INTEGER, type INTEGER NOT NULL,
                    username TEXT, phone_number TEXT, last_update_on INTEGER NOT NULL
                    DEFAULT (CAST(STRFTIME('%s', 'now') AS INTEGER)));
                CREATE TABLE version (number INTEGER PRIMARY KEY);
                CREATE INDEX idx_peers_id ON peers (id);
                CREATE INDEX idx_peers_username ON peers (username);
                CREATE INDEX idx_peers_phone_number ON peers (phone_number);
                CREATE TRIGGER trg_peers_last_update_on AFTER UPDATE ON peers BEGIN
                    UPDATE peers SET last_update_on = CAST(STRFTIME('%s', 'now') AS INTEGER) WHERE id = NEW.id; END;
                INSERT INTO version VALUES (3);""")
            conn.execute("INSERT INTO sessions VALUES (?,?,?,?,?,?,?)",
                         (rec["dc_id"], rec.get("api_id"), tm, rec["auth_key"], now, rec.get("user_id"),
                          rec.get("is_bot")))
            for p in peers:
                conn.execute("INSERT INTO peers VALUES (?,?,?,?,?,?)",
                             (p["id"], p["access_hash"], peer_type(p, False), (p["usernames"] or [None])[0],
                              p.get("phone"), p.get("last_update_on") or now))
        elif fmt == "kurigram-file":
            addr = address(rec)
            if not addr:
                raise Problem(422, "server_address: no address known for this DC", ["server_address"])
            conn.executescript("""
                CREATE TABLE sessions (dc_id INTEGER PRIMARY KEY, server_address TEXT, port INTEGER,
                    api_id INTEGER, test_mode INTEGER, auth_key BLOB, date INTEGER NOT NULL, user_id INTEGER,
                    is_bot INTEGER);
                CREATE TABLE peers (id INTEGER PRIMARY KEY, access_hash INTEGER, type INTEGER NOT NULL,
                    phone_number TEXT, last_update_on INTEGER NOT NULL
                    DEFAULT (CAST(STRFTIME('%s', 'now') AS INTEGER)));
                CREATE TABLE usernames (id INTEGER, username TEXT, FOREIGN KEY (id) REFERENCES peers(id));
                CREATE TABLE update_state (id INTEGER PRIMARY KEY, pts INTEGER, qts INTEGER, date INTEGER,
                    seq INTEGER);
                CREATE TABLE version (number INTEGER PRIMARY KEY);
                CREATE INDEX idx_peers_id ON peers (id);
                CREATE INDEX idx_peers_phone_number ON peers (phone_number);
                CREATE INDEX idx_usernames_id ON usernames (id);
                CREATE INDEX idx_usernames_username ON usernames (username);
                CREATE TRIGGER trg_peers_last_update_on AFTER UPDATE ON peers BEGIN
                    UPDATE peers SET last_update_on = CAST(STRFTIME('%s', 'now') AS INTEGER) WHERE id = NEW.id; END;
                INSERT INTO version VALUES (7);""")
            conn.execute("INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?,?)",
                         (rec["dc_id"], addr[0], addr[1], rec.get("api_id"), tm, rec["auth_key"], now,
                          rec.get("user_id"), rec.get("is_bot")))
            for p in peers:
                conn.execute("INSERT INTO peers VALUES (?,?,?,?,?)",
                             (p["id"], p["access_hash"], peer_type(p, True), p.get("phone"),
                              p.get("last_update_on") or now))
                for u in p["usernames"]:
                    conn.execute("INSERT INTO usernames VALUES (?,?)", (p["id"], u))
        elif fmt == "telethon-file":
            addr = address(rec)
            if not addr:
                raise Problem(422, "server_address: no address known for this DC", ["server_address"])
            conn.executescript("""
                CREATE TABLE version (version integer primary key);
                CREATE TABLE sessions (dc_id integer primary key, server_address text, port integer,
                    auth_key blob, takeout_id integer);
                CREATE TABLE entities (id integer primary key, hash integer not null, username text,
                    phone integer, name text, date integer);
                CREATE TABLE sent_files (md5_digest blob, file_size integer, type integer, id integer,
                    hash integer, primary key(md5_digest, file_size, type));
                CREATE TABLE update_state (id integer primary key, pts integer, qts integer, date integer,
                    seq integer);
                INSERT INTO version VALUES (7);""")
            conn.execute("INSERT INTO sessions VALUES (?,?,?,?,?)", (rec["dc_id"], addr[0], addr[1],
                                                                    rec["auth_key"], None))
            for p in peers:
                conn.execute("INSERT INTO entities VALUES (?,?,?,?,?,?)",
                             (p["id"], p["access_hash"], (p["usernames"] or [None])[0], p.get("phone"),
                              p.get("name"), now))
            if rec.get("user_id") is not None:
                conn.execute("INSERT INTO entities VALUES (0, ?, NULL, NULL, NULL, ?)", (rec["user_id"], now))
        else:
            raise Problem(400, f"format: unknown export format {fmt!r}")
        conn.commit()
        conn.close()
        with open(path, "rb") as fh:
            return "application/vnd.sqlite3", fh.read()


# ----------------------------------------------------------------------------- HTTP

SESSIONS = {}
LOCK = threading.Lock()
TOKEN = None


def metadata(name, rec):
    key = rec.get("auth_key")
    doc = {k: rec.get(k) for k in FIELDS}
    doc.update(name=name, auth_key_id=hashlib.sha1(key).digest()[-8:].hex() if key else None, revoked=False)
    return doc


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("fake-vault: " + fmt % args + "\n")

    def send(self, status, ctype, body, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def problem(self, p):
        doc = {"type": "about:blank", "title": "error", "status": p.status, "detail": p.detail}
        if p.missing:
            doc["missing_fields"] = p.missing
        self.send(p.status, "application/problem+json", json.dumps(doc).encode())

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n)

    def route(self, method):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        parts = [urllib.parse.unquote(p) for p in url.path.split("/") if p]
        try:
            if url.path == "/healthz":
                return self.send(200, "text/plain", b"ok")
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                raise Problem(401, "authorization: bearer token required")
            if parts[:2] != ["v1", "sessions"]:
                raise Problem(404, "path: not found")
            if method == "POST" and len(parts) == 2:
                return self.create(query)
            name = parts[2] if len(parts) > 2 else None
            with LOCK:
                entry = SESSIONS.get(name)
            if entry is None:
                raise Problem(404, "name: no such session")
            rec, peers = entry
            if method == "GET" and len(parts) == 3:
                return self.send(200, "application/json", json.dumps(metadata(name, rec)).encode(),
                                 {"ETag": f'"{rec["version"]}"'})
            if method == "PATCH" and len(parts) == 3:
                if_match = self.headers.get("If-Match")
                if if_match and if_match != f'"{rec["version"]}"':
                    raise Problem(412, "If-Match: stale ETag")
                changes = json.loads(self.body() or b"{}")
                with LOCK:
                    for k, v in changes.items():
                        if k not in FIELDS:
                            raise Problem(422, f"{k}: not a patchable field")
                        rec[k] = v
                    rec["version"] += 1
                return self.send(200, "application/json", json.dumps(metadata(name, rec)).encode(),
                                 {"ETag": f'"{rec["version"]}"'})
            if method == "GET" and parts[3:] == ["export"]:
                ctype, body = export(rec, peers, query.get("format", "pyrogram"))
                return self.send(200, ctype, body)
            raise Problem(405, "method: not allowed")
        except Problem as p:
            return self.problem(p)

    def create(self, query):
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        data = self.body()
        if ctype == "application/vnd.sqlite3":
            name = query.get("name")
            rec, peers = parse_file(data)
        else:
            doc = json.loads(data)
            name = doc.get("name")
            rec, peers = parse_string(doc["session_string"])
        if not name:
            raise Problem(422, "name: required")
        rec["version"] = 1
        with LOCK:
            if name in SESSIONS:
                raise Problem(409, "name: exists")
            SESSIONS[name] = (rec, peers)
        self.send(201, "application/json", json.dumps(metadata(name, rec)).encode(),
                  {"Location": f"/v1/sessions/{name}"})

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_PATCH(self):
        self.route("PATCH")


def inspect_file(path):
    conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        rec, peers = _parse_db(conn)
    finally:
        conn.close()
    print(json.dumps({k: rec.get(k) for k in FIELDS} | {"peers": len(peers)}))
    return 0


def main(argv):
    global TOKEN
    if argv[:1] == ["inspect"]:
        return inspect_file(argv[1])
    listen = argv[argv.index("--listen") + 1]
    host, port = listen.rsplit(":", 1)
    TOKEN = os.environ.get("SESSION_VAULT_ROOT_TOKEN")
    server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    sys.stderr.write(f"fake-vault: listening on {listen}; root token: {TOKEN}\n")
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
