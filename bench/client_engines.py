#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Issue 17's storage engines (clients/python) against a real vault on loopback.

    client_engines.py run --url URL --lib LIB --rep R [--peers 10000] [--calls1 5000] [--calls100 200]
    client_engines.py summarize ROWS.jsonl

``run`` executes inside one library's venv (scripts/interop.sh builds them, with session_vault
installed), under the interop workers' network guard (loopback only), and prints one JSON line:

* ``open_ms``: a fresh engine on a session holding ``--peers`` peers and two update states, from
  ``VaultStorage(...).open()`` / ``VaultSession(...)`` to the cache loaded (lease taken, session,
  peers pages and update state fetched); checks that every peer is cached.
* ``flush_ms``: ``save()`` right after ``--peers`` new peers were given to ``update_peers``
  (Telethon: ``process_entities``) in calls of 100 on an empty session; the vault's ``peer_count``
  must then be ``--peers``.
* ``upd1_us`` / ``upd100_us`` (new peers each call) and ``upd100same_us`` (the same 100 peers
  again): µs per ``update_peers`` call on the engine (``eng_``) and on the library's own in-memory
  storage (``mem_``: Pyrogram's and Pyrofork's ``MemoryStorage``, Kurigram's
  ``SQLiteStorage(in_memory=True)``, Hydrogram's ``SQLiteStorage(use_memory=True)`` on aiosqlite,
  Telethon's ``MemorySession.process_entities``), the same inputs built beforehand (Kurigram's rows
  carry no username: they come through ``update_usernames``, not measured here).

Requests and the time spent in them come from a counter around ``httpx.Client.send``. Imports,
including httpx's own at its first client (~30 ms per process), happen before any measurement, and
each starts after ``gc.collect()``: otherwise a full collection of the library's ~120k objects
(~55 ms with Pyrogram 2.0 loaded) may or may not land inside it. Engines run
with ``flush_interval=3600`` and ``ttl_seconds=60`` so that no background flush or renewal lands
inside a measurement. Token: SV_BENCH_TOKEN. ``summarize`` (stdlib only) prints medians and
min–max per library as a markdown table.
"""

import argparse
import asyncio
import base64
import gc
import http.client
import ipaddress
import json
import os
import statistics
import struct
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
WORKERS = os.path.join(os.path.dirname(HERE), "Tests", "interop", "workers")
KEY = bytes((i * 11 + 5) % 256 for i in range(256))
USER_ID = 5000000077
ENGINE_KW = {"flush_interval": 3600.0, "ttl_seconds": 60}
PYRO_TYPES = {"user": "user", "bot": "bot", "channel": "channel", "supergroup": "supergroup"}


# -- the vault, seen from outside (stdlib only) -------------------------------------------------------

class Vault:
    def __init__(self, url, token):
        u = urllib.parse.urlsplit(url)
        if u.hostname not in ("127.0.0.1", "localhost", "::1"):
            sys.exit("client_engines: loopback targets only")
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        self.auth = {"Authorization": "Bearer " + token}

    def call(self, method, path, body=None):
        headers = dict(self.auth)
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=data, headers=headers)
        r = self.conn.getresponse()
        raw = r.read()
        return r.status, (json.loads(raw) if raw and r.getheader("Content-Type", "").endswith("json") else raw)

    def must(self, method, path, body=None, ok=(200, 201, 204)):
        status, out = self.call(method, path, body)
        if status not in ok:
            raise SystemExit(f"client_engines: {method} {path}: HTTP {status} {str(out)[:300]}")
        return out

    def peer_count(self, name):
        status, meta = self.call("GET", "/v1/sessions/" + urllib.parse.quote(name))
        return meta["peer_count"] if status == 200 else None

    def create(self, name, lib):
        if lib == "telethon":
            packed = struct.pack(">B4sH256s", 2, ipaddress.ip_address("149.154.167.51").packed, 443, KEY)
            body = {"name": name, "session_string": "1" + base64.urlsafe_b64encode(packed).decode(),
                    "api_id": 12345, "user_id": USER_ID, "is_bot": False}
        else:
            packed = struct.pack(">BI?256sQ?", 2, 12345, False, KEY, USER_ID, False)
            body = {"name": name, "session_string": base64.urlsafe_b64encode(packed).decode().rstrip("=")}
        self.must("POST", "/v1/sessions", body, ok=(201,))

    def seed(self, name, lib, peers):
        """The session with ``peers`` (vault shape) and two update states, unless it is there already."""
        have = self.peer_count(name)
        if have == len(peers):
            return False
        if have is not None:
            raise SystemExit(f"client_engines: {name} holds {have} peers, expected {len(peers)}")
        self.create(name, lib)
        path = "/v1/sessions/" + urllib.parse.quote(name)
        for i in range(0, len(peers), 1000):
            self.must("PUT", path + "/peers", {"peers": peers[i:i + 1000]})
        channel = 1000000001 if lib == "telethon" else -1001000000001
        self.must("PUT", path + "/state", {"states": [{"id": 0, "pts": 100, "qts": 5, "date": 1700000000, "seq": 7},
                                                      {"id": channel, "pts": 55, "qts": 0, "date": 1700000001, "seq": 0}]})
        if self.peer_count(name) != len(peers):
            raise SystemExit(f"client_engines: seeding {name} did not leave {len(peers)} peers")
        return True


# -- peers -------------------------------------------------------------------------------------------

def gen_peers(n, first):
    """``n`` peers in the vault's shape, ids from ``first``: users (half with a username, a third
    with a phone), every tenth a bot, a channel or a supergroup."""
    out = []
    for i in range(first, first + n):
        k = i % 10
        kind = {0: "channel", 1: "supergroup", 2: "bot"}.get(k, "user")
        if kind in ("channel", "supergroup"):
            marked = -1000000000000 - (1000000000 + i)
        else:
            marked = 100000000 + i
        username = f"bench_{kind}_{i}" if (i % 2 == 0 or kind != "user") else None
        phone = f"1555{i:07d}" if (kind == "user" and i % 3 == 0) else None
        out.append({"id": marked, "access_hash": (i * 0x9E3779B97F4A7C15) % (1 << 63) - (1 << 62), "type": kind,
                    "usernames": [username] if username else [], "phone_number": phone, "name": f"Bench {kind} {i}"})
    return out


def pyro_rows(lib, peers):
    """``update_peers`` rows in the flavour's shape, and Kurigram's ``update_usernames`` rows."""
    if lib == "kurigram":
        rows = [(p["id"], p["access_hash"], PYRO_TYPES[p["type"]], p["phone_number"]) for p in peers]
        names = [(p["id"], p["usernames"]) for p in peers if p["usernames"]]
        return rows, names
    rows = [(p["id"], p["access_hash"], PYRO_TYPES[p["type"]], (p["usernames"] or [None])[0], p["phone_number"])
            for p in peers]
    return rows, []


def tele_entities(peers):
    from telethon.tl import types

    out = []
    for p in peers:
        username = (p["usernames"] or [None])[0]
        if p["type"] in ("user", "bot"):
            out.append(types.User(id=p["id"], access_hash=p["access_hash"], first_name=p["name"], username=username,
                                  phone=p["phone_number"], bot=(p["type"] == "bot") or None))
        else:
            out.append(types.Channel(id=-p["id"] - 1000000000000, title=p["name"], photo=types.ChatPhotoEmpty(),
                                     date=None, access_hash=p["access_hash"], username=username,
                                     broadcast=(p["type"] == "channel") or None,
                                     megagroup=(p["type"] == "supergroup") or None))
    return out


def chunks(seq, size):
    return [seq[i:i + size] for i in range(0, len(seq), size)]


# -- counting requests ---------------------------------------------------------------------------------

class Meter:
    """Requests through httpx (every engine request) and the seconds spent in them."""

    def __init__(self):
        import httpx

        self.requests, self.seconds, self.log = 0, 0.0, []
        real = httpx.Client.send
        meter = self

        def send(client, request, **kw):
            t = time.perf_counter()
            try:
                return real(client, request, **kw)
            finally:
                dt = time.perf_counter() - t
                meter.requests += 1
                meter.seconds += dt
                tail = request.url.path.rsplit("/", 1)[-1]
                meter.log.append((f"{request.method} {tail if tail in ('lease', 'peers', 'state') else 'session'}",
                                  round(dt * 1000, 1)))

        httpx.Client.send = send

    def mark(self):
        return self.requests, self.seconds

    def since(self, mark):
        return self.requests - mark[0], (self.seconds - mark[1]) * 1000


# -- the engines ---------------------------------------------------------------------------------------

def sv_flavour(lib):
    if lib == "hydrogram":
        from session_vault.hydrogram import FLAVOUR
    else:
        from session_vault.pyrogram import FLAVOUR
    return FLAVOUR


class Engine:
    """One library's engine and its ``MemoryStorage`` behind one shape (imported up front, so
    that no import lands inside a measurement)."""

    def __init__(self, lib, url, token):
        self.lib, self.url, self.token = lib, url, token
        self.tele = lib == "telethon"
        if self.tele:
            from telethon.sessions import MemorySession
            from session_vault.telethon import VaultSession

            self.engine_cls, self.memory_cls = VaultSession, MemorySession
        elif lib == "hydrogram":  # no MemoryStorage: SQLiteStorage(use_memory=True), on aiosqlite
            from hydrogram.storage import SQLiteStorage
            from session_vault.hydrogram import VaultStorage

            self.engine_cls = VaultStorage
            self.memory_cls = lambda name: SQLiteStorage(name, use_memory=True)
        elif lib == "kurigram":  # no MemoryStorage: SQLiteStorage(in_memory=True), what in_memory=True uses
            import pathlib

            from pyrogram.storage import SQLiteStorage
            from session_vault import pyrogram as sv

            self.engine_cls = sv.VaultStorage
            self.memory_cls = lambda name: SQLiteStorage(name, pathlib.Path("."), in_memory=True)
        else:
            from pyrogram.storage import MemoryStorage
            from session_vault import pyrogram as sv

            self.engine_cls, self.memory_cls = sv.VaultStorage, MemoryStorage
        if not self.tele and sv_flavour(lib) != lib:
            raise SystemExit(f"client_engines: session_vault detected {sv_flavour(lib)!r} in the {lib} venv")
        # httpx imports httpcore, h11, anyio at its first client (~30 ms, once per process): outside open_ms.
        import httpx

        httpx.Client(verify=False, trust_env=False).close()

    async def open(self, name):
        storage = self.engine_cls(name, url=self.url, token=self.token, **ENGINE_KW)
        if not self.tele:  # Telethon's engine opens in its constructor
            await storage.open()
        return storage

    async def memory(self):
        if self.tele:
            return self.memory_cls()
        storage = self.memory_cls("bench-memory")
        await storage.open()
        return storage

    def inputs(self, peers, size):
        """Per-call arguments, built before any timing."""
        if self.tele:
            return chunks(tele_entities(peers), size)
        return chunks(pyro_rows(self.lib, peers)[0], size)

    async def update(self, storage, batch):
        if self.tele:
            storage.process_entities(batch)
        else:
            await storage.update_peers(batch)

    async def usernames(self, storage, peers):
        if self.lib == "kurigram":
            _, names = pyro_rows(self.lib, peers)
            for batch in chunks(names, 100):
                await storage.update_usernames(batch)

    async def save(self, storage):
        if self.tele:
            storage.save()
        else:
            await storage.save()

    async def close(self, storage):
        if self.tele:
            storage.close()
        else:
            await storage.close()

    async def count(self, storage):
        """Peers the store holds (to check a micro-benchmark did its work)."""
        if hasattr(storage, "core"):
            return len(storage.core.peers)
        if self.tele:
            return len(storage._entities)
        cursor = storage.conn.execute("SELECT COUNT(*) FROM peers")
        if self.lib == "hydrogram":  # aiosqlite
            return (await (await cursor).fetchone())[0]
        return cursor.fetchone()[0]


async def per_call_us(engine, storage, calls):
    gc.collect()
    t = time.perf_counter()
    for batch in calls:
        await engine.update(storage, batch)
    return (time.perf_counter() - t) / len(calls) * 1e6


async def run(a):
    sys.path.insert(0, WORKERS)
    import _common

    _common.install_network_guard()
    token = os.environ.get("SV_BENCH_TOKEN") or sys.exit("client_engines: SV_BENCH_TOKEN unset")
    meter = Meter()
    vault = Vault(a.url, token)
    engine = Engine(a.lib, a.url, token)
    out = {"lib": a.lib, "rep": a.rep, "peers": a.peers}
    tag = f"{a.lib}-r{a.rep}-{os.getpid()}"

    # 1. open a session holding --peers peers
    name = f"ce-{a.lib}-open-{a.peers}"
    out["seeded"] = vault.seed(name, a.lib, gen_peers(a.peers, 1))
    gc.collect()
    mark = meter.mark()
    t = time.perf_counter()
    storage = await engine.open(name)
    out["open_ms"] = (time.perf_counter() - t) * 1000
    out["open_requests"], out["open_http_ms"] = meter.since(mark)
    out["open_calls"] = meter.log[-out["open_requests"]:]
    if len(storage.core.peers) != a.peers or len(storage.core.states) != 2:
        raise SystemExit(f"client_engines: open cached {len(storage.core.peers)} peers, "
                         f"{len(storage.core.states)} states")
    await engine.close(storage)

    # 2. save() after --peers new peers
    name = f"ce-flush-{tag}"
    vault.create(name, a.lib)
    storage = await engine.open(name)
    peers = gen_peers(a.peers, 1_000_001)
    for batch in engine.inputs(peers, 100):
        await engine.update(storage, batch)
    await engine.usernames(storage, peers)
    out["flush_pending"] = storage.core.pending()
    gc.collect()
    mark = meter.mark()
    t = time.perf_counter()
    await engine.save(storage)
    out["flush_ms"] = (time.perf_counter() - t) * 1000
    out["flush_requests"], out["flush_http_ms"] = meter.since(mark)
    got = vault.peer_count(name)
    if got != a.peers or storage.core.pending():
        raise SystemExit(f"client_engines: after save() the vault holds {got} peers, {storage.core.pending()} pending")
    await engine.close(storage)

    # 3. update_peers per call: the engine, then the library's own in-memory storage, same inputs
    warm = gen_peers(100, 2_000_001)
    new1 = gen_peers(a.calls1, 3_000_001)
    new100 = gen_peers(a.calls100 * 100, 4_000_001)
    same = gen_peers(100, 6_000_001)
    name = f"ce-update-{tag}"
    vault.create(name, a.lib)
    for prefix in ("eng", "mem"):
        storage = await (engine.open(name) if prefix == "eng" else engine.memory())
        mark = meter.mark()
        await per_call_us(engine, storage, engine.inputs(warm, 1))
        await per_call_us(engine, storage, engine.inputs(same, 100))
        out[f"{prefix}_upd1_us"] = await per_call_us(engine, storage, engine.inputs(new1, 1))
        out[f"{prefix}_upd100_us"] = await per_call_us(engine, storage, engine.inputs(new100, 100))
        out[f"{prefix}_upd100same_us"] = await per_call_us(engine, storage, engine.inputs(same, 100) * a.calls100)
        if meter.since(mark)[0]:
            raise SystemExit(f"client_engines: {prefix} made {meter.since(mark)[0]} requests while updating peers")
        held = await engine.count(storage)
        expect = 100 + a.calls1 + a.calls100 * 100 + 100
        if held != expect:
            raise SystemExit(f"client_engines: {prefix} holds {held} peers, expected {expect}")
        await engine.close(storage)
    out["guard_hits"] = _common.GUARD_HITS
    print(json.dumps(out), flush=True)


# -- the summary -------------------------------------------------------------------------------------

COLUMNS = [("open_ms", "open {peers} peers, ms", 0), ("flush_ms", "save() of {peers} new, ms", 0),
           ("eng_upd1_us", "update ×1, engine µs", 1), ("mem_upd1_us", "×1, memory µs", 1),
           ("eng_upd100_us", "update ×100, engine µs", 0), ("mem_upd100_us", "×100, memory µs", 0),
           ("eng_upd100same_us", "×100 known, engine µs", 0), ("mem_upd100same_us", "×100 known, memory µs", 0)]
LIB_ORDER = ["pyrogram", "hydrogram", "kurigram", "pyrofork", "telethon"]


def summarize(path):
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rows.append(json.loads(line))
    if not rows:
        sys.exit("client_engines: no rows")
    libs = sorted({r["lib"] for r in rows}, key=lambda x: (LIB_ORDER.index(x) if x in LIB_ORDER else 99, x))
    peers = rows[0]["peers"]
    print(f"# {len(rows)} rows; medians (min–max) over repetitions; requests per open / per save()")
    print("| library | " + " | ".join(title.format(peers=peers) for _, title, _ in COLUMNS) + " | requests open / save |")
    print("|---" * (len(COLUMNS) + 2) + "|")
    for lib in libs:
        mine = [r for r in rows if r["lib"] == lib]
        cells = []
        for key, _, digits in COLUMNS:
            vals = [r[key] for r in mine if key in r]
            if not vals:
                cells.append("–")
                continue
            fmt = f"{{:,.{digits}f}}"
            cell = fmt.format(statistics.median(vals))
            if len(vals) > 1:
                cell += f" ({fmt.format(min(vals))}–{fmt.format(max(vals))})"
            cells.append(cell)
        reqs = f"{statistics.median(r['open_requests'] for r in mine):g} / {statistics.median(r['flush_requests'] for r in mine):g}"
        print(f"| {lib} ({len(mine)}) | " + " | ".join(cells) + f" | {reqs} |")
    def med(lib, get):
        return statistics.median(get(r) for r in rows if r["lib"] == lib)

    print("# time inside HTTP requests, ms (median) open (of it the GET of the peers) / save(): " + "; ".join(
        f"{lib} {med(lib, lambda r: r['open_http_ms']):.0f} "
        f"({med(lib, lambda r: sum(ms for what, ms in r['open_calls'] if what == 'GET peers')):.0f})"
        f" / {med(lib, lambda r: r['flush_http_ms']):.0f}" for lib in libs))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--url", required=True)
    r.add_argument("--lib", required=True, choices=LIB_ORDER)
    r.add_argument("--rep", type=int, default=1)
    r.add_argument("--peers", type=int, default=10000)
    r.add_argument("--calls1", type=int, default=5000)
    r.add_argument("--calls100", type=int, default=200)
    s = sub.add_parser("summarize")
    s.add_argument("rows")
    a = ap.parse_args()
    if a.cmd == "summarize":
        summarize(a.rows)
        return
    if not (1 <= a.peers <= 1_000_000 and 1 <= a.calls1 <= 1_000_000 and 1 <= a.calls100 <= 10_000):
        sys.exit("client_engines: --peers, --calls1 or --calls100 out of range")
    asyncio.run(run(a))


if __name__ == "__main__":
    main()
