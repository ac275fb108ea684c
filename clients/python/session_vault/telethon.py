# SPDX-License-Identifier: Apache-2.0
"""``VaultSession`` for Telethon 1.x: a ``MemorySession`` whose key, DC, entities (as Telethon's
own SQLite session keeps them: marked id, access hash, username, phone, name) and update states
live in session-vault.

    client = TelegramClient(VaultSession("bot"), api_id, api_hash)

Telethon has no open hook, so the lease is taken (and the session, peers and update states
loaded) when the ``VaultSession`` is constructed; ``close()`` (called by ``client.disconnect()``)
flushes and releases it.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any, Dict, Iterable, List, Optional, Tuple

from telethon import utils as _utils
from telethon.crypto import AuthKey
from telethon.sessions.memory import MemorySession
from telethon.tl import types as _types

from ._core import SessionCore, StateRow
from .errors import SessionVaultError, UnsupportedLibrary

log = logging.getLogger("session_vault")

_UTC = datetime.timezone.utc


def _check_library() -> None:
    import telethon

    version = getattr(telethon, "__version__", "")
    if version.split(".")[0] != "1" or not callable(getattr(MemorySession, "process_entities", None)):
        raise UnsupportedLibrary(f"session_vault.telethon supports Telethon 1.x; the installed Telethon is {version or 'unknown'}")


def _peer_type(e: Any) -> Optional[str]:
    if isinstance(e, _types.User):
        return "bot" if e.bot else "user"
    if isinstance(e, (_types.Chat, _types.ChatForbidden)):
        return "group"
    if isinstance(e, _types.Channel):
        if getattr(e, "monoforum", None):
            return "direct"
        if e.broadcast:
            return "channel"
        return "forum" if getattr(e, "forum", None) else "supergroup"
    if isinstance(e, _types.ChannelForbidden):
        return "channel" if e.broadcast else "supergroup"
    return None


def _state(row: StateRow) -> Any:
    return _types.updates.State(pts=row.pts or 0, qts=row.qts or 0,
                                date=datetime.datetime.fromtimestamp(row.date or 0, tz=_UTC),
                                seq=row.seq or 0, unread_count=0)


class VaultSession(MemorySession):
    """A Telethon session kept in session-vault (see the module docstring)."""

    def __init__(self, name: str, url: Optional[str] = None, token: Optional[str] = None,
                 exclusive: bool = True, *, ttl_seconds: int = 15, flush_interval: float = 5.0,
                 holder: Optional[str] = None, wait_seconds: int = 0, cacert: Optional[str] = None) -> None:
        _check_library()
        super().__init__()
        self.name = name
        self._types: Dict[int, Optional[str]] = {}
        self._core = SessionCore(name, url, token, exclusive, "telethon", "telethon",
                                 ttl_seconds=ttl_seconds, flush_interval=flush_interval, holder=holder,
                                 wait_seconds=wait_seconds, cacert=cacert)
        self._core.open()
        f = self._core.fields
        self._dc_id = f.get("dc_id") or 0
        self._server_address = f.get("server_address")
        self._port = f.get("port")
        self._auth_key = AuthKey(data=f["auth_key"]) if f.get("auth_key") else None

    def __repr__(self) -> str:
        return f"<session_vault.telethon.VaultSession {self.name!r}>"

    @property
    def core(self) -> SessionCore:
        return self._core

    # -- DC and key: written at once ---------------------------------------------------------------

    def set_dc(self, dc_id: int, server_address: str, port: int) -> None:
        self._core.check()
        if (dc_id, server_address, port) != (self._dc_id, self._server_address, self._port):
            self._core.set_dc_and_key(dc_id, None, {"server_address": server_address, "port": port})
        super().set_dc(dc_id, server_address, port)

    @MemorySession.auth_key.setter  # type: ignore[attr-defined, untyped-decorator]
    def auth_key(self, value: Any) -> None:
        key = getattr(value, "key", None) if value is not None else None
        if key:
            self._core.set_dc_and_key(self._dc_id, bytes(key))
        self._auth_key = value

    def clone(self, to_instance: Any = None) -> Any:
        # Telethon clones the session for CDN / other-DC connections and then moves the clone to
        # another DC: that copy must never write to the vault.
        cloned = to_instance or MemorySession()
        cloned.set_dc(self._dc_id, self._server_address, self._port)
        return cloned

    # -- lifecycle ---------------------------------------------------------------------------------

    def save(self) -> None:
        if self._core._closed:
            return
        self._core.check()
        try:
            self._core.flush()
        except SessionVaultError as exc:
            if self._core.lost is not None:
                raise
            log.warning("session_vault: save() of %r could not reach the vault (%s); changes stay queued", self.name, exc)

    def close(self) -> None:
        self._core.close()

    def delete(self) -> None:
        log.warning("session_vault: delete() of %r leaves the vaulted session in place (revoke it in the vault)", self.name)
        self._core.close()

    # -- entities ----------------------------------------------------------------------------------

    def _entity_to_row(self, e: Any) -> Any:
        row = super()._entity_to_row(e)
        if row is not None:
            self._types[row[0]] = _peer_type(e)
        return row

    def process_entities(self, tlo: Any) -> None:
        self._core.check()
        for peer_id, access_hash, username, phone, name in self._entities_to_rows(tlo):
            kind = self._types.pop(peer_id, None)
            if peer_id == 0:
                # Telethon's own convention: the row with id 0 carries our user id as its hash.
                if access_hash:
                    self._core.set_field("user_id", access_hash)
                continue
            extra: Dict[str, Any] = {}
            if username:
                try:
                    others = [u for u in self._core.peer(peer_id).usernames if u.lower() != username]
                except KeyError:
                    others = []
                extra["usernames"] = [username] + others
            if kind is not None:
                extra["type"] = kind
            self._core.upsert_peer(peer_id, access_hash=access_hash, phone_number=phone, name=name, **extra)

    def _row(self, p: Any) -> Tuple[int, int]:
        return p.id, p.access_hash

    def get_entity_rows_by_phone(self, phone: Any) -> Optional[Tuple[int, int]]:
        self._core.check()
        try:
            return self._row(self._core.peer_by_phone(phone))
        except KeyError:
            return None

    def get_entity_rows_by_username(self, username: Any) -> Optional[Tuple[int, int]]:
        self._core.check()
        try:
            return self._row(self._core.peer_by_username(username))
        except KeyError:
            return None

    def get_entity_rows_by_name(self, name: Any) -> Optional[Tuple[int, int]]:
        self._core.check()
        for p in list(self._core.peers.values()):
            if p.name == name:
                return self._row(p)
        return None

    def get_entity_rows_by_id(self, id: Any, exact: bool = True) -> Optional[Tuple[int, int]]:
        self._core.check()
        if id == 0:
            user_id = self._core.fields.get("user_id")
            return (0, user_id) if user_id else None
        candidates: Iterable[int] = (id,) if exact else (
            _utils.get_peer_id(_types.PeerUser(id)), _utils.get_peer_id(_types.PeerChat(id)),
            _utils.get_peer_id(_types.PeerChannel(id)))
        for candidate in candidates:
            try:
                return self._row(self._core.peer(candidate))
            except KeyError:
                continue
        return None

    # -- update state ------------------------------------------------------------------------------

    def get_update_state(self, entity_id: int) -> Any:
        self._core.check()
        row = self._core.states.get(entity_id)
        return _state(row) if row is not None else None

    def set_update_state(self, entity_id: int, state: Any) -> None:
        self._core.check()
        date = state.date
        if isinstance(date, datetime.datetime):
            date = int(date.timestamp())
        self._core.set_state(StateRow(entity_id, state.pts, state.qts, date, state.seq))

    def get_update_states(self) -> List[Tuple[int, Any]]:
        self._core.check()
        return [(r.id, _state(r)) for r in self._core.state_rows()]


__all__ = ["VaultSession"]
