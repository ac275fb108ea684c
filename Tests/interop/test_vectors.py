# SPDX-License-Identifier: Apache-2.0
"""Prove the harness before the vault exists: the workers, driving the real libraries, must
reproduce what the shared vectors recorded (session_strings.json, invalid_session_strings.json)
and what docs/formats.md ("Which library reads what") says about every vector ``.session`` file."""

import pathlib

import pytest

import expectations as ex
import harness
import sessionfile

STRINGS = harness.vector_json("session_strings.json")
INVALID = harness.vector_json("invalid_session_strings.json")
FILES = sorted((harness.VECTORS / "sessions").glob("*.session"))


@pytest.fixture(scope="session")
def string_results(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("vector-strings")
    items = [{"key": f"valid:{e['id']}", "kind": "string", "value": e["string"]} for e in STRINGS]
    items += [{"key": f"invalid:{e['id']}", "kind": "string", "value": e["input"]} for e in INVALID]
    return harness.load_all(ex.READERS, items, scratch)


@pytest.fixture(scope="session")
def file_results(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("vector-files")
    infos = {f.name: sessionfile.inspect(str(f)) for f in FILES}
    items = []
    for f in FILES:
        looks = ex.lookups_for(infos[f.name])
        items.append({"key": f.name, "kind": "file", "path": str(f),
                      "ids": [v for h, v, _ in looks if h == "id"],
                      "usernames": [v for h, v, _ in looks if h == "username"],
                      "phones": [v for h, v, _ in looks if h == "phone"]})
    results = harness.load_all(ex.READERS, items, scratch)
    return infos, results


def _accepted(res):
    return bool(res.get("ok")) and (res.get("fields") or {}).get("auth_key_hex") is not None


def _check_string(recorded, mine):
    problems = []
    if recorded.get("accepted"):
        if not _accepted(mine):
            return [f"vector says accepted, worker got {mine.get('error') or 'no auth key'}"]
        for key, want in recorded.get("fields", {}).items():
            if mine["fields"].get(key) != want:
                problems.append(f"{key}: vector {want!r}, library now {mine['fields'].get(key)!r}")
        return problems
    if recorded.get("error_type"):
        err = mine.get("error") or {}
        if mine.get("ok") or err.get("type") != recorded["error_type"]:
            problems.append(f"vector says {recorded['error_type']} at {recorded.get('stage')}, worker got "
                            f"{err.get('type') if not mine.get('ok') else 'success'}")
        return problems
    # Neither accepted nor an error: the value was ignored or no key was loaded.
    if _accepted(mine):
        problems.append("vector says not accepted, worker loaded an auth key")
    if recorded.get("storage_class") and mine.get("storage_class") != recorded["storage_class"]:
        problems.append(f"storage class {mine.get('storage_class')} != vector {recorded['storage_class']}")
    return problems


@pytest.mark.parametrize("reader", ex.READERS)
@pytest.mark.parametrize("entry", STRINGS, ids=lambda e: e["id"])
def test_vector_string(string_results, entry, reader):
    """A valid vector string read by each library gives what the vector recorded (docs/formats.md,
    "Which library reads what")."""
    mine = string_results[reader][f"valid:{entry['id']}"]
    assert _check_string(entry["readers"][reader], mine) == []
    # and the recorded behaviour is what expectations.py predicts from docs/formats.md
    fmt = ex.string_format(entry["string"])
    expect = ex.expect_string(reader, fmt, entry["fields"])
    assert ex.check_result(expect, mine) == [], expect


@pytest.mark.parametrize("reader", ex.READERS)
@pytest.mark.parametrize("entry", INVALID, ids=lambda e: e["id"])
def test_vector_invalid_string(string_results, entry, reader):
    """Malformed strings fail (or are accepted) exactly as the vectors recorded."""
    mine = string_results[reader][f"invalid:{entry['id']}"]
    assert _check_string(entry["readers"][reader], mine) == []


@pytest.mark.parametrize("reader", ex.READERS)
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_vector_file(file_results, path, reader):
    """Each vector file opened by each library behaves as docs/formats.md ("Which library reads
    what") says: fields equal the file's contents, every peer look-up succeeds or fails the documented way."""
    infos, results = file_results
    info, res = infos[path.name], results[reader][path.name]
    expect = ex.expect_file_open(reader, info)
    assert ex.check_result(expect, res) == [], expect
    if not expect.ok:
        return
    problems = ex.compare_fields(ex.reader_fields(reader, ex.truth_from_file(info)), res["fields"])
    for how, value, peer in ex.lookups_for(info):
        want = ex.expect_lookup(reader, info, peer, how, value)
        got = res["lookups"][f"{how}:{value}"]
        problems += [f"{how} {value}: {p}" for p in ex.check_result(want, got)]
    assert problems == []


def test_vectors_present():
    assert len(STRINGS) >= 40 and len(INVALID) >= 20 and len(FILES) == 9, pathlib.Path(harness.VECTORS)
