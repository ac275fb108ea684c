# SPDX-License-Identifier: Apache-2.0
"""The sessions each writer library makes for the matrix (one per writer, plus one edge case).

Values are chosen to exercise the formats: user ids above 2^32, a bot in test mode, every DC,
a legacy-32 pyrogram 1.4 string, Telethon on DC 2 and DC 4, and every peer kind the writer
knows (kurigram adds ``direct`` and ``community``; Telethon gets forums/direct too since it
stores any channel). Access hashes are deterministic per writer so failures are reproducible.
"""

import random

import expectations as ex


class Case:
    def __init__(self, key, writer, fields, self_kind="user", note=""):
        self.key, self.writer, self.fields, self.self_kind, self.note = key, writer, fields, self_kind, note

    @property
    def is_telethon(self):
        return self.writer in ex.TELE

    def peers(self):
        rnd = random.Random(self.key)

        def h():
            return rnd.randrange(-(2 ** 63), 2 ** 63)

        self_id = self.fields["user_id"]
        peers = [
            {"kind": self.self_kind, "id": self_id, "access_hash": h(), "username": "Vault_Self_" + str(self_id)[-4:],
             "phone": None if self.self_kind == "bot" else "15550000099", "is_self": True, "title": "Me"},
            {"kind": "user", "id": 100000001, "access_hash": h(), "username": "Alice_Vault", "phone": "15550000001",
             "title": "Alice"},
            {"kind": "user", "id": 5000000001 if self_id != 5000000001 else 5000000003, "access_hash": h(),
             "title": "NoUsername NoPhone"},
            {"kind": "user", "id": 200000002, "access_hash": h(), "phone": "447700900002", "title": "PhoneOnly"},
            {"kind": "bot", "id": 6000000123, "access_hash": h(), "username": "VaultTestBot", "title": "Bot"},
            {"kind": "group", "id": 4000001, "title": "Basic group"},
            {"kind": "supergroup", "id": 1987654321, "access_hash": h(), "username": "Vault_Supergroup", "title": "SG"},
            {"kind": "channel", "id": 1234567890, "access_hash": h(), "title": "Channel no username"},
            {"kind": "channel", "id": 2345678901, "access_hash": h(), "username": "VaultNews", "title": "News"},
            {"kind": "supergroup", "id": 1500000000, "access_hash": h(), "usernames": ["MultiA", "MultiB"],
             "title": "Multi-username supergroup"},
            {"kind": "forum", "id": 1600000000, "access_hash": h(), "username": "Vault_Forum", "title": "Forum"},
        ]
        if self.writer in ("kurigram", "telethon", "telethon-1.42"):
            peers.append({"kind": "direct", "id": 1700000000, "access_hash": h(), "title": "Channel DMs"})
        if self.writer == "kurigram":
            peers.append({"kind": "community", "id": 1800000000, "access_hash": h(), "title": "Community"})
        return peers


def _tele(dc, test=False):
    addr, port = ex.address_for(test, dc)
    return {"server_address": addr, "port": port}


CASES = [
    Case("pyrogram", "pyrogram",
         {"dc_id": 2, "api_id": 12345, "test_mode": False, "user_id": 5000000000, "is_bot": False}),
    Case("hydrogram", "hydrogram",
         {"dc_id": 2, "api_id": 2040, "test_mode": True, "user_id": 6000000321, "is_bot": True},
         self_kind="bot", note="bot account on test DC 2 (WAL file)"),
    Case("kurigram", "kurigram",
         {"dc_id": 5, "api_id": 611335, "test_mode": False, "user_id": 7000000001, "is_bot": False}),
    Case("pyrofork", "pyrofork",
         {"dc_id": 3, "api_id": 94575, "test_mode": False, "user_id": 8000000002, "is_bot": False}),
    Case("telethon", "telethon", dict(dc_id=2, user_id=5000000042, **_tele(2))),
    Case("pyrogram-1.4", "pyrogram-1.4",
         {"dc_id": 4, "api_id": None, "test_mode": False, "user_id": 1234567, "is_bot": False},
         note="legacy-32 string, schema v2 file, no api_id"),
    Case("telethon-1.42", "telethon-1.42", dict(dc_id=4, user_id=123456789, **_tele(4))),
    Case("pyrofork-testdc4", "pyrofork",
         {"dc_id": 4, "api_id": 777, "test_mode": True, "user_id": 8100000000, "is_bot": False},
         note="test DC 4: outside every DC table (kurigram rejects it; no Telethon address)"),
]

BY_KEY = {c.key: c for c in CASES}
