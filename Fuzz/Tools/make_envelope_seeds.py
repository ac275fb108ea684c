#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes seed envelopes for FuzzEnvelopeOpen: format v1 (Envelope.swift), key 00..1f,
context sessions/1/auth_key. Deterministic nonces: these are test inputs, not secrets."""
import hashlib, struct
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import os, sys
os.chdir(sys.argv[1] if len(sys.argv) > 1 else ".")
key = bytes(range(32))
def ctx(table, row, column):
    return b"".join(struct.pack(">I", len(p.encode())) + p.encode() for p in (table, row, column))
context = ctx("sessions", "1", "auth_key")
for name, term, pt in [("empty", 1, b""), ("short", 1, b"x"), ("term7", 7, b"hello envelope"),
                       ("authkey", 2, bytes(range(256))), ("maxterm", 0xFFFFFFFF, b"\0" * 32)]:
    header = bytes([1]) + struct.pack(">I", term)
    nonce = hashlib.sha256(name.encode()).digest()[:12]
    sealed = AESGCM(key).encrypt(nonce, pt, header + context)  # ciphertext || tag
    open(f"seed-{name}", "wb").write(header + nonce + sealed)
