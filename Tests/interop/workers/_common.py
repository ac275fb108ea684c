# SPDX-License-Identifier: Apache-2.0
"""Shared plumbing for the library workers.

Each worker runs inside one library's own virtualenv (Pyrogram, Kurigram and Pyrofork all
install a top-level ``pyrogram`` module, so they cannot share an interpreter). The pytest
process talks to a worker through JSON: one request object on stdin, one response object on
stdout. Everything the libraries print goes to stderr so it cannot corrupt the response.

The network guard is installed before any library is imported: any attempt to resolve a
non-loopback name or to connect/send to a non-loopback address raises ``NetworkGuardError``
*before* the real system call, so no packet can leave the machine even by accident.
"""

import asyncio
import inspect
import ipaddress
import json
import os
import socket
import sys
import traceback

GUARD_HITS = []


class NetworkGuardError(ConnectionRefusedError):
    """Raised instead of any non-loopback network operation."""


def _is_loopback_host(host):
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host)
    if host in ("localhost", "ip6-localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _address_allowed(family, address):
    if family == getattr(socket, "AF_UNIX", object()):
        return True
    if isinstance(address, (tuple, list)) and address:
        return _is_loopback_host(address[0])
    if isinstance(address, (str, bytes)):  # AF_UNIX path given on another family
        return True
    return False


def _refuse(what, target):
    GUARD_HITS.append({"operation": what, "target": repr(target)})
    raise NetworkGuardError(f"interop network guard: {what} to {target!r} refused (tests are offline)")


def install_network_guard():
    """Patch the socket layer so only loopback and AF_UNIX traffic is possible."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_sendto = socket.socket.sendto
    real_getaddrinfo = socket.getaddrinfo

    def connect(self, address):
        if not _address_allowed(self.family, address):
            _refuse("connect", address)
        return real_connect(self, address)

    def connect_ex(self, address):
        if not _address_allowed(self.family, address):
            _refuse("connect_ex", address)
        return real_connect_ex(self, address)

    def sendto(self, data, *args):
        address = args[-1]
        if not _address_allowed(self.family, address):
            _refuse("sendto", address)
        return real_sendto(self, data, *args)

    def getaddrinfo(host, *args, **kwargs):
        if not _is_loopback_host(host):
            try:  # numeric addresses need no resolver traffic; connect() guards them
                ipaddress.ip_address(str(host.decode() if isinstance(host, bytes) else host).split("%", 1)[0])
            except ValueError:
                _refuse("getaddrinfo", host)
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.socket.sendto = sendto
    socket.getaddrinfo = getaddrinfo
    # sendmsg is used for UDP by some resolvers; nothing here needs it at all.
    socket.socket.sendmsg = lambda self, *a, **k: _refuse("sendmsg", a[1:] or "?")


def error_info(exc):
    """``{"type": "struct.error", "message": ...}`` with the module-qualified type name."""
    cls = type(exc)
    module = cls.__module__
    name = cls.__qualname__
    qualified = name if module in ("builtins", None) else f"{module}.{name}"
    return {"type": qualified, "message": str(exc)[:500]}


def build_tl(cls, **kwargs):
    """Construct a TL object, passing only the arguments this library's layer knows.

    Returns the object and the names of the arguments that were dropped (e.g. ``forum`` on a
    layer that predates forums), so callers can report what the library could not express.
    """
    params = inspect.signature(cls.__init__).parameters
    accepted = {k: v for k, v in kwargs.items() if k in params}
    dropped = sorted(k for k, v in kwargs.items() if k not in params and v not in (None, False))
    return cls(**accepted), dropped


def marked_id(kind, raw_id):
    """Bot-API style marked id, as every library stores it (docs/formats.md, "Peer ids")."""
    if kind in ("user", "bot"):
        return raw_id
    if kind == "group":
        return -raw_id
    return -1000000000000 - raw_id


def input_peer_json(peer):
    """Normalise an InputPeer* of any library to ``{"class": ..., ids...}``."""
    if peer is None:
        return None
    out = {"class": type(peer).__name__}
    for attr in ("user_id", "chat_id", "channel_id", "access_hash"):
        value = getattr(peer, attr, None)
        if value is not None:
            out[attr] = value
    return out


def hexs(value):
    if value is None:
        return None
    if hasattr(value, "key"):  # Telethon AuthKey
        value = value.key
    if value is None:
        return None
    return bytes(value).hex()


def run(handlers):
    """Read one JSON request from stdin, dispatch on ``op``, print one JSON response."""
    install_network_guard()
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # libraries may print banners; keep the JSON channel clean
    try:
        request = json.load(sys.stdin)
        op = request.get("op")
        handler = handlers.get(op)
        if handler is None:
            response = {"fatal": {"type": "UsageError", "message": f"unknown op {op!r}"}}
        else:
            result = handler(request)
            if inspect.iscoroutine(result):
                result = asyncio.run(result)
            response = result
    except Exception as exc:  # report, never crash silently
        response = {"fatal": error_info(exc), "traceback": traceback.format_exc()}
    response.setdefault("guard_hits", GUARD_HITS)
    real_stdout.write(json.dumps(response))
    real_stdout.write("\n")
    real_stdout.flush()
    # Exit now: a library may leave non-daemon threads behind (hydrogram's aiosqlite, a
    # client's executor after a refused connect) that would keep the process alive.
    os._exit(0)


async def netcheck(extra=None):
    """Try to reach a real Telegram DC in several ways; every attempt must hit the guard."""
    attempts = {}
    target = ("149.154.167.51", 443)

    def record(name, fn):
        try:
            fn()
            attempts[name] = {"refused": False}
        except NetworkGuardError as exc:
            attempts[name] = {"refused": True, "error": error_info(exc)}
        except Exception as exc:
            attempts[name] = {"refused": False, "error": error_info(exc)}

    record("socket.create_connection", lambda: socket.create_connection(target, timeout=2).close())
    record("socket.connect_ex", lambda: socket.socket().connect_ex(target))
    record("getaddrinfo(venus.web.telegram.org)", lambda: socket.getaddrinfo("venus.web.telegram.org", 443))
    record("udp sendto", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", target))

    async def via_asyncio():
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*target), 5)
        writer.close()

    try:
        await via_asyncio()
        attempts["asyncio.open_connection"] = {"refused": False}
    except NetworkGuardError as exc:
        attempts["asyncio.open_connection"] = {"refused": True, "error": error_info(exc)}
    except Exception as exc:
        attempts["asyncio.open_connection"] = {"refused": False, "error": error_info(exc)}

    if extra is not None:
        name, coro_fn = extra
        before = len(GUARD_HITS)
        try:
            # Libraries retry refused connections; a few seconds prove the point.
            await asyncio.wait_for(coro_fn(), 6)
            attempts[name] = {"refused": len(GUARD_HITS) > before}
        except Exception as exc:
            attempts[name] = {"refused": len(GUARD_HITS) > before, "error": error_info(exc)}
        attempts[name]["guard_hits"] = GUARD_HITS[before:]

    # A loopback connection must still work (the vault and pytest live there).
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        socket.create_connection(server.getsockname(), timeout=2).close()
        loopback_ok = True
    except Exception:
        loopback_ok = False
    finally:
        server.close()
    return {"attempts": attempts, "loopback_ok": loopback_ok, "guard_hits": GUARD_HITS}


def copy_for_reading(path, workdir, name):
    """Copy a session file (and any -wal/-shm beside it) so opening it cannot touch the original."""
    import shutil

    os.makedirs(workdir, exist_ok=True)
    dest = os.path.join(workdir, name + ".session")
    shutil.copyfile(path, dest)
    for suffix in ("-wal", "-shm", "-journal"):
        if os.path.exists(path + suffix):
            shutil.copyfile(path + suffix, dest + suffix)
    return dest
