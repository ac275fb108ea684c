# SPDX-License-Identifier: Apache-2.0
"""The storage engine for the Pyrogram family (Pyrogram 2.0, Kurigram, Pyrofork) and Hydrogram.

``PyroEngine`` holds every method; ``session_vault.pyrogram`` and ``session_vault.hydrogram`` mix it
into the installed library's own storage base class (Kurigram and Hydrogram ignore an engine that
is not an instance of theirs). Where the flavours differ:

* ``update_peers``: 5-tuples ``(id, access_hash, type, username, phone)`` in Pyrogram, Pyrofork and
  Hydrogram; 4-tuples ``(id, access_hash, type, phone)`` in Kurigram, whose usernames come through
  ``update_usernames([(id, [names])])``. Pyrofork's ``update_usernames`` takes ``(id, name)`` pairs.
* update state: Kurigram's ``get_update_states``/``set_update_state`` (merging, like its SQL
  COALESCE)/``delete_update_state``; Pyrofork's single ``update_state`` (read all, replace one,
  delete by id) and ``remove_state``. Ids are stored as the library gives them.
* ``server_address``/``port`` exist in Kurigram only.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import logging
import time
import types
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ._core import Peer, SessionCore, StateRow, channel_id, iter_ids, split_type
from .errors import SessionVaultError, UnsupportedLibrary

log = logging.getLogger("session_vault")

_UNSET: Any = object  # the libraries' own "no value passed" sentinel is the class ``object``

FLAVOURS = {
    # flavour: (top-level module, distribution, supported major version)
    "pyrogram": ("pyrogram", "pyrogram", "2"),
    "kurigram": ("pyrogram", "kurigram", "2"),
    "pyrofork": ("pyrogram", "pyrofork", "2"),
    "hydrogram": ("hydrogram", "hydrogram", "0"),
}


def distribution_of(module_name: str) -> Tuple[Optional[str], Optional[str]]:
    """(distribution name, version) of the installed package that provides ``module_name``."""
    try:
        names = importlib.metadata.packages_distributions().get(module_name) or []
    except Exception:  # pragma: no cover - broken metadata
        names = []
    for name in names:
        try:
            return name, importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None, None


def detect_flavour(module_name: str, base: type, version: Optional[str], dist: Optional[str]) -> Tuple[Optional[str], str]:
    """Which flavour the installed library is, from its storage base class's shape, its
    distribution name and its version; ``(None, reason)`` for anything else."""

    def has(n: str) -> bool:
        return callable(getattr(base, n, None))

    if module_name == "hydrogram":
        shape = "hydrogram" if has("api_id") and has("update_peers") else None
    elif has("get_update_states") and has("set_update_state") and has("delete_update_state") \
            and has("update_usernames") and has("server_address") and has("port"):
        shape = "kurigram"
    elif has("update_state") and has("update_usernames"):
        shape = "pyrofork"
    elif has("api_id") and has("update_peers") and not has("update_usernames") and not has("update_state"):
        shape = "pyrogram"
    else:
        shape = None
    described = f"{dist or module_name} {version or '(unknown version)'}"
    supported = ("Pyrogram 2.0.x, Kurigram 2.x and Pyrofork 2.x" if module_name == "pyrogram" else "Hydrogram 0.x")
    if shape is None:
        return None, (f"session_vault.{module_name} does not know the installed {described}: its storage "
                      f"class matches none of {supported}")
    _, expected_dist, major = FLAVOURS[shape]
    if dist is not None and dist.lower() != expected_dist:
        return None, (f"session_vault.{module_name} does not know the installed {described}: its storage class "
                      f"looks like {shape} but the distribution is {dist} (supported: {supported})")
    if version is None or version.split(".")[0] != major:
        return None, (f"session_vault.{module_name} does not support the installed {described} "
                      f"(supported: {supported})")
    return shape, f"{described} ({shape})"


def marked_to_input_peer(raw: Any, p: Peer) -> Any:
    kind = split_type(p.id)
    if kind == "user":
        return raw.types.InputPeerUser(user_id=p.id, access_hash=p.access_hash)
    if kind == "chat":
        return raw.types.InputPeerChat(chat_id=-p.id)
    return raw.types.InputPeerChannel(channel_id=channel_id(p.id), access_hash=p.access_hash)


class PyroEngine:
    """Mixed into the library's storage base class by session_vault.pyrogram / .hydrogram."""

    _lib: Any = None          # the library's top-level module (set by the concrete class)
    _module_name = "pyrogram"
    _flavour: Optional[str] = None
    _flavour_reason = ""

    def __init__(self, name: str, url: Optional[str] = None, token: Optional[str] = None,
                 exclusive: bool = True, *, ttl_seconds: int = 15, flush_interval: float = 5.0,
                 holder: Optional[str] = None, wait_seconds: int = 0, cacert: Optional[str] = None) -> None:
        if self._flavour is None:
            raise UnsupportedLibrary(self._flavour_reason)
        self.name = name
        self._core = SessionCore(name, url, token, exclusive, "pyrogram", self._flavour,
                                 ttl_seconds=ttl_seconds, flush_interval=flush_interval, holder=holder,
                                 wait_seconds=wait_seconds, cacert=cacert)

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.VaultStorage {self.name!r} ({self._flavour})>"

    @property
    def core(self) -> SessionCore:
        """The shared engine (lease, cache, queue): for tests and diagnostics."""
        return self._core

    # -- lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> None:
        await asyncio.to_thread(self._core.open)
        fields = self._core.fields
        fields.setdefault("date", 0)
        if self._flavour == "kurigram" and (not fields.get("server_address") or not fields.get("port")):
            fields["server_address"], fields["port"] = self._kurigram_address(
                bool(fields.get("test_mode")), int(fields.get("dc_id") or 2))

    def _kurigram_address(self, test_mode: bool, dc_id: int) -> Tuple[str, int]:
        """Kurigram's own data-centre table (the one its storage fills a session string from)."""
        tables = importlib.import_module(self._module_name + ".storage.sqlite_storage")
        table = tables.TEST if test_mode else tables.PROD
        if dc_id not in table:
            raise SessionVaultError(f"session {self.name!r}: DC {dc_id} is not in Kurigram's data-centre table")
        return table[dc_id], (80 if test_mode else 443)

    async def save(self) -> None:
        self._core.check()
        self._core.fields["date"] = int(time.time())
        try:
            await asyncio.to_thread(self._core.flush)
        except SessionVaultError as exc:
            if self._core.lost is not None:
                raise
            log.warning("session_vault: save() of %r could not reach the vault (%s); changes stay queued", self.name, exc)

    async def close(self) -> None:
        await asyncio.to_thread(self._core.close)

    async def delete(self) -> None:
        # Logging out must not destroy the vaulted copy: revoking is the vault operator's decision.
        log.warning("session_vault: delete() of %r leaves the vaulted session in place (revoke it in the vault)", self.name)
        await self.close()

    # -- peers -------------------------------------------------------------------------------------

    async def update_peers(self, peers: Iterable[Tuple[Any, ...]]) -> None:
        self._core.check()
        for row in peers:
            if len(row) == 4:  # Kurigram: usernames come separately
                peer_id, access_hash, peer_type, phone = row
                self._core.upsert_peer(peer_id, access_hash=access_hash, type=peer_type, phone_number=phone)
            else:
                peer_id, access_hash, peer_type, username, phone = row[:5]
                self._core.upsert_peer(peer_id, access_hash=access_hash, type=peer_type,
                                       usernames=[username] if username else [], phone_number=phone)

    async def update_usernames(self, usernames: Iterable[Tuple[Any, Any]]) -> None:
        self._core.check()
        grouped: Dict[int, List[str]] = {}
        replace = False
        for peer_id, names in usernames:
            if isinstance(names, (list, tuple)):  # Kurigram: (id, [names]) replaces the list
                replace = True
                grouped.setdefault(peer_id, []).extend(n for n in names if n)
            elif names:  # Pyrofork: (id, name) pairs, on top of the peer's primary username
                grouped.setdefault(peer_id, []).append(names)
        for peer_id, names in grouped.items():
            try:
                current = self._core.peer(peer_id).usernames
            except KeyError:
                current = []
            merged = names if replace else (current[:1] + names)
            self._core.upsert_peer(peer_id, usernames=merged)

    async def get_peer_by_id(self, peer_id: Any) -> Any:
        self._core.check()
        return marked_to_input_peer(self._lib.raw, self._core.peer(peer_id))

    async def get_peer_by_username(self, username: str) -> Any:
        self._core.check()
        return marked_to_input_peer(self._lib.raw, self._core.peer_by_username(username))

    async def get_peer_by_phone_number(self, phone_number: str) -> Any:
        self._core.check()
        return marked_to_input_peer(self._lib.raw, self._core.peer_by_phone(phone_number))

    # -- update state: Kurigram --------------------------------------------------------------------

    def _update_state_class(self) -> Any:
        return importlib.import_module(self._module_name + ".storage").UpdateState

    async def get_update_states(self, ids: Any = None) -> List[Any]:
        self._core.check()
        rows = self._core.state_rows()
        if ids is not None:
            wanted = set(iter_ids(ids))
            rows = [r for r in rows if r.id in wanted]
        rows.sort(key=lambda r: (r.date is not None, r.date or 0))
        cls = self._update_state_class()
        return [cls(r.id, r.pts, r.qts, r.date, r.seq) for r in rows]

    async def set_update_state(self, update_state: Any) -> None:
        self._core.check()
        states = [update_state] if hasattr(update_state, "pts") else list(update_state)
        for s in states:
            old = self._core.states.get(s.id)

            def pick(new: Any, attr: str) -> Any:
                return new if new is not None else (getattr(old, attr) if old is not None else None)

            self._core.set_state(StateRow(s.id, pick(s.pts, "pts"), pick(s.qts, "qts"), pick(s.date, "date"),
                                          pick(s.seq, "seq")))

    async def delete_update_state(self, state_id: Any) -> None:
        self._core.check()
        for i in iter_ids(state_id):
            self._core.delete_state(i)

    # -- update state: Pyrofork --------------------------------------------------------------------

    async def update_state(self, value: Any = _UNSET) -> Any:
        self._core.check()
        if value is _UNSET:
            return [(r.id, r.pts, r.qts, r.date, r.seq) for r in self._core.state_rows()]
        if isinstance(value, int):
            self._core.delete_state(value)
            return None
        state_id, pts, qts, date, seq = value
        self._core.set_state(StateRow(state_id, pts, qts, date, seq))
        return None

    async def remove_state(self, chat_id: int) -> None:
        self._core.check()
        self._core.delete_state(chat_id)

    # -- session fields ----------------------------------------------------------------------------

    def _get(self, name: str) -> Any:
        self._core.check()
        return self._core.fields.get(name)

    async def dc_id(self, value: Any = _UNSET) -> Any:
        if value is _UNSET:
            return self._get("dc_id")
        await asyncio.to_thread(self._core.set_dc_and_key, value, None)
        return None

    async def auth_key(self, value: Any = _UNSET) -> Any:
        if value is _UNSET:
            return self._get("auth_key")
        if value is None:
            self._core.check()
            self._core.fields["auth_key"] = None
            return None
        await asyncio.to_thread(self._core.set_dc_and_key, None, bytes(value))
        return None

    async def _field(self, name: str, value: Any, convert: Any = None) -> Any:
        if value is _UNSET:
            got = self._get(name)
            return convert(got) if (convert is not None and got is not None) else got
        self._core.check()
        self._core.set_field(name, value)
        return None

    async def api_id(self, value: Any = _UNSET) -> Any:
        return await self._field("api_id", value)

    async def test_mode(self, value: Any = _UNSET) -> Any:
        return await self._field("test_mode", None if value is None else (value if value is _UNSET else bool(value)), bool)

    async def user_id(self, value: Any = _UNSET) -> Any:
        return await self._field("user_id", value)

    async def is_bot(self, value: Any = _UNSET) -> Any:
        return await self._field("is_bot", None if value is None else (value if value is _UNSET else bool(value)), bool)

    async def date(self, value: Any = _UNSET) -> Any:
        if value is _UNSET:
            return self._get("date")
        self._core.check()
        self._core.fields["date"] = value  # the vault keeps no date: local only
        return None

    async def server_address(self, value: Any = _UNSET) -> Any:
        return await self._field("server_address", value)

    async def port(self, value: Any = _UNSET) -> Any:
        return await self._field("port", value)


def build(module_name: str, lib: Any, base: type) -> type:
    """The VaultStorage class for the installed library."""
    dist, version = distribution_of(module_name)
    version = version or getattr(lib, "__version__", None)
    flavour, reason = detect_flavour(module_name, base, version, dist)

    namespace = {"_lib": lib, "_module_name": module_name, "_flavour": flavour, "_flavour_reason": reason,
                 "__module__": f"session_vault.{module_name}", "__qualname__": "VaultStorage",
                 "__doc__": f"Keeps a {module_name} session, its peers and update state in session-vault ({reason})."}
    return types.new_class("VaultStorage", (PyroEngine, base), exec_body=lambda ns: ns.update(namespace))
