# SPDX-License-Identifier: Apache-2.0
"""Worker for the Pyrogram family: pyrogram 2.x, hydrogram, kurigram, pyrofork, pyrogram 1.4.

Runs inside the library's own virtualenv (see scripts/interop.sh). Operations (JSON on stdin):

* ``make``: build a fresh session with the library's *own* code: a ``Client`` object (never
  started, never connected) opens its file storage, the session fields are set through the
  storage accessors, peers go through ``Client.fetch_peers()`` with raw TL objects, then
  ``save()``, ``export_session_string()`` and ``close()``.
* ``load``: open session strings / ``.session`` files (always on a copy) the way a user's
  ``Client`` would, read every field back and resolve peers by id, username and phone.
* ``netcheck``: prove that the network guard refuses every way out.
"""

import importlib.metadata
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402  (path set up above)
from _common import build_tl, error_info, hexs, input_peer_json  # noqa: E402

# Which distribution must be installed for each library key: catches a venv mix-up early.
DISTRIBUTIONS = {
    "pyrogram": ("pyrogram", "Pyrogram", "2.0.106"),
    "hydrogram": ("hydrogram", "Hydrogram", "0.2.0"),
    "kurigram": ("pyrogram", "Kurigram", "2.2.26"),
    "pyrofork": ("pyrogram", "pyrofork", "2.3.69"),
    "pyrogram-1.4": ("pyrogram", "Pyrogram", "1.4.16"),
}

API_HASH = "0123456789abcdef0123456789abcdef"  # any 32 hex chars; never sent anywhere


def load_library(lib):
    module_name, dist, version = DISTRIBUTIONS[lib]
    installed = importlib.metadata.version(dist)
    if installed != version:
        raise RuntimeError(f"{lib}: expected {dist}=={version}, this venv has {installed}")
    module = __import__(module_name)
    return module


def new_client(lib, mod, name, workdir, api_id=None, session_string=None):
    """A Client chosen exactly as a user's code would pick storage (docs/formats.md, "How the
    clients choose their storage")."""
    if lib == "pyrogram-1.4":
        # 1.4: the first argument is the session string (>= 351 chars) or the file name.
        first = session_string if session_string is not None else name
        return mod.Client(first, api_id=api_id or 1, api_hash=API_HASH, workdir=workdir)
    kwargs = {"api_id": api_id or 1, "api_hash": API_HASH, "workdir": workdir}
    if session_string is not None:
        kwargs["session_string"] = session_string
    if lib == "hydrogram":
        from pathlib import Path

        kwargs["workdir"] = Path(workdir)
    return mod.Client(name, **kwargs)


def kurigram_address(test_mode, dc_id):
    """kurigram's own DC table (the one its storage uses while importing/migrating)."""
    from pyrogram.storage import sqlite_storage

    table = sqlite_storage.TEST if test_mode else sqlite_storage.PROD
    return table[dc_id], (80 if test_mode else 443)


def build_peers(lib, raw, peers):
    """Raw TL User/Chat/Channel(/Community) objects for ``Client.fetch_peers``."""
    objects, notes = [], []
    photo = raw.types.ChatPhotoEmpty()
    for p in peers:
        kind = p["kind"]
        usernames = None
        if p.get("usernames") and not hasattr(raw.types, "Username"):
            notes.append({"peer": p["id"], "kind": kind, "note": "no Username type (collectible usernames) in this layer"})
        elif p.get("usernames"):
            usernames = [build_tl(raw.types.Username, username=u, active=True)[0] for u in p["usernames"]]
        if kind in ("user", "bot"):
            obj, dropped = build_tl(
                raw.types.User,
                id=p["id"],
                access_hash=p["access_hash"],
                first_name=p.get("title", "x"),
                username=p.get("username"),
                usernames=usernames,
                phone=p.get("phone"),
                bot=(kind == "bot") or None,
                is_self=p.get("is_self") or None,
            )
        elif kind == "group":
            obj, dropped = build_tl(
                raw.types.Chat, id=p["id"], title=p.get("title", "x"), photo=photo,
                participants_count=1, date=0, version=1,
            )
        elif kind == "community":
            if not hasattr(raw.types, "Community"):
                notes.append({"peer": p["id"], "kind": kind, "note": "no Community type in this layer"})
                continue
            obj, dropped = build_tl(
                raw.types.Community, id=p["id"], title=p.get("title", "x"), photo=photo,
                date=0, access_hash=p["access_hash"],
            )
        else:
            obj, dropped = build_tl(
                raw.types.Channel,
                id=p["id"],
                access_hash=p["access_hash"],
                title=p.get("title", "x"),
                photo=photo,
                date=0,
                broadcast=(kind == "channel") or None,
                megagroup=(kind in ("supergroup", "forum")) or None,
                forum=(kind == "forum") or None,
                monoforum=(kind == "direct") or None,
                username=p.get("username"),
                usernames=usernames,
            )
        if dropped:
            notes.append({"peer": p["id"], "kind": kind, "dropped_arguments": dropped})
        objects.append(obj)
    return objects, notes


async def op_make(req):
    lib = req["lib"]
    mod = load_library(lib)
    fields = req["fields"]
    key = bytes.fromhex(fields["auth_key_hex"]) if fields.get("auth_key_hex") else os.urandom(256)
    workdir = req["dir"]
    name = req["name"]
    os.makedirs(workdir, exist_ok=True)

    client = new_client(lib, mod, name, workdir, api_id=fields.get("api_id"))
    storage = client.storage
    await storage.open()
    await storage.dc_id(fields["dc_id"])
    if lib != "pyrogram-1.4":  # schema v2 has no api_id
        await storage.api_id(fields["api_id"])
    if lib == "kurigram":
        address, port = kurigram_address(fields["test_mode"], fields["dc_id"])
        await storage.server_address(address)
        await storage.port(port)
    await storage.test_mode(fields["test_mode"])
    await storage.auth_key(key)
    await storage.user_id(fields["user_id"])
    await storage.is_bot(fields["is_bot"])

    peers, notes = build_peers(lib, mod.raw, req.get("peers", []))
    await client.fetch_peers(peers)

    await storage.save()
    if req.get("date") is not None:
        await storage.date(req["date"])
    out = {"library_version": importlib.metadata.version(DISTRIBUTIONS[lib][1]),
           "storage_class": type(storage).__name__, "peer_notes": notes}
    out["fields"] = await read_fields(lib, storage)
    try:
        out["string"] = await storage.export_session_string()
    except Exception as exc:
        out["string"] = None
        out["string_error"] = error_info(exc)
    if req.get("leave_open"):
        # Simulate a process that dies without close(): hydrogram's WAL stays "hot" beside the file.
        out["left_open"] = True
    else:
        await storage.close()
    out["file"] = os.path.join(workdir, name + ".session")
    out["auth_key_hex"] = key.hex()
    return out


async def read_fields(lib, storage):
    names = ["dc_id", "api_id", "test_mode", "auth_key", "date", "user_id", "is_bot"]
    if lib == "pyrogram-1.4":
        names.remove("api_id")
    if lib == "kurigram":
        names += ["server_address", "port"]
    fields, errors = {}, {}
    for n in names:
        try:
            value = await getattr(storage, n)()
        except Exception as exc:
            errors[n] = error_info(exc)
            continue
        if n == "auth_key":
            fields["auth_key_hex"] = hexs(value)
        elif n in ("test_mode", "is_bot") and value is not None:
            fields[n] = bool(value)
        else:
            fields[n] = value
    if errors:
        fields["_errors"] = errors
    return fields


async def lookup(storage, how, value):
    method = {
        "id": storage.get_peer_by_id,
        "username": storage.get_peer_by_username,
        "phone": storage.get_peer_by_phone_number,
    }[how]
    try:
        return {"ok": True, "peer": input_peer_json(await method(value))}
    except Exception as exc:
        return {"ok": False, "error": error_info(exc)}


async def load_one(lib, mod, item, scratch):
    res = {"key": item["key"]}
    stage = "Client()"
    storage = None
    opened = False
    try:
        name = "interop"
        workdir = tempfile.mkdtemp(dir=scratch)
        if item["kind"] == "string":
            client = new_client(lib, mod, name, workdir, session_string=item["value"])
        else:
            _common.copy_for_reading(item["path"], workdir, name)
            client = new_client(lib, mod, name, workdir)
        storage = client.storage
        res["storage_class"] = type(storage).__name__
        stage = "storage.open()"
        await storage.open()
        opened = True
        stage = "read fields"
        res["fields"] = await read_fields(lib, storage)
        stage = "lookups"
        lookups = {}
        for how, values in (("id", item.get("ids", [])), ("username", item.get("usernames", [])),
                            ("phone", item.get("phones", []))):
            for v in values:
                lookups[f"{how}:{v}"] = await lookup(storage, how, v)
        res["lookups"] = lookups
        if item.get("export"):
            try:
                res["exported_string"] = await storage.export_session_string()
            except Exception as exc:
                res["export_error"] = error_info(exc)
        res["ok"] = True
    except Exception as exc:
        res["ok"] = False
        res["stage"] = stage
        res["error"] = error_info(exc)
    finally:
        # Close even after a failed open(): hydrogram's aiosqlite connection runs in a
        # non-daemon thread that would otherwise keep the worker alive.
        if storage is not None and getattr(storage, "conn", None) is not None:
            try:
                await storage.close()
            except Exception as exc:
                if opened:
                    res["close_error"] = error_info(exc)
    if item["kind"] == "file":
        res["copy"] = os.path.join(workdir, "interop.session")
    return res


async def op_load(req):
    lib = req["lib"]
    mod = load_library(lib)
    scratch = req.get("dir") or tempfile.mkdtemp(prefix="interop-load-")
    os.makedirs(scratch, exist_ok=True)
    results = [await load_one(lib, mod, item, scratch) for item in req["items"]]
    return {"library_version": importlib.metadata.version(DISTRIBUTIONS[lib][1]), "results": results}


async def op_netcheck(req):
    lib = req["lib"]
    mod = load_library(lib)

    async def start_client():
        # The library's own connection code, pointed at a real DC through a fresh login
        # attempt: must be refused by the guard before any packet.
        workdir = tempfile.mkdtemp(prefix="interop-net-")
        client = new_client(lib, mod, "net", workdir, api_id=1)
        await client.connect()

    return await _common.netcheck(("Client.connect()", start_client))


if __name__ == "__main__":
    sys.exit(_common.run({"make": op_make, "load": op_load, "netcheck": op_netcheck}))
