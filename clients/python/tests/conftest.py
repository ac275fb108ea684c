# SPDX-License-Identifier: Apache-2.0
import base64
import os
import struct
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fake_vault import FakeVault  # noqa: E402

TOKEN = "tok-" + "s3cret" * 4
KEY = bytes(range(256))


def pyrogram_string(dc_id=2, api_id=12345, test_mode=False, key=KEY, user_id=777000, is_bot=True):
    packed = struct.pack(">BI?256sQ?", dc_id, api_id, test_mode, key, user_id, is_bot)
    return base64.urlsafe_b64encode(packed).decode().rstrip("=")


def telethon_string(dc_id=2, ip="149.154.167.51", port=443, key=KEY):
    import ipaddress

    packed = struct.pack(">B4sH256s", dc_id, ipaddress.ip_address(ip).packed, port, key)
    return "1" + base64.urlsafe_b64encode(packed).decode()


@pytest.fixture
def vault():
    v = FakeVault(token=TOKEN).start()
    yield v
    v.stop()


def wait_until(predicate, timeout=10.0, what="condition"):
    """Bounded poll for an observable event (the fake vault's state)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
