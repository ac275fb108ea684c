# SPDX-License-Identifier: Apache-2.0
"""What every engine shares: the lease, the local cache of one vaulted session (fields, peers,
update states), the write-behind queue and the background thread that flushes it and renews the
lease. Library-agnostic and synchronous; the library adapters translate shapes.

Threading: the library calls the cache from its own thread (the event loop); the background thread
only reads the dirty sets and the cache under ``self._lock``. No HTTP request is made on the
per-update path: ``upsert_peers``/``set_state`` only touch memory.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import os
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from ._http import VaultHTTP, encode_json
from .errors import LeaseLost, SessionVaultError

log = logging.getLogger("session_vault")

PYROGRAM_FORMAT = ">BI?256sQ?"
MAX_BATCH = 1000
# The vault refuses a JSON body over 256 KiB (413): a batch also stops before its body would reach
# this (1000 peers with long non-Latin names are well over it).
MAX_BODY = 256 * 1024 - 1024
NAME_BYTES = 256  # the vault's limit on a peer's name, in UTF-8 bytes
PAGE = 10000
USERNAME_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
PHONE_RE = re.compile(r"^[0-9]{1,20}$")
PEER_TYPES = {"user", "bot", "group", "channel", "supergroup", "forum", "direct", "community"}
INT64 = (-(1 << 63), (1 << 63) - 1)


def decode_pyrogram_string(s: str) -> Dict[str, Any]:
    raw = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    if len(raw) != struct.calcsize(PYROGRAM_FORMAT):
        raise SessionVaultError(f"the vault exported a Pyrogram string of unexpected length {len(s)}")
    dc_id, api_id, test_mode, key, user_id, is_bot = struct.unpack(PYROGRAM_FORMAT, raw)
    return {"dc_id": dc_id, "api_id": api_id or None, "test_mode": test_mode, "auth_key": key,
            "user_id": user_id or None, "is_bot": is_bot}


def decode_telethon_string(s: str) -> Dict[str, Any]:
    if not s.startswith("1"):
        raise SessionVaultError("the vault exported a Telethon string of an unknown version")
    raw = base64.urlsafe_b64decode(s[1:] + "=" * (-len(s[1:]) % 4))
    if len(raw) == 263:
        dc_id, ip, port, key = struct.unpack(">B4sH256s", raw)
    elif len(raw) == 275:
        dc_id, ip, port, key = struct.unpack(">B16sH256s", raw)
    else:
        raise SessionVaultError(f"the vault exported a Telethon string of unexpected length {len(s)}")
    return {"dc_id": dc_id, "server_address": ipaddress.ip_address(ip).compressed, "port": port,
            "auth_key": key}


@dataclass
class Peer:
    id: int
    access_hash: int = 0
    type: Optional[str] = None
    usernames: List[str] = field(default_factory=list)
    phone_number: Optional[str] = None
    name: Optional[str] = None

    @classmethod
    def from_json(cls, item: Dict[str, Any]) -> "Peer":
        return cls(int(item["id"]), int(item.get("access_hash") or 0), item.get("type"),
                   [str(u) for u in item.get("usernames") or []], item.get("phone_number"), item.get("name"))

    def to_json(self) -> Dict[str, Any]:
        """The vault's peer shape; values the vault would refuse are left out rather than failing
        the whole batch."""
        usernames: List[str] = []
        for u in self.usernames:
            if USERNAME_RE.match(u) and u not in usernames:
                usernames.append(u)
        phone = self.phone_number if self.phone_number and PHONE_RE.match(self.phone_number) else None
        name = clip_utf8(self.name, NAME_BYTES) if self.name else None
        return {"id": self.id, "access_hash": self.access_hash,
                "type": self.type if self.type in PEER_TYPES else None,
                "usernames": usernames[:64], "phone_number": phone, "name": name}


@dataclass
class StateRow:
    id: int
    pts: Optional[int]
    qts: Optional[int]
    date: Optional[int]
    seq: Optional[int]

    def to_json(self) -> Dict[str, Any]:
        return {"id": self.id, "pts": self.pts, "qts": self.qts, "date": self.date, "seq": self.seq}


def clip_utf8(s: str, limit: int) -> str:
    """``s`` cut to at most ``limit`` UTF-8 bytes at a character boundary (a lone surrogate, which
    UTF-8 cannot carry, becomes ``?``)."""
    if s.isascii() and len(s) <= limit:
        return s
    return s.encode("utf-8", "replace")[:limit].decode("utf-8", "ignore")


def next_batch(key: str, items: List[Dict[str, Any]]) -> Tuple[int, bytes]:
    """The next request's body ``{key: items[:n]}`` and ``n``: at most MAX_BATCH items whose body
    stays within MAX_BODY (at least one). One encoding for an ordinary batch; an oversized one is
    cut in proportion to its size until it fits."""
    n = min(len(items), MAX_BATCH)
    while True:
        body = encode_json({key: items[:n]})
        if len(body) <= MAX_BODY or n == 1:
            return n, body
        n = max(1, min(n - 1, n * MAX_BODY // len(body)))


def default_holder(library: str) -> str:
    return f"{socket.gethostname()} pid {os.getpid()} {library}"[:256]


def valid_peer_id(peer_id: Any) -> bool:
    return isinstance(peer_id, int) and not isinstance(peer_id, bool) and peer_id != 0 \
        and INT64[0] <= peer_id <= INT64[1]


class SessionCore:
    """One vaulted session, cached locally, written behind, under a lease."""

    def __init__(self, name: str, url: Optional[str], token: Optional[str], exclusive: bool,
                 export_format: str, library: str, *, ttl_seconds: int = 15,
                 flush_interval: float = 5.0, holder: Optional[str] = None, wait_seconds: int = 0,
                 cacert: Optional[str] = None) -> None:
        if not isinstance(name, str) or not name:
            raise SessionVaultError("name must be the vaulted session's name")
        if not 5 <= int(ttl_seconds) <= 300:
            raise SessionVaultError("ttl_seconds must be between 5 and 300")
        if not 0 <= int(wait_seconds) <= 60:
            raise SessionVaultError("wait_seconds must be between 0 and 60")
        if flush_interval <= 0:
            raise SessionVaultError("flush_interval must be positive")
        self.name = name
        self.exclusive = exclusive
        self.export_format = export_format
        self.library = library
        self.ttl = int(ttl_seconds)
        self.flush_interval = float(flush_interval)
        self.holder = holder or default_holder(library)
        self.wait_seconds = int(wait_seconds)
        self.http = VaultHTTP(url, token, cacert)

        self.fields: Dict[str, Any] = {}
        self.peers: Dict[int, Peer] = {}
        self.by_username: Dict[str, int] = {}
        self.by_phone: Dict[str, int] = {}
        self.states: Dict[int, StateRow] = {}

        self._lock = threading.RLock()
        self._flush_lock = threading.Lock()
        self._dirty_peers: Set[int] = set()
        self._dirty_states: Set[int] = set()
        self._deleted_states: Set[int] = set()
        self._pending_fields: Dict[str, Any] = {}

        self.lease_id: Optional[str] = None
        self.epoch: Optional[int] = None
        self._lease_deadline = 0.0  # monotonic: after this, the lease may have expired
        self._next_renewal = 0.0
        self._lost: Optional[str] = None
        self._opened = False
        self._closed = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __repr__(self) -> str:
        return f"<SessionCore {self.name!r} at {self.http.base_url}>"

    @property
    def renew_interval(self) -> float:
        return self.ttl / 3.0

    # -- opening -----------------------------------------------------------------------------------

    def open(self) -> None:
        if self._opened:
            return
        if self.exclusive:
            started = time.monotonic()
            answer = self.http.acquire(self.name, self.holder, self.ttl, self.wait_seconds, self.export_format)
            self.lease_id = str(answer["lease_id"])
            self.epoch = answer.get("epoch")
            self._lease_deadline = started + float(answer.get("ttl_seconds") or self.ttl) - 1.0
            self._next_renewal = time.monotonic() + self.renew_interval
            string = str(answer["session_string"])
        else:
            string = self.http.export_string(self.name, self.export_format)
        try:
            decoded = (decode_telethon_string(string) if self.export_format == "telethon"
                       else decode_pyrogram_string(string))
            meta = self.http.metadata(self.name)
            fields: Dict[str, Any] = {k: meta.get(k) for k in
                                      ("dc_id", "api_id", "test_mode", "user_id", "is_bot", "server_address", "port")}
            fields.update({k: v for k, v in decoded.items() if v is not None or k not in fields})
            peers: Dict[int, Peer] = {}
            after: Optional[int] = None
            while True:
                items, after = self.http.peers_page(self.name, after, PAGE)
                for item in items:
                    p = Peer.from_json(item)
                    peers[p.id] = p
                if after is None or not items:
                    break
            states = {int(s["id"]): StateRow(int(s["id"]), s.get("pts"), s.get("qts"), s.get("date"), s.get("seq"))
                      for s in self.http.states(self.name)}
        except BaseException:
            self._release_quietly()
            raise
        with self._lock:
            self.fields = fields
            self.peers = peers
            self.by_username, self.by_phone = {}, {}
            for p in peers.values():
                self._index(p)
            self.states = states
            self._opened = True
        self._thread = threading.Thread(target=self._run, name=f"session-vault {self.name}", daemon=True)
        self._thread.start()

    # -- the lease ---------------------------------------------------------------------------------

    def check(self) -> None:
        """Raise LeaseLost once the engine knows the lease is gone (every call from then on)."""
        if (self._lost is None and self.lease_id is not None and not self._closed
                and time.monotonic() > self._lease_deadline):
            self._mark_lost("no successful renewal before the lease would have expired")
        if self._lost is not None:
            raise LeaseLost(f"session {self.name!r}: lease lost ({self._lost}); the engine stopped writing")

    @property
    def lost(self) -> Optional[str]:
        return self._lost

    def _mark_lost(self, reason: str) -> None:
        with self._lock:
            if self._lost is not None:
                return
            self._lost = reason
            unsaved = len(self._dirty_peers) + len(self._dirty_states) + len(self._deleted_states)
            self._dirty_peers.clear()
            self._dirty_states.clear()
            self._deleted_states.clear()
            self._pending_fields.clear()
        log.error("session_vault: lease on session %r lost (%s); the engine stopped writing (%d unsaved changes dropped)",
                  self.name, reason, unsaved)
        self._wake.set()

    def _renew(self) -> None:
        if self.lease_id is None or self._lost is not None:
            return
        try:
            answer = self.http.renew(self.name, self.lease_id)
        except LeaseLost as exc:
            self._mark_lost(f"the vault answered lease_lost: HTTP {exc.status}")
            return
        except SessionVaultError as exc:
            log.warning("session_vault: renewing the lease on %r failed (%s); retrying", self.name, exc)
            if time.monotonic() > self._lease_deadline:
                self._mark_lost("no successful renewal before the lease would have expired")
            self._next_renewal = time.monotonic() + 1.0
            return
        sent = time.monotonic()
        self._lease_deadline = sent + float(answer.get("ttl_seconds") or self.ttl) - 1.0
        self._next_renewal = sent + self.renew_interval

    def _release_quietly(self) -> None:
        if self.lease_id is None or self._lost is not None:
            return
        try:
            self.http.release(self.name, self.lease_id)
        except SessionVaultError as exc:
            log.warning("session_vault: releasing the lease on %r failed: %s", self.name, exc)

    # -- the cache ---------------------------------------------------------------------------------

    def _index(self, p: Peer) -> None:
        for u in p.usernames:
            self.by_username[u.lower()] = p.id
        if p.phone_number:
            self.by_phone[p.phone_number] = p.id

    def _unindex(self, p: Peer) -> None:
        for u in p.usernames:
            if self.by_username.get(u.lower()) == p.id:
                del self.by_username[u.lower()]
        if p.phone_number and self.by_phone.get(p.phone_number) == p.id:
            del self.by_phone[p.phone_number]

    _KEEP = object()

    def upsert_peer(self, peer_id: int, access_hash: Any = _KEEP, type: Any = _KEEP, usernames: Any = _KEEP,
                    phone_number: Any = _KEEP, name: Any = _KEEP) -> None:
        """Local upsert (memory only); what is not given keeps its cached value."""
        if not valid_peer_id(peer_id):
            return
        with self._lock:
            old = self.peers.get(peer_id)
            p = Peer(peer_id) if old is None else Peer(old.id, old.access_hash, old.type, list(old.usernames),
                                                      old.phone_number, old.name)
            if access_hash is not self._KEEP:
                p.access_hash = int(access_hash or 0)
            if type is not self._KEEP:
                p.type = type
            if usernames is not self._KEEP:
                p.usernames = [u for u in dict.fromkeys(usernames) if u]
            if phone_number is not self._KEEP:
                p.phone_number = str(phone_number) if phone_number else None
            if name is not self._KEEP:
                p.name = name
            if old is not None:
                if old == p:
                    return
                self._unindex(old)
            self.peers[peer_id] = p
            self._index(p)
            if self._lost is None:
                self._dirty_peers.add(peer_id)

    def peer(self, peer_id: Any) -> Peer:
        with self._lock:
            p = self.peers.get(peer_id) if valid_peer_id(peer_id) else None
        if p is None:
            raise KeyError(f"ID not found: {peer_id}")
        return p

    def peer_by_username(self, username: Any) -> Peer:
        with self._lock:
            pid = self.by_username.get(str(username).lower())
            p = self.peers.get(pid) if pid is not None else None
        if p is None:
            raise KeyError(f"Username not found: {username}")
        return p

    def peer_by_phone(self, phone: Any) -> Peer:
        with self._lock:
            pid = self.by_phone.get(str(phone))
            p = self.peers.get(pid) if pid is not None else None
        if p is None:
            raise KeyError(f"Phone number not found: {phone}")
        return p

    def set_state(self, row: StateRow) -> None:
        with self._lock:
            if self.states.get(row.id) == row:
                return
            self.states[row.id] = row
            if self._lost is None:
                self._deleted_states.discard(row.id)
                self._dirty_states.add(row.id)

    def delete_state(self, state_id: int) -> None:
        with self._lock:
            if self.states.pop(state_id, None) is None and state_id not in self._dirty_states:
                return
            if self._lost is None:
                self._dirty_states.discard(state_id)
                self._deleted_states.add(state_id)

    def state_rows(self) -> List[StateRow]:
        with self._lock:
            return list(self.states.values())

    # -- fields ------------------------------------------------------------------------------------

    def set_field(self, name: str, value: Any) -> None:
        """A session field other than the key/DC: cached now, written with the next batch."""
        with self._lock:
            if self.fields.get(name) == value:
                return
            self.fields[name] = value
            if value is not None and self._lost is None:
                self._pending_fields[name] = value

    def set_dc_and_key(self, dc_id: Optional[int], key: Optional[bytes], extra: Optional[Dict[str, Any]] = None) -> None:
        """A new DC and/or key is written to the vault at once (raises if it cannot be)."""
        self.check()
        patch: Dict[str, Any] = {}
        with self._lock:
            if dc_id is not None and dc_id != self.fields.get("dc_id"):
                patch["dc_id"] = dc_id
            if key is not None and key != self.fields.get("auth_key"):
                patch["auth_key"] = base64.b64encode(key).decode("ascii")
                patch["dc_id"] = dc_id if dc_id is not None else self.fields.get("dc_id")
            for k, v in (extra or {}).items():
                if v is not None and v != self.fields.get(k):
                    patch[k] = v
        if not patch:
            return
        try:
            self.http.patch(self.name, patch, self.lease_id)
        except LeaseLost as exc:
            self._mark_lost(f"the vault refused a fenced write: HTTP {exc.status}")
            self.check()
        with self._lock:
            if dc_id is not None:
                self.fields["dc_id"] = dc_id
            if key is not None:
                self.fields["auth_key"] = key
            for k, v in (extra or {}).items():
                self.fields[k] = v
                self._pending_fields.pop(k, None)

    # -- write-behind ------------------------------------------------------------------------------

    def pending(self) -> int:
        with self._lock:
            return len(self._dirty_peers) + len(self._dirty_states) + len(self._deleted_states) + len(self._pending_fields)

    def flush(self) -> None:
        """Send everything queued (peers, states, deletions, fields) in batches of at most 1000
        items and MAX_BODY bytes. What could not be sent stays queued; raises the first error
        (LeaseLost when fenced)."""
        with self._flush_lock:
            if self._lost is not None:
                self.check()
            with self._lock:
                peer_ids = sorted(self._dirty_peers)
                self._dirty_peers.clear()
                peers = [self.peers[i].to_json() for i in peer_ids if i in self.peers]
                state_ids = sorted(self._dirty_states)
                self._dirty_states.clear()
                states = [self.states[i].to_json() for i in state_ids if i in self.states]
                deleted = sorted(self._deleted_states)
                self._deleted_states.clear()
                fields = dict(self._pending_fields)
                self._pending_fields.clear()
            try:
                while peers:
                    n, body = next_batch("peers", peers)
                    self.http.put_peers(self.name, body, self.lease_id)
                    del peers[:n]
                while states:
                    n, body = next_batch("states", states)
                    self.http.put_states(self.name, body, self.lease_id)
                    del states[:n]
                while deleted:
                    self.http.delete_state(self.name, deleted[0], self.lease_id)
                    del deleted[0]
                if fields:
                    self.http.patch(self.name, fields, self.lease_id)
                    fields = {}
            except LeaseLost as exc:
                self._mark_lost(f"the vault refused a fenced write: HTTP {exc.status}")
                self.check()
            except SessionVaultError:
                with self._lock:  # requeue what was not sent (newer changes stay as they are)
                    self._dirty_peers.update(p["id"] for p in peers)
                    for s in states:
                        if s["id"] not in self._deleted_states:
                            self._dirty_states.add(s["id"])
                    for i in deleted:
                        if i not in self._dirty_states:
                            self._deleted_states.add(i)
                    for k, v in fields.items():
                        self._pending_fields.setdefault(k, v)
                raise

    def request_flush(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        next_flush = time.monotonic() + self.flush_interval
        while not self._stop.is_set() and self._lost is None:
            now = time.monotonic()
            due = next_flush
            if self.lease_id is not None:
                due = min(due, self._next_renewal)
            self._wake.wait(max(0.0, due - now))
            woke = self._wake.is_set()
            self._wake.clear()
            if self._stop.is_set() or self._lost is not None:
                break
            now = time.monotonic()
            if self.lease_id is not None and now >= self._next_renewal:
                self._renew()
            if now >= next_flush or woke:
                next_flush = time.monotonic() + self.flush_interval
                if self.pending():
                    try:
                        self.flush()
                    except LeaseLost:
                        break
                    except SessionVaultError as exc:
                        log.warning("session_vault: writing to %r failed (%s); will retry", self.name, exc)

    # -- closing -----------------------------------------------------------------------------------

    def close(self, flush_deadline: float = 10.0) -> None:
        """Flush (retrying until ``flush_deadline`` seconds), stop the thread, release the lease.
        Never raises: a close after the lease was lost only logs."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        if self._opened and self._lost is None:
            deadline = time.monotonic() + flush_deadline
            while True:
                try:
                    self.flush()
                    break
                except LeaseLost:
                    break
                except SessionVaultError as exc:
                    if time.monotonic() >= deadline:
                        log.error("session_vault: closing %r with %d unsaved changes: %s", self.name, self.pending(), exc)
                        break
                    time.sleep(0.5)
            self._release_quietly()
        self.http.close()


def iter_ids(ids: Any) -> Iterable[int]:
    if isinstance(ids, int):
        return (ids,)
    return tuple(ids)


def split_type(peer_id: int) -> str:
    """user / chat / channel from the marked id alone."""
    if peer_id > 0:
        return "user"
    if peer_id > -1000000000000:
        return "chat"
    return "channel"


def channel_id(peer_id: int) -> int:
    return -1000000000000 - peer_id


__all__: Tuple[str, ...] = ("SessionCore", "Peer", "StateRow", "decode_pyrogram_string", "decode_telethon_string")
