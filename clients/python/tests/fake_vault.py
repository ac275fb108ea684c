# SPDX-License-Identifier: Apache-2.0
"""An in-process stand-in for session-vault's API, for testing the client package only.

It implements the slice the storage engines use (sessions from strings, metadata, PATCH with a new
key, string export, leases with fencing, peers pages and batch upsert, update state), in memory,
with no encryption and no hardening beyond the vault's limits a batch can hit (a JSON body over
256 KiB is answered 413, a peer name over 256 UTF-8 bytes 422). It is not the product. Switches for
tests: ``break_lease``, ``fail_writes`` (answer 503 to every write), ``lock_delay``; ``requests``
records every call.

Also runnable like the vault binary, so the interop harness can start it:
``python fake_vault.py serve --dev --listen 127.0.0.1:PORT`` (root token from
SESSION_VAULT_ROOT_TOKEN).
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import ipaddress
import json
import os
import secrets
import struct
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timezone

PROD = {1: "149.154.175.53", 2: "149.154.167.51", 3: "149.154.175.100", 4: "149.154.167.91", 5: "91.108.56.130"}
TEST = {1: "149.154.175.10", 2: "149.154.167.40", 3: "149.154.175.117"}
TYPES = {"user", "bot", "group", "channel", "supergroup", "forum", "direct", "community", None}
MAX_JSON_BODY = 256 * 1024  # the vault's limit on a JSON body (VaultRouter.maxJSONBodyBytes): 413 beyond


class Problem(Exception):
    def __init__(self, status, kind, detail, headers=None, **members):
        super().__init__(detail)
        self.status, self.kind, self.detail, self.headers, self.members = status, kind, detail, headers or {}, members


def iso(ts):
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def parse_string(s):
    if s.startswith("1") and len(s) in (353, 369):
        raw = base64.urlsafe_b64decode(s[1:] + "=" * (-len(s[1:]) % 4))
        n = 4 if len(raw) == 263 else 16
        dc, ip, port, key = struct.unpack(f">B{n}sH256s", raw)
        return {"dc_id": dc, "server_address": ipaddress.ip_address(ip).compressed, "port": port, "auth_key": key}
    if len(s) == 362:
        raw = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
        dc, api, test, key, uid, bot = struct.unpack(">BI?256sQ?", raw)
        return {"dc_id": dc, "api_id": api or None, "test_mode": test, "auth_key": key, "user_id": uid or None,
                "is_bot": bot}
    raise Problem(422, "invalid", "session_string: unrecognised format")


class FakeVault:
    def __init__(self, token="test-token", lock_delay=0.0):
        self.token = token
        self.lock_delay = lock_delay
        self.sessions = {}
        self.requests = []
        self.fail_writes = False
        self.lock = threading.RLock()
        self.server = None
        self.epochs = {}

    # -- control ---------------------------------------------------------------------------------

    def start(self, host="127.0.0.1", port=0):
        vault = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_any(self):
                vault.handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_any

        self.server = http.server.ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self):
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def add_session(self, name, session_string, **fields):
        with self.lock:
            s = {"fields": {"dc_id": None, "api_id": None, "test_mode": False, "user_id": None, "is_bot": None,
                            "server_address": None, "port": None}, "key": None, "peers": {}, "states": {},
                 "lease": None, "blocked_until": 0.0, "exclusive": bool(fields.pop("exclusive", False)), "version": 1}
            parsed = parse_string(session_string)
            s["key"] = parsed.pop("auth_key")
            s["fields"].update(parsed)
            s["fields"].update(fields)
            self.sessions[name] = s
            return s

    def break_lease(self, name):
        with self.lock:
            s = self.sessions[name]
            s["lease"] = None
            s["blocked_until"] = time.monotonic() + self.lock_delay

    def current_lease(self, name):
        with self.lock:
            s = self.sessions[name]
            lease = s["lease"]
            if lease and time.monotonic() >= lease["expires"]:
                s["lease"] = None
                s["blocked_until"] = time.monotonic() + self.lock_delay
                lease = None
            return lease

    def writes(self):
        return [r for r in self.requests if r[0] in ("PUT", "PATCH", "DELETE", "POST") and not r[1].endswith("/lease")]

    # -- HTTP ------------------------------------------------------------------------------------

    def handle(self, h):
        url = urllib.parse.urlsplit(h.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        lease_header = h.headers.get("Session-Vault-Lease")
        self.requests.append((h.command, url.path, query, lease_header))
        try:
            if url.path == "/healthz":
                return self.send(h, 200, {"status": "ok"})
            if h.headers.get("Authorization") != f"Bearer {self.token}":
                raise Problem(401, "unauthorized", "missing or wrong token")
            if len(body) > MAX_JSON_BODY:
                raise Problem(413, "too_large", f"body: JSON bodies are limited to {MAX_JSON_BODY} bytes")
            data = json.loads(body) if body else None
            status, payload, headers = self.route(h.command, url.path, query, data, lease_header)
            self.send(h, status, payload, headers)
        except Problem as p:
            doc = {"type": f"https://session-vault.dev/problems/{p.kind}", "title": p.kind, "status": p.status,
                   "detail": p.detail}
            doc.update(p.members)
            self.send(h, p.status, doc, p.headers, problem=True)

    def send(self, h, status, payload, headers=None, problem=False):
        if isinstance(payload, str):
            data, ctype = payload.encode(), "text/plain; charset=utf-8"
        elif payload is None:
            data, ctype = b"", None
        else:
            data = json.dumps(payload).encode()
            ctype = "application/problem+json" if problem else "application/json"
        h.send_response(status)
        if ctype:
            h.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            h.send_header(k, str(v))
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def session(self, name):
        s = self.sessions.get(name)
        if s is None:
            raise Problem(404, "not_found", f"no session named {name!r}")
        return s

    def fence(self, name, s, lease_header):
        lease = self.current_lease(name)
        if lease_header is not None:
            if lease is None or lease["id"] != lease_header:
                raise Problem(409, "lease_lost", "the lease id is not the session's current lease")
        elif s["exclusive"]:
            raise Problem(409, "lease_required", "this session is exclusive: send Session-Vault-Lease")

    def metadata(self, name, s):
        f = s["fields"]
        key = s["key"]
        return dict(f, name=name, auth_key_id=hashlib.sha1(key).digest()[-8:].hex() if key else None,
                    peer_count=len(s["peers"]), version=s["version"], exclusive=s["exclusive"])

    def export(self, s, fmt):
        f = s["fields"]
        if fmt == "pyrogram":
            if not f["api_id"]:
                raise Problem(422, "missing_fields", "api_id is missing", missing_fields=["api_id"])
            packed = struct.pack(">BI?256sQ?", f["dc_id"], f["api_id"], bool(f["test_mode"]), s["key"],
                                 f["user_id"] or 0, bool(f["is_bot"]))
            return base64.urlsafe_b64encode(packed).decode().rstrip("=")
        if fmt == "telethon":
            address = f["server_address"] or (TEST if f["test_mode"] else PROD)[f["dc_id"]]
            port = f["port"] or (80 if f["test_mode"] else 443)
            ip = ipaddress.ip_address(address).packed
            packed = struct.pack(f">B{len(ip)}sH256s", f["dc_id"], ip, port, s["key"])
            return "1" + base64.urlsafe_b64encode(packed).decode()
        raise Problem(422, "invalid", "format: not a string format")

    def route(self, method, path, query, data, lease_header):
        parts = path.strip("/").split("/")
        with self.lock:
            if parts[:2] == ["v1", "sessions"] and len(parts) == 2 and method == "POST":
                name = data["name"]
                extra = {k: v for k, v in data.items() if k not in ("name", "session_string")}
                self.add_session(name, data["session_string"], **extra)
                return 201, self.metadata(name, self.sessions[name]), {}
            if parts[:2] != ["v1", "sessions"] or len(parts) < 3:
                raise Problem(404, "not_found", "no such route")
            name = urllib.parse.unquote(parts[2])
            tail = parts[3] if len(parts) > 3 else ""
            s = self.session(name)
            is_write = method in ("PUT", "PATCH", "DELETE") and tail != "lease"
            if is_write and self.fail_writes:
                raise Problem(503, "unavailable", "writes are switched off")
            if tail == "":
                if method == "GET":
                    return 200, self.metadata(name, s), {"ETag": f'"{s["version"]}"'}
                if method == "PATCH":
                    self.fence(name, s, lease_header)
                    data = dict(data)
                    if "auth_key" in data:
                        if "dc_id" not in data:
                            raise Problem(422, "invalid", "auth_key: requires dc_id in the same PATCH")
                        key = base64.b64decode(data.pop("auth_key"))
                        if len(key) != 256:
                            raise Problem(422, "invalid", "auth_key: not 256 bytes")
                        s["key"] = key
                    for k, v in data.items():
                        if k not in s["fields"]:
                            raise Problem(400, "invalid", f"{k}: unknown field")
                        s["fields"][k] = v
                    s["version"] += 1
                    return 200, self.metadata(name, s), {"ETag": f'"{s["version"]}"'}
            if tail == "export" and method == "GET":
                if lease_header is not None or s["exclusive"]:
                    self.fence(name, s, lease_header)
                return 200, self.export(s, query.get("format", "pyrogram")), {}
            if tail == "lease":
                return self.lease(method, name, s, query, data or {}, lease_header)
            if tail == "peers":
                if method == "PUT":
                    self.fence(name, s, lease_header)
                    peers = data["peers"]
                    if not 1 <= len(peers) <= 1000:
                        raise Problem(422, "invalid", "peers: 1..1000 items")
                    for p in peers:
                        if p.get("type") not in TYPES or not isinstance(p["id"], int) or p["id"] == 0:
                            raise Problem(422, "invalid", "peers: bad item")
                        if p.get("name") is not None and len(p["name"].encode("utf-8", "surrogatepass")) > 256:
                            raise Problem(422, "invalid", "peers.name: at most 256 bytes")
                        s["peers"][p["id"]] = {"id": p["id"], "access_hash": p.get("access_hash", 0),
                                               "type": p.get("type"), "usernames": list(p.get("usernames") or []),
                                               "phone_number": p.get("phone_number"), "name": p.get("name")}
                    return 200, {"upserted": len(peers), "peer_count": len(s["peers"])}, {}
                if method == "GET":
                    items = sorted(s["peers"].values(), key=lambda p: p["id"])
                    if "id" in query:
                        items = [p for p in items if p["id"] == int(query["id"])]
                    if "username" in query:
                        items = [p for p in items if query["username"].lower() in [u.lower() for u in p["usernames"]]]
                    if "phone" in query:
                        items = [p for p in items if p["phone_number"] == query["phone"]]
                    if "after" in query:
                        items = [p for p in items if p["id"] > int(query["after"])]
                    limit = int(query.get("limit", 1000))
                    page = items[:limit]
                    more = len(items) > limit
                    return 200, {"items": page, "next_after": page[-1]["id"] if more else None}, {}
            if tail == "state":
                if method == "GET":
                    return 200, {"states": [s["states"][i] for i in sorted(s["states"])]}, {}
                if method == "PUT":
                    self.fence(name, s, lease_header)
                    states = data["states"]
                    if not 1 <= len(states) <= 1000:
                        raise Problem(422, "invalid", "states: 1..1000 items")
                    for st in states:
                        s["states"][st["id"]] = {k: st.get(k) for k in ("id", "pts", "qts", "date", "seq")}
                    return 200, {"upserted": len(states), "state_count": len(s["states"])}, {}
                if method == "DELETE":
                    self.fence(name, s, lease_header)
                    s["states"].pop(int(query["id"]), None)
                    return 204, None, {}
            raise Problem(405, "method_not_allowed", f"{method} {path}")

    def lease(self, method, name, s, query, data, lease_header):
        now = time.monotonic()
        lease = self.current_lease(name)
        if method == "POST":
            ttl = int(data.get("ttl_seconds", 15))
            if not 5 <= ttl <= 300:
                raise Problem(422, "invalid", "ttl_seconds: 5..300")
            deadline = now + float(data.get("wait_seconds", 0))
            while True:
                lease = self.current_lease(name)
                free_at = max(lease["expires"] if lease else 0.0, s["blocked_until"])
                if lease is None and now >= s["blocked_until"]:
                    break
                if now >= deadline:
                    wall_expiry = time.time() + (free_at - now)
                    raise Problem(409, "lease_held", f"session {name} is leased",
                                  headers={"Retry-After": max(1, int(free_at - now + 0.999))},
                                  holder=lease["holder"] if lease else None, expires_at=iso(wall_expiry))
                self.lock.release()
                try:
                    time.sleep(0.05)
                finally:
                    self.lock.acquire()
                now = time.monotonic()
            epoch = self.epochs.get(name, 0) + 1
            self.epochs[name] = epoch
            lease = {"id": secrets.token_urlsafe(24), "holder": data["holder"], "ttl": ttl, "epoch": epoch,
                     "expires": now + ttl, "acquired": time.time()}
            s["lease"] = lease
            answer = self.lease_json(lease)
            answer["lease_id"] = lease["id"]
            if "export" in query:
                answer["session_string"] = self.export(s, query["export"])
            return 201, answer, {}
        if method == "PUT":
            if lease is None or lease_header != lease["id"]:
                raise Problem(409, "lease_lost", "the lease id is not the session's current lease")
            if data.get("ttl_seconds"):
                lease["ttl"] = int(data["ttl_seconds"])
            lease["expires"] = now + lease["ttl"]
            return 200, self.lease_json(lease), {}
        if method == "DELETE":
            if lease_header is None:
                self.break_lease(name)
                return 204, None, {}
            if lease is None or lease_header != lease["id"]:
                raise Problem(409, "lease_lost", "the lease id is not the session's current lease")
            s["lease"] = None
            return 204, None, {}
        if method == "GET":
            if lease is None:
                raise Problem(404, "not_found", "no lease")
            return 200, self.lease_json(lease), {}
        raise Problem(405, "method_not_allowed", method)

    def lease_json(self, lease):
        now_wall = time.time()
        return {"epoch": lease["epoch"], "holder": lease["holder"], "acquired_at": iso(lease["acquired"]),
                "expires_at": iso(now_wall + (lease["expires"] - time.monotonic())), "ttl_seconds": lease["ttl"]}


def main(argv):
    # session-vault serve --dev --listen HOST:PORT (the shape the interop harness starts)
    if len(argv) < 2 or argv[1] != "serve" or "--listen" not in argv:
        print("usage: fake_vault.py serve --dev --listen HOST:PORT", file=sys.stderr)
        return 64
    host, port = argv[argv.index("--listen") + 1].rsplit(":", 1)
    vault = FakeVault(token=os.environ.get("SESSION_VAULT_ROOT_TOKEN", "test-token"),
                      lock_delay=float(os.environ.get("SESSION_VAULT_LEASE_LOCK_DELAY_SECONDS", "0")))
    vault.start(host, int(port))
    print(f"fake vault listening on {vault.url}", file=sys.stderr, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    sys.exit(main(sys.argv))
