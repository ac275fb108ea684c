# SPDX-License-Identifier: Apache-2.0
"""What each real library does with each string and file, as docs/formats.md ("Which library
reads what") documents it.

This is the single place where "library X cannot read Y" lives. The matrix and the vector
checks ask it what to expect and then assert the library's *own* behaviour: an "n.a." cell is
still a real test, it just expects the documented failure instead of success.

Additions verified while building this suite (docs/formats.md, "Which library reads what", has them too):
pyrogram 1.4.16 opens v3, v4, v6 and v7 files by column name without migrating them (same
look-up limits as pyrogram 2.x on kurigram files); Telethon (1.42 and 1.45) rejects every
Pyrogram-family file with ``sqlite3.OperationalError: no such column: version``.
"""

import time

READERS = ["pyrogram", "hydrogram", "kurigram", "pyrofork", "pyrogram-1.4", "telethon", "telethon-1.42"]
WRITERS = ["pyrogram", "hydrogram", "kurigram", "pyrofork", "telethon", "pyrogram-1.4", "telethon-1.42"]
PYRO = {"pyrogram", "hydrogram", "kurigram", "pyrofork", "pyrogram-1.4"}
TELE = {"telethon", "telethon-1.42"}

# docs/formats.md, "Data centers": pyrogram's DC table, used for Pyrogram → Telethon conversions.
PROD_DCS = {1: "149.154.175.53", 2: "149.154.167.51", 3: "149.154.175.100", 4: "149.154.167.91",
            5: "91.108.56.130", 203: "91.105.192.100"}
TEST_DCS = {1: "149.154.175.10", 2: "149.154.167.40", 3: "149.154.175.117"}
TEST_ADDRESSES = set(TEST_DCS.values())

# Peer type texts each Pyrogram-family reader maps to an InputPeer (docs/formats.md,
# "Pyrogram-family .session files").
KNOWN_TYPES = {
    "kurigram": {"user", "bot", "group", "channel", "supergroup", "forum", "direct", "community"},
}
BASIC_TYPES = {"user", "bot", "group", "channel", "supergroup"}
USERNAME_TTL = 8 * 60 * 60
TTL_MARGIN = 300  # too close to the 8 h edge to call: don't assert either way


class Expect:
    """``ok`` or a documented failure (``error_type`` + message fragment + reason)."""

    def __init__(self, ok, error_type=None, message=None, reason=None, skip=False, peer=None):
        self.ok, self.error_type, self.message, self.reason, self.skip = ok, error_type, message, reason, skip
        self.peer = peer

    def __repr__(self):
        if self.skip:
            return f"Expect(skip: {self.reason})"
        if self.ok:
            return f"Expect(ok{', ' + self.reason if self.reason else ''})"
        return f"Expect({self.error_type} {self.message!r}: {self.reason})"


def ok(reason=None, peer=None):
    return Expect(True, reason=reason, peer=peer)


def fails(error_type, message, reason):
    return Expect(False, error_type, message, reason)


def kurigram_knows_dc(test_mode, dc_id):
    table = TEST_DCS if test_mode else PROD_DCS
    return dc_id in table


def address_for(test_mode, dc_id):
    """(server_address, port) from the DC table, or None where the table has no entry."""
    table = TEST_DCS if test_mode else PROD_DCS
    if dc_id not in table:
        return None
    return table[dc_id], (80 if test_mode else 443)


# --------------------------------------------------------------------------- strings

def string_format(s):
    """Name the layout of a session string the way the readers would see it (docs/formats.md,
    "Choosing the layout", "Telethon session strings")."""
    if s.startswith("1") and len(s) in (353, 369):
        return "telethon-ipv4" if len(s) == 353 else "telethon-ipv6"
    return {351: "pyrogram-legacy-32", 356: "pyrogram-legacy-64", 362: "pyrogram-current"}.get(len(s), "unknown")


def expect_string(reader, fmt, fields):
    """docs/formats.md, "Which library reads what" (strings). ``fields`` are the values the string
    carries (dc_id, test_mode)."""
    if fmt.startswith("telethon"):
        if reader in TELE:
            return ok()
        return fails("struct.error", "unpack requires a buffer",
                     "Pyrogram-family readers decode a Telethon string as the current layout (docs/formats.md#telling-strings-apart)")
    if reader in TELE:
        return fails("ValueError", "Not a valid string", "Telethon strings start with '1' (docs/formats.md#telling-strings-apart)")
    if fmt == "pyrogram-current":
        if reader == "pyrogram-1.4":
            return fails("struct.error", "unpack requires a buffer",
                         "pyrogram 1.4 only knows the legacy layouts (docs/formats.md#choosing-the-layout)")
        if reader == "kurigram" and not kurigram_knows_dc(bool(fields.get("test_mode")), fields.get("dc_id")):
            return fails("KeyError", str(fields.get("dc_id")),
                         "kurigram maps dc_id through its DC table while importing (docs/formats.md#field-values)")
        return ok()
    # legacy layouts
    if reader == "hydrogram":
        return fails("struct.error", "unpack requires a buffer", "hydrogram dropped legacy strings (docs/formats.md#choosing-the-layout)")
    return ok("legacy layout: api_id NULL")


# --------------------------------------------------------------------------- files

def expect_file_open(reader, info):
    """docs/formats.md, "Which library reads what" (files), for a file described by
    ``sessionfile.inspect``."""
    family, version = info["family"], info.get("schema_version")
    if family == "pyrogram":
        if reader in TELE:
            return fails("sqlite3.OperationalError", "no such column: version",
                         "Telethon reads version.version; Pyrogram files have version.number")
        if reader == "kurigram":
            if version == 4:
                return fails("sqlite3.OperationalError", "table update_state already exists",
                             "kurigram cannot open pyrofork v4 files (docs/formats.md#schema-v6-and-v7-kurigram)")
            session = info.get("session", {})
            if version < 7 and not kurigram_knows_dc(bool(session.get("test_mode")), session.get("dc_id")):
                return fails("KeyError", str(session.get("dc_id")),
                             "kurigram's v6→v7 migration looks the DC up in its table (docs/formats.md#schema-v6-and-v7-kurigram)")
        return ok()
    if family == "telethon":
        if reader in PYRO:
            return fails("sqlite3.OperationalError", "no such column: number",
                         "Pyrogram-family readers read version.number (docs/formats.md#which-library-reads-what)")
        if reader == "telethon-1.42" and version >= 8:
            return fails("ValueError", "too many values to unpack",
                         "Telethon ≤ 1.42 unpacks 5 session columns; v8 has 6 (docs/formats.md#schema-v7-and-v8)")
        return ok()
    return fails("Exception", "", "unknown file family")


def expected_input_peer(peer):
    """The InputPeer every library builds from a stored (marked id, access hash)."""
    pid = peer["id"]
    if pid > 0:
        return {"class": "InputPeerUser", "user_id": pid, "access_hash": peer["access_hash"]}
    if pid > -1000000000000:
        return {"class": "InputPeerChat", "chat_id": -pid}
    return {"class": "InputPeerChannel", "channel_id": -1000000000000 - pid, "access_hash": peer["access_hash"]}


def _fresh(peer, now):
    age = abs(now - (peer.get("last_update_on") or 0))
    if abs(age - USERNAME_TTL) < TTL_MARGIN:
        return None
    return age <= USERNAME_TTL


def expect_lookup(reader, info, peer, how, value, now=None):
    """Outcome of one peer look-up by a reader that opened the file (docs/formats.md, "Pyrogram-family
    .session files", "Telethon .session files", "Which library reads what")."""
    now = now if now is not None else time.time()
    target = expected_input_peer(peer)
    if info["family"] == "telethon":
        if how == "username" and value not in peer["usernames"][:1]:
            return fails("ValueError", "Could not find input entity", "Telethon keeps only the legacy username")
        return ok(peer=target)

    version = info.get("schema_version")
    kurigram_file = "username" not in info.get("peer_columns", ["username"])
    known = KNOWN_TYPES.get(reader, BASIC_TYPES)
    type_ok = peer.get("type") in known

    if how in ("id", "phone"):
        if not type_ok:
            return fails("ValueError", f"Invalid peer type: {peer.get('type')}",
                         f"{reader} does not know kurigram's peer type {peer.get('type')!r} (docs/formats.md#which-library-reads-what)")
        return ok(peer=target)

    # username look-ups
    primary = peer["usernames"][0] if peer["usernames"] else None
    if reader == "kurigram":
        if not kurigram_file:
            return fails("KeyError", "Username not found",
                         "kurigram's migration does not copy peers.username into usernames (docs/formats.md#schema-v6-and-v7-kurigram)")
        fresh = _fresh(peer, now)
        if fresh is None:
            return Expect(False, skip=True, reason="too close to the 8 h username TTL")
        return ok(peer=target) if fresh else fails("KeyError", "Username expired", "8 h username TTL")
    if kurigram_file:
        return fails("sqlite3.OperationalError", "no such column: username",
                     "kurigram files have no peers.username column (docs/formats.md#which-library-reads-what)")
    has_table = "usernames" in info.get("tables", [])
    if value == primary:
        fresh = _fresh(peer, now)
    elif reader == "pyrofork":
        if not has_table:
            return fails("sqlite3.OperationalError", "no such table: usernames",
                         "pyrofork falls back to its usernames table, absent from this file (docs/formats.md#schema-v4-pyrofork)")
        if version == 4 and value in peer["usernames"]:
            fresh = _fresh(peer, now)
        else:
            return fails("KeyError", "Username not found", "not stored")
    else:
        return fails("KeyError", "Username not found", "only the first username is stored in peers.username")
    if not type_ok:
        return fails("ValueError", f"Invalid peer type: {peer.get('type')}", "unknown peer type")
    if fresh is None:
        return Expect(False, skip=True, reason="too close to the 8 h username TTL")
    return ok(peer=target) if fresh else fails("KeyError", "Username expired", "8 h username TTL")


def lookups_for(info):
    """Every (how, value, peer) a reader should be asked about for a file's stored peers."""
    out = []
    for p in info.get("peers", []):
        out.append(("id", p["id"], p))
        for u in p["usernames"]:
            out.append(("username", u, p))
        if p.get("phone"):
            out.append(("phone", p["phone"], p))
    return out


def check_result(expect, result):
    """Compare a worker result (``{"ok", "error"}`` or a look-up) with an expectation.

    Returns a list of human-readable problems (empty = as documented).
    """
    if expect.skip:
        return []
    if expect.ok:
        if not result.get("ok"):
            return [f"expected success, got {result.get('error')}"]
        if expect.peer is not None and result.get("peer") != expect.peer:
            return [f"resolved to {result.get('peer')}, expected {expect.peer}"]
        return []
    if result.get("ok"):
        return [f"expected the library to fail ({expect.error_type}: {expect.reason}), it succeeded"]
    err = result.get("error") or {}
    problems = []
    if err.get("type") != expect.error_type:
        problems.append(f"expected {expect.error_type}, got {err.get('type')}: {err.get('message')}")
    elif expect.message and expect.message not in err.get("message", ""):
        problems.append(f"expected message containing {expect.message!r}, got {err.get('message')!r}")
    return problems


# --------------------------------------------------------------------------- fields

PYRO_FIELDS = ["dc_id", "api_id", "test_mode", "auth_key_hex", "user_id", "is_bot"]
TELE_FIELDS = ["dc_id", "server_address", "port", "auth_key_hex"]


def reader_fields(reader, truth):
    """The subset of ``truth`` (a dict of session values) that ``reader`` reports.

    ``truth`` uses the vault's field names: dc_id, api_id, test_mode, auth_key_hex, user_id,
    is_bot, server_address, port. kurigram derives the address from its DC table when the
    source had none (string import, migration of an older schema).
    """
    if reader in TELE:
        out = {k: truth.get(k) for k in TELE_FIELDS}
        out["user_id"] = truth.get("user_id")
        return out
    names = [n for n in PYRO_FIELDS if not (reader == "pyrogram-1.4" and n == "api_id")]
    out = {k: truth.get(k) for k in names}
    for flag in ("test_mode", "is_bot"):
        if out.get(flag) is not None:
            out[flag] = bool(out[flag])
    if reader == "kurigram":
        out["server_address"] = truth.get("server_address")
        out["port"] = truth.get("port")
    return out


def truth_from_file(info):
    """Session values as stored in a file (``sessionfile.inspect`` output)."""
    s = info.get("session", {})
    truth = {"dc_id": s.get("dc_id"), "auth_key_hex": s.get("auth_key_hex")}
    if info["family"] == "pyrogram":
        truth.update(api_id=s.get("api_id"), test_mode=s.get("test_mode"), user_id=s.get("user_id"),
                     is_bot=s.get("is_bot"))
        if "server_address" in s:
            truth.update(server_address=s.get("server_address"), port=s.get("port"))
        else:
            addr = address_for(bool(s.get("test_mode")), s.get("dc_id"))
            truth.update(server_address=addr and addr[0], port=addr and addr[1])
    else:
        truth.update(server_address=s.get("server_address"), port=s.get("port"),
                     user_id=info.get("self_user_id"))
    return truth


def compare_fields(expected, got):
    """Problems (empty list = equal) between expected reader fields and what the reader returned."""
    problems = []
    for key, want in expected.items():
        have = (got or {}).get(key)
        if have != want:
            problems.append(f"{key}: expected {want!r}, reader returned {have!r}")
    return problems


ALL_FIELDS = ["dc_id", "api_id", "test_mode", "auth_key_hex", "user_id", "is_bot", "server_address", "port"]
# What each carrier holds (docs/formats.md, "What the vault reads and writes").
CARRIED = {
    "pyrogram": {"dc_id", "api_id", "test_mode", "auth_key_hex", "user_id", "is_bot"},
    "pyrogram-legacy": {"dc_id", "test_mode", "auth_key_hex", "user_id", "is_bot"},
    "telethon": {"dc_id", "server_address", "port", "auth_key_hex"},
    "pyrogram-file": {"dc_id", "api_id", "test_mode", "auth_key_hex", "user_id", "is_bot"},
    "kurigram-file": {"dc_id", "api_id", "test_mode", "auth_key_hex", "user_id", "is_bot", "server_address", "port"},
    "telethon-file": {"dc_id", "server_address", "port", "auth_key_hex", "user_id"},
}


def expected_reader_fields(reader, carrier, truth):
    """What ``reader`` must return after loading ``carrier`` made from session values ``truth``."""
    t = {k: (truth.get(k) if k in CARRIED[carrier] else None) for k in ALL_FIELDS}
    if reader == "kurigram" and carrier != "kurigram-file":
        # Legacy import: left at the new-file default whatever the DC (docs/formats.md, "Schema v6
        # and v7 (kurigram)").
        if carrier == "pyrogram-legacy":
            t["server_address"], t["port"] = "149.154.167.51", 443
        else:  # import / migration fill them from kurigram's table
            addr = address_for(bool(t.get("test_mode")), t.get("dc_id"))
            t["server_address"], t["port"] = (addr if addr else (None, None))
    return reader_fields(reader, t)


def carrier_of_string(s):
    fmt = string_format(s)
    if fmt.startswith("telethon"):
        return "telethon"
    return "pyrogram-legacy" if "legacy" in fmt else "pyrogram"
