# SPDX-License-Identifier: Apache-2.0
"""Black-box tests of `session-vault inspect` and `session-vault convert`.

Every test runs the real binary (SESSION_VAULT_BIN, else .build/debug/session-vault) in a
subprocess against the vectors in Tests/VaultCoreTests/Vectors, which the real Python client
libraries produced. JSON is parsed with Python's json module, whose integers are exact.
"""

import base64
import hashlib
import json
import os
import shutil
import sqlite3
import stat
import struct
import subprocess
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO / "Tests" / "VaultCoreTests" / "Vectors"
BIN = os.environ.get("SESSION_VAULT_BIN", str(REPO / ".build" / "debug" / "session-vault"))

EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_CANTCREAT = 64, 65, 66, 73

INSPECT_KEYS = [
    "format", "kind", "dc_id", "api_id", "test_mode", "user_id", "is_bot", "server_address",
    "port", "date", "auth_key_id", "peer_count", "peers_by_type",
]
PEER_TYPES = ["user", "bot", "group", "channel", "supergroup", "forum", "direct", "community", "unknown"]
FILE_FORMATS = ["pyrogram-file", "kurigram-file", "telethon-file"]


def load(name):
    with open(VECTORS / name, encoding="utf-8") as handle:
        return json.load(handle)


SESSION_FILES = sorted((VECTORS / "sessions").glob("*.session"))
STRINGS = load("session_strings.json")
PAIRS = load("conversion_pairs.json")
INVALID = load("invalid_session_strings.json")


def run(*args, stdin=b""):
    """Runs the binary; stdin is always given so that nothing waits on a terminal."""
    return subprocess.run([BIN, *map(str, args)], input=stdin, capture_output=True, timeout=120)


def inspect_ok(path_or_dash, stdin=b""):
    result = run("inspect", path_or_dash, stdin=stdin)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    return json.loads(result.stdout), result


def key_id(key_hex):
    return hashlib.sha1(bytes.fromhex(key_hex)).digest()[-8:].hex() if key_hex else None


def secret_forms(key_hex, string=None):
    """Ways a key (or the session string holding it) could leak into output: hex in both cases,
    and base64 (standard and URL-safe) at every byte alignment, as 40-character windows."""
    forms = []
    if key_hex:
        key = bytes.fromhex(key_hex)
        forms += [key_hex[:64], key_hex[-64:], key_hex.upper()[:64], key_hex[200:264]]
        for shift in range(3):
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                text = encode(key[shift:]).decode()
                forms += [text[4:44], text[100:140]]
    if string:
        forms += [string[10:50], string[-50:-10]]
    return [form for form in forms if len(form) >= 32]


def assert_no_secret(result, key_hex, string=None):
    output = (result.stdout + result.stderr).decode("utf-8", "replace")
    for form in secret_forms(key_hex, string):
        assert form not in output and form.lower() not in output.lower()


def snapshot(directory):
    """Every entry's name, bytes, mode and mtime in `directory`."""
    entries = {}
    for entry in sorted(os.listdir(directory)):
        path = os.path.join(directory, entry)
        info = os.lstat(path)
        entries[entry] = (Path(path).read_bytes(), info.st_mode, info.st_mtime_ns)
    return entries


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# MARK: - expectations from the vectors


def file_format(meta):
    version = meta["schema_version"]
    if meta["written_by"]["library_key"].startswith("telethon"):
        return f"telethon-file-v{version}"
    return {2: "pyrogram-file-v2", 3: "pyrogram-file-v3", 4: "pyrofork-file-v4",
            6: "kurigram-file-v6", 7: "kurigram-file-v7"}[version]


def expected_for_file(path):
    meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    tables = meta["expected"]["tables"]
    row = tables["sessions"][0]
    fmt = file_format(meta)
    if fmt.startswith("telethon"):
        own = [entity for entity in tables["entities"] if entity["id"] == 0]
        peers = [entity for entity in tables["entities"] if entity["id"] != 0]
        fields = {
            "api_id": None, "user_id": own[0]["hash"] if own else None, "is_bot": None, "date": None,
            # The writers used production DC addresses, from which the reader infers the mode.
            "test_mode": False,
        }
        types = Counter("unknown" for _ in peers)
    else:
        peers = tables.get("peers", [])
        fields = {
            "api_id": row.get("api_id"), "user_id": row["user_id"], "is_bot": bool(row["is_bot"]),
            "test_mode": bool(row["test_mode"]), "date": row["date"],
        }
        types = Counter(peer["type"] if peer["type"] in PEER_TYPES else "unknown" for peer in peers)
    fields.update({
        "format": fmt, "kind": "file", "dc_id": row["dc_id"],
        "server_address": row.get("server_address"), "port": row.get("port"),
        "auth_key_id": key_id(row.get("auth_key_hex")), "peer_count": len(peers),
        "peers_by_type": {name: types.get(name, 0) for name in PEER_TYPES},
    })
    return fields, row.get("auth_key_hex")


def string_format(entry):
    name = entry["format_name"]
    if name.startswith("telethon"):
        return "telethon"
    if name.startswith("pyrogram-legacy-32"):
        return "pyrogram-legacy-32"
    if name.startswith("pyrogram-legacy-64"):
        return "pyrogram-legacy-64"
    return "pyrogram"


def expected_for_string(entry):
    imported = entry["expected_on_import"]
    fields = {key: imported.get(key) for key in
              ["dc_id", "api_id", "test_mode", "user_id", "is_bot", "server_address", "port", "date"]}
    fields.update({
        "format": string_format(entry), "kind": "string",
        "auth_key_id": key_id(imported.get("auth_key_hex")), "peer_count": 0,
        "peers_by_type": {name: 0 for name in PEER_TYPES},
    })
    return fields


def telethon_string(dc_id, address, port, key):
    """A Telethon StringSession built with struct + base64 (docs/formats.md, "Telethon session strings")."""
    packed = struct.pack(">B4sH256s", dc_id, bytes(int(part) for part in address.split(".")), port, key)
    return "1" + base64.urlsafe_b64encode(packed).decode()


# MARK: - inspect


def test_binary_exists():
    assert os.access(BIN, os.X_OK), f"build the binary first: {BIN}"


@pytest.mark.parametrize("vector", SESSION_FILES, ids=lambda path: path.stem)
def test_inspect_session_file_matches_vector_and_leaves_it_untouched(vector, tmp_path):
    directory = tmp_path / "in"
    directory.mkdir()
    copy = directory / vector.name
    shutil.copy2(vector, copy)
    before = snapshot(directory)

    output, result = inspect_ok(copy)

    expected, key_hex = expected_for_file(vector)
    assert list(output) == INSPECT_KEYS
    assert output == expected
    assert_no_secret(result, key_hex)
    # Same bytes, same mtime, no -wal/-shm/-journal appeared (hydrogram's file is in WAL mode).
    assert snapshot(directory) == before


@pytest.mark.parametrize("vector", SESSION_FILES[:3], ids=lambda path: path.stem)
def test_inspect_session_file_from_stdin(vector):
    output, result = inspect_ok("-", stdin=vector.read_bytes())
    expected, key_hex = expected_for_file(vector)
    assert output == expected
    assert_no_secret(result, key_hex)


@pytest.mark.parametrize("entry", STRINGS, ids=lambda entry: entry["id"])
def test_inspect_string_from_file_and_stdin(entry, tmp_path):
    expected = expected_for_string(entry)
    key_hex = entry["expected_on_import"].get("auth_key_hex") or entry["fields"].get("auth_key_hex")
    path = tmp_path / "session.txt"
    # `echo`-style: one trailing newline is accepted.
    path.write_bytes(entry["string"].encode() + b"\n")

    from_file, result = inspect_ok(path)
    assert from_file == expected
    assert_no_secret(result, key_hex, entry["string"])

    from_stdin, result = inspect_ok("-", stdin=entry["string"].encode())
    assert from_stdin == expected
    assert_no_secret(result, key_hex, entry["string"])


def test_inspect_keeps_integers_above_2_53_exact():
    big = [entry for entry in STRINGS if (entry["expected_on_import"].get("user_id") or 0) > 2**53]
    assert big, "the vectors cover user ids above 2^53"
    for entry in big:
        output, _ = inspect_ok("-", stdin=entry["string"].encode())
        assert output["user_id"] == entry["expected_on_import"]["user_id"]
        assert f'"user_id": {entry["expected_on_import"]["user_id"]}'.encode() in run(
            "inspect", "-", stdin=entry["string"].encode()).stdout


# MARK: - bad input


# Accepted on purpose: a stray `=` after 362 digits (the codec's documented decision), and the
# one trailing newline the CLI strips because `echo` adds it.
ACCEPTED_INVALID = {"current-bad-padding", "current-trailing-newline"}


@pytest.mark.parametrize("entry", INVALID, ids=lambda entry: entry["id"])
@pytest.mark.parametrize("command", ["inspect", "convert"])
def test_invalid_strings_are_refused_with_a_message_and_nothing_written(entry, command, tmp_path):
    data = entry["input"].encode("utf-8")
    path = tmp_path / "input.txt"
    path.write_bytes(data)
    out = tmp_path / "out.txt"
    args = ["inspect", path] if command == "inspect" else ["convert", "--to", "telethon", "--out", out, path]
    result = run(*args)
    if entry["id"] in ACCEPTED_INVALID:
        assert result.returncode == 0, result.stderr.decode()
        return
    assert result.returncode == EX_DATAERR, result.stderr.decode()
    assert result.stdout == b""
    message = result.stderr.decode()
    assert message.startswith(f"session-vault {command}: ")
    assert "session_string" in message or "empty input" in message or "dc_id" in message
    assert str(path) in message
    assert sorted(os.listdir(tmp_path)) == ["input.txt"]
    if len(entry["input"]) > 40:
        assert entry["input"][5:45] not in message


def test_only_one_trailing_newline_is_stripped(tmp_path):
    string = PAIRS[0]["pyrogram_string"]
    result = run("inspect", "-", stdin=(string + "\n\n").encode())
    assert result.returncode == EX_DATAERR
    assert b"whitespace at position 362" in result.stderr
    result = run("inspect", "-", stdin=(" " + string).encode())
    assert result.returncode == EX_DATAERR
    assert b"whitespace at position 0" in result.stderr


def test_empty_input_is_a_data_error():
    result = run("inspect", "-", stdin=b"")
    assert result.returncode == EX_DATAERR
    assert b"standard input: empty input" in result.stderr


@pytest.mark.parametrize("cut", ["half", "page"])
def test_truncated_session_file_is_a_data_error(cut, tmp_path):
    data = (VECTORS / "sessions" / "pyrogram_user.session").read_bytes()
    size = len(data) // 2 if cut == "half" else 4096
    path = tmp_path / "cut.session"
    path.write_bytes(data[:size])
    result = run("inspect", path)
    assert result.returncode == EX_DATAERR
    assert result.stdout == b""
    assert b"invalid .session file" in result.stderr and b"truncated or corrupt" in result.stderr
    out = tmp_path / "out.session"
    result = run("convert", "--to", "pyrogram-file", "--out", out, path)
    assert result.returncode == EX_DATAERR
    assert not out.exists()


def test_sqlite_file_that_is_not_a_session(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (x)")
    connection.close()
    result = run("inspect", path)
    assert result.returncode == EX_DATAERR
    assert b"unsupported session file" in result.stderr


def test_missing_path_directory_and_unreadable_file(tmp_path):
    missing = tmp_path / "nope.session"
    result = run("inspect", missing)
    assert result.returncode == EX_NOINPUT
    assert f"cannot open input {missing}: No such file or directory".encode() in result.stderr

    result = run("convert", "--to", "telethon", tmp_path)
    assert result.returncode == EX_NOINPUT
    assert f"{tmp_path}: is a directory".encode() in result.stderr

    not_a_directory = tmp_path / "p.txt"
    not_a_directory.write_text("x")
    result = run("inspect", not_a_directory / "x")
    assert result.returncode == EX_NOINPUT
    assert f"cannot open input {not_a_directory / 'x'}: Not a directory".encode() in result.stderr

    locked = tmp_path / "locked.txt"
    locked.write_text("x")
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running as root: permissions are not enforced")
        result = run("inspect", locked)
        assert result.returncode == EX_NOINPUT
        assert str(locked).encode() in result.stderr
    finally:
        locked.chmod(0o600)


def test_oversized_input_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.session"
    with open(path, "wb") as handle:
        handle.truncate((64 << 20) + 1)  # sparse: cheap to create
    result = run("inspect", path)
    assert result.returncode == EX_DATAERR
    assert b"larger than 67108864 bytes" in result.stderr


def test_session_string_passed_as_argument_is_refused_without_echoing_it():
    string = PAIRS[0]["pyrogram_string"]
    for args in (["inspect", string], ["convert", "--to", "telethon", string]):
        result = run(*args)
        assert result.returncode == EX_USAGE
        assert b"looks like a session string" in result.stderr
        assert_no_secret(result, PAIRS[0]["pyrogram_fields"]["auth_key_hex"], string)


# MARK: - convert: strings


@pytest.mark.parametrize("pair", PAIRS, ids=lambda pair: pair["id"])
def test_pyrogram_string_to_telethon_string_equals_vector(pair, tmp_path):
    path = tmp_path / "p.txt"
    path.write_text(pair["pyrogram_string"])
    result = run("convert", "--to", "telethon", path)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == (pair["telethon_string"] + "\n").encode()
    assert result.stderr == b""


@pytest.mark.parametrize("pair", PAIRS, ids=lambda pair: pair["id"])
def test_telethon_to_pyrogram_needs_every_missing_field_then_round_trips(pair, tmp_path):
    source = tmp_path / "t.txt"
    source.write_text(pair["telethon_string"] + "\n")
    out = tmp_path / "p.txt"

    result = run("convert", "--to", "pyrogram", "--out", out, source)
    assert result.returncode == EX_DATAERR
    assert result.stdout == b""
    assert result.stderr.decode() == (
        "session-vault convert: cannot produce pyrogram: missing api_id, user_id, is_bot; "
        "pass --api-id, --user-id, --is-bot\n")
    assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == ["t.txt"]

    fields = pair["pyrogram_fields"]
    result = run("convert", "--to", "pyrogram", "--out", out, "--api-id", fields["api_id"],
                 "--user-id", fields["user_id"], "--is-bot", str(fields["is_bot"]).lower(), source)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b""
    assert out.read_bytes() == (pair["pyrogram_string"] + "\n").encode()
    assert mode(out) == 0o600

    output, _ = inspect_ok(out)
    assert output["format"] == "pyrogram"
    for field in ["dc_id", "api_id", "test_mode", "user_id", "is_bot"]:
        assert output[field] == fields[field]
    assert output["auth_key_id"] == key_id(fields["auth_key_hex"])


def test_unknown_address_also_needs_test_mode():
    key = bytes(range(256))
    string = telethon_string(2, "10.1.2.3", 443, key)
    result = run("convert", "--to", "pyrogram", "-", stdin=string.encode())
    assert result.returncode == EX_DATAERR
    assert result.stderr.decode() == (
        "session-vault convert: cannot produce pyrogram: missing api_id, test_mode, user_id, is_bot; "
        "pass --api-id, --test-mode, --user-id, --is-bot\n")
    result = run("convert", "--to", "pyrogram-file", "--out", "/nonexistent-dir/x.session", "-",
                 stdin=string.encode())
    # The output directory is checked only when writing; data errors come first.
    assert result.returncode == EX_DATAERR
    assert b"missing api_id, test_mode, user_id, is_bot" in result.stderr


def test_conflicting_override_names_the_flag():
    pair = PAIRS[0]
    result = run("convert", "--to", "telethon", "--user-id", "42", "-", stdin=pair["pyrogram_string"].encode())
    assert result.returncode == EX_DATAERR
    assert result.stderr.decode() == (
        f"session-vault convert: --user-id 42 conflicts with the session's user_id "
        f"{pair['pyrogram_fields']['user_id']}\n")
    result = run("convert", "--to", "pyrogram", "--test-mode", "true", "-", stdin=pair["pyrogram_string"].encode())
    assert result.returncode == EX_DATAERR
    assert b"--test-mode true conflicts with the session's test_mode false" in result.stderr


def test_api_id_override_replaces_the_stored_one():
    pair = PAIRS[0]
    result = run("convert", "--to", "pyrogram", "--api-id", "777", "-", stdin=pair["pyrogram_string"].encode())
    assert result.returncode == 0, result.stderr.decode()
    output, _ = inspect_ok("-", stdin=result.stdout)
    assert output["api_id"] == 777
    assert output["user_id"] == pair["pyrogram_fields"]["user_id"]


@pytest.mark.parametrize("args", [
    ["--to", "bogus"], ["--to", "pyrogram", "--api-id", "0"], ["--to", "pyrogram", "--api-id", "4294967296"],
    ["--to", "pyrogram", "--api-id", "x"], ["--to", "pyrogram", "--user-id", "-5"],
    ["--to", "pyrogram", "--is-bot", "yes"], ["--to", "pyrogram", "--test-mode", "1"],
    ["--to", "telethon", "--out", "-"], ["--to", "telethon", "--out", "dir/"],
])
def test_bad_flag_values_are_usage_errors(args, tmp_path):
    source = tmp_path / "p.txt"
    source.write_text(PAIRS[0]["pyrogram_string"])
    result = run("convert", *args, source)
    assert result.returncode == EX_USAGE, result.stderr.decode()
    assert result.stdout == b""
    assert sorted(os.listdir(tmp_path)) == ["p.txt"]


# MARK: - convert: files


@pytest.mark.parametrize("target", FILE_FORMATS)
def test_file_formats_are_refused_on_stdout(target):
    result = run("convert", "--to", target, "-", stdin=PAIRS[0]["pyrogram_string"].encode())
    assert result.returncode == EX_USAGE
    assert result.stdout == b""
    assert f"{target} is a file format: pass --out PATH".encode() in result.stderr


@pytest.mark.parametrize("target", FILE_FORMATS)
@pytest.mark.parametrize("pair", PAIRS, ids=lambda pair: pair["id"])
def test_string_to_every_file_format_is_private_and_inspectable(pair, target, tmp_path):
    out = tmp_path / "out.session"
    result = run("convert", "--to", target, "--out", out, "-", stdin=pair["pyrogram_string"].encode())
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"" and result.stderr == b""
    assert mode(out) == 0o600
    assert os.listdir(tmp_path) == ["out.session"]

    output, _ = inspect_ok(out)
    fields = pair["pyrogram_fields"]
    expected_format = {"pyrogram-file": "pyrogram-file-v3", "kurigram-file": "kurigram-file-v7",
                       "telethon-file": "telethon-file-v7"}[target]
    assert output["format"] == expected_format
    assert output["dc_id"] == fields["dc_id"]
    assert output["test_mode"] == fields["test_mode"]
    assert output["user_id"] == fields["user_id"]
    assert output["auth_key_id"] == key_id(fields["auth_key_hex"])
    if target != "telethon-file":
        assert output["api_id"] == fields["api_id"]
        assert output["is_bot"] == fields["is_bot"]
    else:
        assert output["server_address"] == pair["telethon_fields"]["server_address"]
        assert output["port"] == pair["telethon_fields"]["port"]
        # And the Telethon file converts to the very string Telethon itself wrote.
        result = run("convert", "--to", "telethon", out)
        assert result.stdout == (pair["telethon_string"] + "\n").encode()


@pytest.mark.parametrize("target", FILE_FORMATS)
@pytest.mark.parametrize("vector", SESSION_FILES, ids=lambda path: path.stem)
def test_session_files_convert_to_every_file_format_with_their_peers(vector, target, tmp_path):
    expected, _ = expected_for_file(vector)
    out = tmp_path / "out.session"
    args = ["convert", "--to", target, "--out", out]
    if target != "telethon-file":
        # Telethon files lack api_id and is_bot, pyrogram 1.x (v2) files lack api_id.
        if expected["api_id"] is None:
            args += ["--api-id", "12345"]
        if expected["is_bot"] is None:
            args += ["--is-bot", "false"]
    result = run(*args, vector)
    assert result.returncode == 0, result.stderr.decode()
    assert mode(out) == 0o600

    output, _ = inspect_ok(out)
    assert output["peer_count"] == expected["peer_count"]
    assert output["user_id"] == expected["user_id"]
    assert output["dc_id"] == expected["dc_id"]
    assert output["auth_key_id"] == expected["auth_key_id"]
    if target != "telethon-file":
        assert output["api_id"] == (expected["api_id"] or 12345)
        assert output["is_bot"] == (expected["is_bot"] or False)


def test_telethon_file_to_pyrogram_file_names_only_what_is_missing(tmp_path):
    out = tmp_path / "out.session"
    result = run("convert", "--to", "pyrogram-file", "--out", out, VECTORS / "sessions" / "telethon_user.session")
    assert result.returncode == EX_DATAERR
    # user_id comes from Telethon's own-user entity, test_mode from the DC address.
    assert result.stderr.decode() == (
        "session-vault convert: cannot produce pyrogram-file: missing api_id, is_bot; pass --api-id, --is-bot\n")
    assert os.listdir(tmp_path) == []


def test_telethon_string_to_pyrogram_file_names_every_missing_field(tmp_path):
    out = tmp_path / "out.session"
    result = run("convert", "--to", "kurigram-file", "--out", out, "-", stdin=PAIRS[0]["telethon_string"].encode())
    assert result.returncode == EX_DATAERR
    assert result.stderr.decode() == (
        "session-vault convert: cannot produce kurigram-file: missing api_id, user_id, is_bot; "
        "pass --api-id, --user-id, --is-bot\n")
    assert os.listdir(tmp_path) == []


def test_existing_output_is_refused_without_force_and_replaced_with_it(tmp_path):
    out = tmp_path / "out.session"
    out.write_bytes(b"precious")
    out.chmod(0o644)
    source = VECTORS / "sessions" / "pyrogram_user.session"
    for target in ["pyrogram-file", "telethon"]:
        result = run("convert", "--to", target, "--out", out, source)
        assert result.returncode == EX_CANTCREAT
        assert f"{out} already exists; pass --force to replace it".encode() in result.stderr
        assert out.read_bytes() == b"precious"
        assert os.listdir(tmp_path) == ["out.session"]

    result = run("convert", "--to", "pyrogram-file", "--out", out, "--force", source)
    assert result.returncode == 0, result.stderr.decode()
    assert mode(out) == 0o600
    assert os.listdir(tmp_path) == ["out.session"]
    output, _ = inspect_ok(out)
    assert output["peer_count"] == 9


def test_output_into_a_missing_directory_or_onto_a_directory_cannot_be_created(tmp_path):
    source = tmp_path / "p.txt"
    source.write_text(PAIRS[0]["pyrogram_string"])
    result = run("convert", "--to", "telethon", "--out", tmp_path / "no" / "out.txt", source)
    assert result.returncode == EX_CANTCREAT
    assert b"No such file or directory" in result.stderr
    (tmp_path / "d").mkdir()
    result = run("convert", "--to", "telethon", "--out", tmp_path / "d", "--force", source)
    assert result.returncode == EX_CANTCREAT
    assert b"is a directory" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["d", "p.txt"]
    assert os.listdir(tmp_path / "d") == []


def test_converting_leaves_the_input_untouched(tmp_path):
    directory = tmp_path / "in"
    directory.mkdir()
    copy = directory / "hydrogram_user.session"
    shutil.copy2(VECTORS / "sessions" / "hydrogram_user.session", copy)
    before = snapshot(directory)
    result = run("convert", "--to", "kurigram-file", "--out", tmp_path / "k.session", copy)
    assert result.returncode == 0, result.stderr.decode()
    assert snapshot(directory) == before


def test_closed_stdout_is_an_io_error():
    proc = subprocess.Popen([BIN, "convert", "--to", "telethon", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    _, err = proc.communicate(PAIRS[0]["pyrogram_string"].encode(), timeout=120)
    assert proc.returncode == 74
    assert b"write failed" in err


def test_help_documents_exit_codes_and_examples():
    for command in ["inspect", "convert"]:
        result = run(command, "--help")
        assert result.returncode == 0
        text = result.stdout.decode()
        assert "Exit status: 0 success; 64 usage error" in text
        assert "74 I/O error" in text
        assert f"session-vault {command}" in text


def test_keyless_telethon_string_names_the_key_no_flag_can_supply():
    # Telethon writes an all-zero key for "no key" (docs/formats.md, "Telethon session strings").
    keyless = telethon_string(2, "149.154.167.51", 443, bytes(256)).encode()
    output, _ = inspect_ok("-", stdin=keyless)
    assert output["auth_key_id"] is None
    result = run("convert", "--to", "pyrogram", "--api-id", "1", "--user-id", "2", "--is-bot", "false", "-",
                 stdin=keyless)
    assert result.returncode == EX_DATAERR
    assert result.stderr.decode() == (
        "session-vault convert: cannot produce pyrogram: missing auth_key; no flag can supply auth_key\n")
