# SPDX-License-Identifier: Apache-2.0
"""Worker for the storage engines (issue 17): runs inside one library's venv, where
``session_vault`` (clients/python) is installed next to the library, under the network guard.

Operations (JSON on stdin, JSON on stdout):

* ``write``: a client built the documented way on the engine loads the vaulted session through the
  library's own code, learns peers through the library's own path (``Client.fetch_peers`` /
  ``session.process_entities``), records update states where the library has them, saves, closes.
* ``read``: a fresh client on the same name resolves peers by id and username offline and reads
  the update state back.
* ``try_open``: open and close at once; report LeaseHeld with its holder.
* ``hold``: open, touch ``ready``, wait for ``release`` to appear, close.
* ``lease_lost``: open, touch ``ready``, wait for ``broken``; then either poll the storage until
  LeaseLost (``mode=poll``) or learn a peer and save at once (``mode=write``).
* ``churn``: open, learn a new peer every few ms and append ``id monotonic`` to ``progress`` until
  killed.
"""

import asyncio
import datetime
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
from _common import error_info, input_peer_json  # noqa: E402

API_ID = 12345
API_HASH = "0123456789abcdef0123456789abcdef"
TELE = "telethon"


def is_telethon(lib):
    return lib == TELE


# -- building clients the documented way ------------------------------------------------------------

def engine_kwargs(req):
    kw = {"url": req["url"], "token": req["token"]}
    for k in ("flush_interval", "ttl_seconds", "holder", "exclusive"):
        if k in req:
            kw[k] = req[k]
    return kw


def pyro_client(lib, req):
    """(client, storage) for the Pyrogram family / Hydrogram, plugged in as each documents."""
    workdir = tempfile.mkdtemp(prefix="engine-")
    if lib == "hydrogram":
        import hydrogram
        from session_vault.hydrogram import VaultStorage

        storage = VaultStorage(req["name"], **engine_kwargs(req))
        client = hydrogram.Client(req["name"], api_id=API_ID, api_hash=API_HASH, workdir=workdir,
                                  session_storage_engine=storage)
        return client, storage
    import pyrogram
    from session_vault import pyrogram as sv

    assert sv.FLAVOUR == lib, f"session_vault detected {sv.FLAVOUR!r} in the {lib} venv"
    storage = sv.VaultStorage(req["name"], **engine_kwargs(req))
    if lib == "kurigram":
        client = pyrogram.Client(req["name"], api_id=API_ID, api_hash=API_HASH, workdir=workdir,
                                 storage_engine=storage)
    elif lib == "pyrofork":
        client = pyrogram.Client(req["name"], api_id=API_ID, api_hash=API_HASH, workdir=workdir, storage=storage)
    else:  # Pyrogram 2.0.106 has no engine argument: the storage attribute is replaced before start
        client = pyrogram.Client(req["name"], api_id=API_ID, api_hash=API_HASH, workdir=workdir)
        client.storage = storage
    assert client.storage is storage, f"{lib} did not take the engine"
    return client, storage


def tele_client(req):
    from telethon import TelegramClient
    from session_vault.telethon import VaultSession

    session = VaultSession(req["name"], **engine_kwargs(req))
    client = TelegramClient(session, API_ID, API_HASH)
    assert client.session is session
    return client, session


def module_of(lib):
    return __import__("hydrogram" if lib == "hydrogram" else "pyrogram")


async def open_any(lib, req):
    if is_telethon(lib):
        return tele_client(req)
    client, storage = pyro_client(lib, req)
    await client.load_session()  # the library's own code; does not connect when the session exists
    return client, storage


async def close_any(lib, client, storage):
    if is_telethon(lib):
        storage.save()
        storage.close()
    else:
        await storage.save()
        await storage.close()


async def fields_of(lib, client, storage):
    if is_telethon(lib):
        key = storage.auth_key.key if storage.auth_key else None
        return {"dc_id": storage.dc_id, "server_address": storage.server_address, "port": storage.port,
                "auth_key_hex": key.hex() if key else None}
    out = {"dc_id": await storage.dc_id(), "api_id": await storage.api_id(), "test_mode": await storage.test_mode(),
           "user_id": await storage.user_id(), "is_bot": await storage.is_bot(),
           "auth_key_hex": (await storage.auth_key()).hex()}
    if lib == "kurigram":
        out["server_address"], out["port"] = await storage.server_address(), await storage.port()
    return out


async def learn(lib, client, storage, peers):
    if is_telethon(lib):
        from telethon.tl import types

        import telethon_worker

        users, chats, _notes = telethon_worker.build_entities(types, peers)
        storage.process_entities(types.contacts.ResolvedPeer(None, users, chats))
    else:
        import pyrogram_worker

        objects, _notes = pyrogram_worker.build_peers(lib, module_of(lib).raw, peers)
        await client.fetch_peers(objects)


async def record_states(lib, storage, states):
    """Each library's own update-state call (Pyrogram 2.0 and Hydrogram have none)."""
    if lib == "kurigram":
        from pyrogram.storage import UpdateState

        await storage.set_update_state([UpdateState(s["id"], s["pts"], s["qts"], s["date"], s["seq"]) for s in states])
    elif lib == "pyrofork":
        for s in states:
            await storage.update_state((s["id"], s["pts"], s["qts"], s["date"], s["seq"]))
    elif is_telethon(lib):
        from telethon.tl import types

        for s in states:
            date = datetime.datetime.fromtimestamp(s["date"], tz=datetime.timezone.utc)
            storage.set_update_state(s["id"], types.updates.State(s["pts"], s["qts"], date, s["seq"], unread_count=0))


async def read_states(lib, storage):
    if lib == "kurigram":
        return sorted([[s.id, s.pts, s.qts, s.date, s.seq] for s in await storage.get_update_states()])
    if lib == "pyrofork":
        return sorted([list(s) for s in await storage.update_state()])
    if is_telethon(lib):
        return sorted([[i, s.pts, s.qts, int(s.date.timestamp()), s.seq] for i, s in storage.get_update_states()])
    return None


# -- operations ------------------------------------------------------------------------------------

async def op_write(req):
    lib = req["lib"]
    client, storage = await open_any(lib, req)
    out = {"storage_class": f"{type(storage).__module__}.{type(storage).__name__}",
           "fields": await fields_of(lib, client, storage)}
    await learn(lib, client, storage, req["peers"])
    await record_states(lib, storage, req.get("states", []))
    await close_any(lib, client, storage)
    return out


async def resolve(lib, client, key):
    try:
        if is_telethon(lib):
            peer = await client.get_input_entity(key)
        else:
            peer = await client.resolve_peer(key)
        return {"ok": True, "peer": input_peer_json(peer)}
    except Exception as exc:
        return {"ok": False, "error": error_info(exc)}


async def op_read(req):
    lib = req["lib"]
    client, storage = await open_any(lib, req)
    if not is_telethon(lib):
        client.is_connected = True  # resolve_peer refuses a client that never started; it stays offline
    out = {"fields": await fields_of(lib, client, storage), "lookups": {}}
    for key in req.get("ids", []) + req.get("usernames", []):
        out["lookups"][str(key)] = await resolve(lib, client, key)
    out["states"] = await read_states(lib, storage)
    if not is_telethon(lib):
        client.is_connected = False
    await close_any(lib, client, storage)
    return out


async def op_try_open(req):
    from session_vault import LeaseHeld

    lib = req["lib"]
    try:
        client, storage = await open_any(lib, req)
    except LeaseHeld as exc:
        return {"opened": False, "holder": exc.holder, "message": str(exc), "type": type(exc).__name__}
    await close_any(lib, client, storage)
    return {"opened": True}


def touch(path):
    with open(path, "w") as fh:
        fh.write(str(time.monotonic()))


async def wait_for_file(path, timeout):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        await asyncio.sleep(0.02)
    return time.monotonic()


async def op_hold(req):
    lib = req["lib"]
    client, storage = await open_any(lib, req)
    touch(os.path.join(req["dir"], "ready"))
    await wait_for_file(os.path.join(req["dir"], "release"), 120)
    await close_any(lib, client, storage)
    return {"closed": True}


async def op_lease_lost(req):
    from session_vault import LeaseLost

    lib = req["lib"]
    client, storage = await open_any(lib, req)
    touch(os.path.join(req["dir"], "ready"))
    seen = await wait_for_file(os.path.join(req["dir"], "broken"), 120)
    out = {}
    if req["mode"] == "write":
        try:
            await learn(lib, client, storage, req["peers"])
            if is_telethon(lib):
                storage.save()
            else:
                await storage.save()
            out["raised"] = None
        except LeaseLost as exc:
            out["raised"] = type(exc).__name__
    else:
        deadline = time.monotonic() + 60
        out["raised"] = None
        while time.monotonic() < deadline:
            try:
                if is_telethon(lib):
                    storage.get_update_states()
                else:
                    await storage.dc_id()
            except LeaseLost as exc:
                out["raised"] = type(exc).__name__
                break
            await asyncio.sleep(0.05)
        out["seconds_after_break"] = time.monotonic() - seen
        out["renew_interval"] = storage.core.renew_interval
    if is_telethon(lib):
        storage.close()
    else:
        await storage.close()
    return out


async def op_churn(req):
    lib = req["lib"]
    client, storage = await open_any(lib, req)
    progress = open(os.path.join(req["dir"], "progress"), "a", buffering=1)
    next_id = req["first_id"]
    while True:
        peer = {"kind": "user", "id": next_id, "access_hash": next_id * 7, "title": "churn"}
        await learn(lib, client, storage, [peer])
        progress.write(f"{next_id} {time.time()}\n")
        next_id += 1
        await asyncio.sleep(0.01)


if __name__ == "__main__":
    sys.exit(_common.run({"write": op_write, "read": op_read, "try_open": op_try_open, "hold": op_hold,
                          "lease_lost": op_lease_lost, "churn": op_churn}))
