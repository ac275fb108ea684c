# SPDX-License-Identifier: Apache-2.0
"""Library-independent look inside a ``.session`` file (runner side, stdlib sqlite3 only).

Used to learn what a writer actually stored (the ground truth the readers are checked
against) and to classify vault exports by schema. Always works on a private copy, read-only,
so the inspected file is never modified (WAL files included).
"""

import os
import shutil
import sqlite3
import tempfile


def _rows(conn, sql, args=()):
    return conn.execute(sql, args).fetchall()


def _tables(conn):
    return {r[0] for r in _rows(conn, "SELECT name FROM sqlite_master WHERE type = 'table'")}


def _columns(conn, table):
    return [r[1] for r in _rows(conn, f"PRAGMA table_info({table})")]


def inspect(path):
    """Return ``{"family", "schema_version", "journal_mode", "session", "peers", ...}``.

    ``family`` is ``pyrogram`` (``version.number``) or ``telethon`` (``version.version``).
    ``peers`` is a list of ``{"id", "access_hash", "type", "usernames", "phone",
    "last_update_on"}`` with ``usernames`` in the order the owning library treats as primary
    first (docs/formats.md, "Schema v4 (pyrofork)", "Schema v6 and v7 (kurigram)",
    "Rows and values").
    """
    with open(path, "rb") as fh:
        header = fh.read(100)
    scratch = tempfile.mkdtemp(prefix="interop-inspect-")
    try:
        copy = os.path.join(scratch, "copy.session")
        shutil.copyfile(path, copy)
        for suffix in ("-wal", "-shm"):
            if os.path.exists(path + suffix):
                shutil.copyfile(path + suffix, copy + suffix)
        conn = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
        try:
            return _inspect(conn, header)
        finally:
            conn.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _inspect(conn, header):
    out = {"journal_mode": "wal" if header[18:20] == b"\x02\x02" else "rollback"}
    tables = _tables(conn)
    out["tables"] = sorted(tables)
    version_cols = _columns(conn, "version") if "version" in tables else []
    if "number" in version_cols:
        out["family"] = "pyrogram"
        out["schema_version"] = _rows(conn, "SELECT number FROM version")[0][0]
    elif "version" in version_cols:
        out["family"] = "telethon"
        out["schema_version"] = _rows(conn, "SELECT version FROM version")[0][0]
    else:
        out["family"] = "unknown"
        return out

    session_cols = _columns(conn, "sessions")
    out["session_columns"] = session_cols
    row = _rows(conn, "SELECT * FROM sessions")
    session = dict(zip(session_cols, row[0])) if row else {}
    for blob in ("auth_key", "tmp_auth_key"):
        if blob in session:
            value = session.pop(blob)
            session[blob + "_hex"] = bytes(value).hex() if value else None
    out["session"] = session
    out["session_rows"] = len(row)

    peers = []
    if out["family"] == "pyrogram":
        peer_cols = _columns(conn, "peers")
        out["peer_columns"] = peer_cols
        has_username = "username" in peer_cols
        sel = "id, access_hash, type, phone_number, last_update_on" + (", username" if has_username else "")
        extra = {}
        if "usernames" in tables:
            ucols = _columns(conn, "usernames")
            if "peer_id" in ucols:  # pyrofork: usernames(id = username, peer_id)
                for uname, pid in _rows(conn, "SELECT id, peer_id FROM usernames ORDER BY rowid"):
                    extra.setdefault(pid, []).append(uname)
            else:  # kurigram: usernames(id = peer id, username)
                for pid, uname in _rows(conn, "SELECT id, username FROM usernames ORDER BY rowid"):
                    extra.setdefault(pid, []).append(uname)
        for r in _rows(conn, f"SELECT {sel} FROM peers ORDER BY rowid"):
            names = []
            if has_username and r[5]:
                names.append(r[5])
            for n in extra.get(r[0], []):
                if n and n not in names:
                    names.append(n)
            peers.append({"id": r[0], "access_hash": r[1], "type": r[2],
                          "phone": None if r[3] is None else str(r[3]),
                          "last_update_on": r[4], "usernames": names})
    else:
        for r in _rows(conn, "SELECT id, hash, username, phone, name, date FROM entities ORDER BY rowid"):
            if r[0] == 0:
                out["self_user_id"] = r[1]  # Telethon's own-account pseudo entity
                continue
            peers.append({"id": r[0], "access_hash": r[1], "type": None,
                          "phone": None if r[3] is None else str(r[3]),
                          "last_update_on": r[5], "usernames": [r[2]] if r[2] else []})
    out["peers"] = peers
    return out


def snapshot(directory):
    """Sorted ``(name, size, sha256)`` of every entry in a directory: proves "nothing changed"."""
    import hashlib

    entries = []
    for name in sorted(os.listdir(directory)):
        full = os.path.join(directory, name)
        if os.path.isfile(full):
            with open(full, "rb") as fh:
                entries.append((name, os.path.getsize(full), hashlib.sha256(fh.read()).hexdigest()))
        else:
            entries.append((name, "dir", ""))
    return entries
