# SPDX-License-Identifier: Apache-2.0
"""Library-only part of the matrix (no vault): what each writer makes, read by every library.

This pins the baseline the vault is measured against: every "n.a." here is the libraries'
own incompatibility (docs/formats.md, "Which library reads what"), and every cell runs the real reader.
"""

import os

import pytest

import cases
import expectations as ex
import harness

# docs/formats.md, "Libraries and conventions": what each writer produces.
WRITER_SHAPES = {
    "pyrogram": ("pyrogram", 3, "rollback", "pyrogram"),
    "hydrogram": ("pyrogram", 3, "wal", "pyrogram"),
    "kurigram": ("pyrogram", 7, "rollback", "pyrogram"),
    "pyrofork": ("pyrogram", 4, "rollback", "pyrogram"),
    "pyrogram-1.4": ("pyrogram", 2, "rollback", "pyrogram-legacy"),
    "telethon": ("telethon", 8, "rollback", "telethon"),
    "telethon-1.42": ("telethon", 7, "rollback", "telethon"),
}


@pytest.fixture(scope="session")
def direct_reads(made, tmp_path_factory):
    scratch = tmp_path_factory.mktemp("direct-reads")
    items = []
    for key, m in made.items():
        looks = ex.lookups_for(m["info"])
        items.append({"key": f"file:{key}", "kind": "file", "path": m["file"],
                      "ids": [v for h, v, _ in looks if h == "id"],
                      "usernames": [v for h, v, _ in looks if h == "username"],
                      "phones": [v for h, v, _ in looks if h == "phone"]})
        if m.get("string"):
            items.append({"key": f"string:{key}", "kind": "string", "value": m["string"]})
    return harness.load_all(ex.READERS, items, scratch)


def truth_of(case, made_case):
    truth = dict(case.fields, auth_key_hex=made_case["auth_key_hex"])
    if not case.is_telethon:
        addr = ex.address_for(case.fields["test_mode"], case.fields["dc_id"])
        truth["server_address"], truth["port"] = addr if addr else (None, None)
    return truth


@pytest.mark.parametrize("case", cases.CASES, ids=lambda c: c.key)
def test_writer_made(made, case):
    """The writer stored exactly what it was given, in the shape docs/formats.md describes
    ("Libraries and conventions")."""
    m = made[case.key]
    info = m["info"]
    family, version, journal, carrier = WRITER_SHAPES[case.writer]
    assert (info["family"], info["schema_version"], info["journal_mode"]) == (family, version, journal)
    leftovers = [n for n in os.listdir(os.path.dirname(m["file"])) if n.endswith(("-wal", "-shm", "-journal"))]
    assert leftovers == [], "library left journal files behind"
    truth = truth_of(case, m)
    assert ex.compare_fields(ex.reader_fields(case.writer, truth), m["fields"]) == []
    assert ex.carrier_of_string(m["string"]) == carrier
    stored = {p["id"] for p in info["peers"]}
    wanted = {_marked(p) for p in case.peers() if not (p["kind"] == "community" and case.writer != "kurigram")}
    assert wanted <= stored, f"peers missing from the file: {sorted(wanted - stored)}"
    if case.is_telethon:
        assert info.get("self_user_id") == case.fields["user_id"]


def _marked(p):
    if p["kind"] in ("user", "bot"):
        return p["id"]
    if p["kind"] == "group":
        return -p["id"]
    return -1000000000000 - p["id"]


@pytest.mark.parametrize("reader", ex.READERS)
@pytest.mark.parametrize("case", cases.CASES, ids=lambda c: c.key)
def test_direct_string(made, direct_reads, case, reader, cell):
    """The writer's own session string, read by every library (no vault involved)."""
    m = made[case.key]
    fmt = ex.string_format(m["string"])
    cell.update(writer=case.key, path="library string", format=fmt, reader=reader)
    res = direct_reads[reader][f"string:{case.key}"]
    expect = ex.expect_string(reader, fmt, case.fields)
    assert ex.check_result(expect, res) == [], expect
    if not expect.ok:
        cell.update(status="n.a.", reason=f"{res['error']['type']}: {expect.reason}")
        return
    want = ex.expected_reader_fields(reader, ex.carrier_of_string(m["string"]), truth_of(case, m))
    assert ex.compare_fields(want, res["fields"]) == []


@pytest.mark.parametrize("reader", ex.READERS)
@pytest.mark.parametrize("case", cases.CASES, ids=lambda c: c.key)
def test_direct_file(made, direct_reads, case, reader, cell):
    """The writer's own ``.session`` file, read by every library (no vault involved)."""
    m = made[case.key]
    info = m["info"]
    cell.update(writer=case.key, path="library file", format=f"{info['family']} v{info['schema_version']}",
                reader=reader)
    res = direct_reads[reader][f"file:{case.key}"]
    expect = ex.expect_file_open(reader, info)
    assert ex.check_result(expect, res) == [], expect
    if not expect.ok:
        cell.update(status="n.a.", reason=f"{res['error']['type']}: {expect.reason}")
        return
    problems = ex.compare_fields(ex.reader_fields(reader, ex.truth_from_file(info)), res["fields"])
    limited = set()
    for how, value, peer in ex.lookups_for(info):
        want = ex.expect_lookup(reader, info, peer, how, value)
        if not want.ok and not want.skip:
            limited.add(f"{how}: {want.reason}")
        problems += [f"{how} {value}: {p}" for p in ex.check_result(want, res["lookups"][f"{how}:{value}"])]
    assert problems == []
    if limited:
        cell["reason"] = "partial (library limits): " + "; ".join(sorted(limited))
