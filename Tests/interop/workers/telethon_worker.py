# SPDX-License-Identifier: Apache-2.0
"""Worker for Telethon (1.45 current, 1.42 legacy writer). See pyrogram_worker.py for the protocol.

* ``make``: ``SQLiteSession`` (never a connected client): ``set_dc``, ``auth_key``,
  ``process_entities()`` with raw TL users/chats, the own-user pseudo entity exactly as
  ``TelegramClient._save_states_and_entities`` writes it (``InputPeerUser(0, self_id)``), an
  update state, ``save()``; the string is ``StringSession.save(session)``.
* ``load``: ``StringSession(string)`` or ``SQLiteSession(copy)``; fields, the own user id the
  way ``TelegramClient.connect`` finds it (``get_input_entity(0).access_hash``) and
  ``get_input_entity`` by marked id, username and phone.
"""

import datetime
import importlib.metadata
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
from _common import build_tl, error_info, hexs, input_peer_json  # noqa: E402

VERSIONS = {"telethon": "1.45.0", "telethon-1.42": "1.42.0"}
# Test-DC addresses (docs/formats.md, "Data centers"): Telethon has no test flag, only these
# addresses imply it.
TEST_ADDRESSES = {"149.154.175.10", "149.154.167.40", "149.154.175.117"}


def load_library(lib):
    installed = importlib.metadata.version("Telethon")
    if installed != VERSIONS[lib]:
        raise RuntimeError(f"{lib}: expected Telethon=={VERSIONS[lib]}, this venv has {installed}")
    import telethon

    return telethon


def build_entities(types, peers):
    users, chats, notes = [], [], []
    photo = types.ChatPhotoEmpty()
    for p in peers:
        kind = p["kind"]
        usernames = None
        if p.get("usernames") and not hasattr(types, "Username"):
            notes.append({"peer": p["id"], "kind": kind, "note": "no Username type (collectible usernames) in this layer"})
        elif p.get("usernames"):
            usernames = [build_tl(types.Username, username=u, active=True)[0] for u in p["usernames"]]
        if kind in ("user", "bot"):
            obj, dropped = build_tl(
                types.User, id=p["id"], access_hash=p["access_hash"], first_name=p.get("title", "x"),
                username=p.get("username"), usernames=usernames, phone=p.get("phone"),
                bot=(kind == "bot") or None, is_self=p.get("is_self") or None,
            )
            users.append(obj)
        elif kind == "group":
            obj, dropped = build_tl(
                types.Chat, id=p["id"], title=p.get("title", "x"), photo=photo,
                participants_count=1, date=None, version=1,
            )
            chats.append(obj)
        elif kind == "community":
            notes.append({"peer": p["id"], "kind": kind, "note": "Telethon has no Community type"})
            continue
        else:
            obj, dropped = build_tl(
                types.Channel, id=p["id"], access_hash=p["access_hash"], title=p.get("title", "x"),
                photo=photo, date=None, broadcast=(kind == "channel") or None,
                megagroup=(kind in ("supergroup", "forum")) or None, forum=(kind == "forum") or None,
                monoforum=(kind == "direct") or None, username=p.get("username"), usernames=usernames,
            )
            chats.append(obj)
        if dropped:
            notes.append({"peer": p["id"], "kind": kind, "dropped_arguments": dropped})
    return users, chats, notes


def read_fields(session):
    fields = {
        "dc_id": session.dc_id,
        "server_address": session.server_address,
        "port": session.port,
        "auth_key_hex": hexs(session.auth_key),
        "takeout_id": session.takeout_id,
    }
    fields["test_mode_implied"] = (session.server_address in TEST_ADDRESSES) if session.server_address else None
    try:
        # TelegramClient.connect(): "self_entity = session.get_input_entity(0); self_id = .access_hash"
        fields["user_id"] = session.get_input_entity(0).access_hash
    except Exception as exc:
        fields["user_id"] = None
        fields["user_id_error"] = error_info(exc)
    return fields


def op_make(req):
    lib = req["lib"]
    telethon = load_library(lib)
    from telethon import types
    from telethon.crypto import AuthKey
    from telethon.sessions import SQLiteSession, StringSession

    fields = req["fields"]
    key = bytes.fromhex(fields["auth_key_hex"]) if fields.get("auth_key_hex") else os.urandom(256)
    os.makedirs(req["dir"], exist_ok=True)
    base = os.path.join(req["dir"], req["name"])
    session = SQLiteSession(base)  # Telethon appends ".session"
    session.set_dc(fields["dc_id"], fields["server_address"], fields["port"])
    session.auth_key = AuthKey(key)
    users, chats, notes = build_entities(types, req.get("peers", []))
    session.process_entities(types.contacts.ResolvedPeer(peer=types.PeerUser(0), chats=chats, users=users))
    if fields.get("user_id") is not None:
        # Exactly what TelegramClient._save_states_and_entities stores for the own account.
        session.process_entities(
            types.contacts.ResolvedPeer(None, [types.InputPeerUser(0, fields["user_id"])], [])
        )
    session.set_update_state(
        0, types.updates.State(pts=11, qts=0, date=datetime.datetime.now(tz=datetime.timezone.utc),
                               seq=1, unread_count=0)
    )
    session.save()
    out = {"library_version": telethon.__version__, "storage_class": type(session).__name__,
           "peer_notes": notes, "fields": read_fields(session)}
    out["string"] = StringSession.save(session)
    session.close()
    out["file"] = base + ".session"
    out["auth_key_hex"] = key.hex()
    return out


def op_load(req):
    lib = req["lib"]
    telethon = load_library(lib)
    from telethon.sessions import SQLiteSession, StringSession

    scratch = req.get("dir") or tempfile.mkdtemp(prefix="interop-load-")
    os.makedirs(scratch, exist_ok=True)
    results = []
    for item in req["items"]:
        res = {"key": item["key"]}
        stage = "StringSession()" if item["kind"] == "string" else "SQLiteSession()"
        session = None
        try:
            if item["kind"] == "string":
                session = StringSession(item["value"])
            else:
                workdir = tempfile.mkdtemp(dir=scratch)
                path = _common.copy_for_reading(item["path"], workdir, "interop")
                res["copy"] = path
                session = SQLiteSession(path[: -len(".session")])
            res["storage_class"] = type(session).__name__
            stage = "read fields"
            res["fields"] = read_fields(session)
            stage = "lookups"
            lookups = {}
            for how, values in (("id", item.get("ids", [])), ("username", item.get("usernames", [])),
                                ("phone", item.get("phones", []))):
                for v in values:
                    try:
                        lookups[f"{how}:{v}"] = {"ok": True, "peer": input_peer_json(session.get_input_entity(v))}
                    except Exception as exc:
                        lookups[f"{how}:{v}"] = {"ok": False, "error": error_info(exc)}
            res["lookups"] = lookups
            if item.get("export"):
                res["exported_string"] = StringSession.save(session)
            res["ok"] = True
        except Exception as exc:
            res["ok"] = False
            res["stage"] = stage
            res["error"] = error_info(exc)
        finally:
            if session is not None:
                try:
                    session.close()
                except Exception as exc:
                    res["close_error"] = error_info(exc)
        results.append(res)
    return {"library_version": telethon.__version__, "results": results}


async def op_netcheck(req):
    load_library(req["lib"])
    from telethon import TelegramClient
    from telethon.sessions import StringSession

    async def connect():
        client = TelegramClient(StringSession(), 1, "0123456789abcdef0123456789abcdef",
                                connection_retries=0, retry_delay=0, timeout=3)
        try:
            await client.connect()
        finally:
            await client.disconnect()

    return await _common.netcheck(("TelegramClient.connect()", connect))


if __name__ == "__main__":
    sys.exit(_common.run({"make": op_make, "load": op_load, "netcheck": op_netcheck}))
