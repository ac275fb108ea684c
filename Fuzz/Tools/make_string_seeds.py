#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes FuzzSessionString seeds from the test vectors: every valid string of
session_strings.json and the shortest distinct invalid inputs of invalid_session_strings.json.
Usage: Fuzz/Tools/make_string_seeds.py  (from anywhere)"""
import hashlib, json, os

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
vectors = os.path.join(root, "Tests", "VaultCoreTests", "Vectors")
out = os.path.join(root, "Fuzz", "Corpus", "FuzzSessionString")
os.makedirs(out, exist_ok=True)
seen = set()
def put(prefix, data):
    if data in seen:
        return
    seen.add(data)
    name = f"{prefix}-{hashlib.sha1(data).hexdigest()[:12]}"
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
for v in json.load(open(os.path.join(vectors, "session_strings.json"))):
    put("valid", v["string"].encode())
for v in json.load(open(os.path.join(vectors, "invalid_session_strings.json"))):
    data = bytes.fromhex(v["input_utf8_hex"]) if "input_utf8_hex" in v else v["input"].encode()
    if len(data) <= 4096:
        put("invalid", data)
print(len(seen), "seeds in", out)
