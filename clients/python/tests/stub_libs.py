# SPDX-License-Identifier: Apache-2.0
"""Library-shaped stand-ins (just the storage base classes and raw InputPeer types) so the engine's
flavour handling can be unit-tested without the real libraries; the interop suite runs the real
ones."""

import sys
import types
from abc import ABC, abstractmethod
from dataclasses import dataclass

from session_vault._pyrogram_family import build


@dataclass
class InputPeerUser:
    user_id: int
    access_hash: int


@dataclass
class InputPeerChat:
    chat_id: int


@dataclass
class InputPeerChannel:
    channel_id: int
    access_hash: int


@dataclass(frozen=True)
class UpdateState:
    id: int
    pts: object
    qts: object
    date: object
    seq: object


RAW = types.SimpleNamespace(types=types.SimpleNamespace(
    InputPeerUser=InputPeerUser, InputPeerChat=InputPeerChat, InputPeerChannel=InputPeerChannel))


class PyrogramStorage:  # Pyrogram 2.0.106's shape
    def __init__(self, name):
        self.name = name

    async def update_peers(self, peers):
        raise NotImplementedError

    async def api_id(self, value=object):
        raise NotImplementedError


class PyroforkStorage(PyrogramStorage):
    async def update_usernames(self, usernames):
        raise NotImplementedError

    async def update_state(self, value=object):
        raise NotImplementedError


def _abstract(name):
    async def method(self, *args, **kwargs):
        raise NotImplementedError

    method.__name__ = name
    return abstractmethod(method)


KURIGRAM_ABSTRACT = ["open", "save", "close", "delete", "update_peers", "update_usernames", "get_update_states",
                     "set_update_state", "delete_update_state", "get_peer_by_id", "get_peer_by_username",
                     "get_peer_by_phone_number", "dc_id", "api_id", "server_address", "port", "test_mode",
                     "auth_key", "date", "user_id", "is_bot"]
KurigramStorage = type("Storage", (ABC,), {n: _abstract(n) for n in KURIGRAM_ABSTRACT})


def make(flavour, monkeypatch, version=None):
    """The VaultStorage class session_vault.pyrogram would build for this library shape."""
    base = {"pyrogram": PyrogramStorage, "pyrofork": PyroforkStorage, "kurigram": KurigramStorage}[flavour]
    lib = types.ModuleType("pyrogram")
    lib.__version__ = version or {"pyrogram": "2.0.106", "pyrofork": "2.3.69", "kurigram": "2.2.26"}[flavour]
    lib.raw = RAW
    storage = types.ModuleType("pyrogram.storage")
    storage.UpdateState = UpdateState
    storage.Storage = base
    sqlite = types.ModuleType("pyrogram.storage.sqlite_storage")
    sqlite.PROD = {2: "149.154.167.51", 4: "149.154.167.91"}
    sqlite.TEST = {2: "149.154.167.40"}
    monkeypatch.setitem(sys.modules, "pyrogram", lib)
    monkeypatch.setitem(sys.modules, "pyrogram.storage", storage)
    monkeypatch.setitem(sys.modules, "pyrogram.storage.sqlite_storage", sqlite)
    return build("pyrogram", lib, base)
