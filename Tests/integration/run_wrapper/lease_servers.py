# SPDX-License-Identifier: Apache-2.0
"""The lease servers the wrapper tests run against: the fake (fake_vault.py) or the real vault.

Both offer the same small interface, so a test written once runs against either:

* `address`, `token` (lease and export on `session`), `session`, `strings` (format -> string)
* `lock_delay` (seconds), `holder()` (the current holder or None)
* `force_loss()` (the lease ends under its holder: a break), `go_down()` / `come_back()` (the
  vault stops answering, then answers again on the same address with its leases)
"""

from __future__ import annotations

import secrets
import signal
from pathlib import Path

from api.vault import VaultProcess, pyrogram_current_cases
from conftest import Server

from .fake_vault import FakeVault

SESSION = "bot"
LOCK_DELAY = 6  # seconds; the SIGSTOP proof needs TTL (5) < pause < TTL + lock-delay


class FakeLeaseServer:
    kind = "fake"

    def __init__(self) -> None:
        case = pyrogram_current_cases()[0]
        self.token = "svt_" + secrets.token_urlsafe(32)
        self.session = SESSION
        # The fake hands out what it was given; the telethon text only has to differ.
        self.strings = {"pyrogram": case["string"], "telethon": "1" + case["string"][::-1]}
        self.lock_delay = LOCK_DELAY
        self.fake = FakeVault(self.token, {SESSION: self.strings, "other": {"pyrogram": "x"}},
                              lock_delay=LOCK_DELAY).start()

    @property
    def address(self) -> str:
        return self.fake.address

    def holder(self) -> str | None:
        return self.fake.holder(self.session)

    def force_loss(self) -> None:
        self.fake.force_loss(self.session)

    def go_down(self) -> None:
        self.fake.go_down()

    def come_back(self) -> None:
        self.fake.come_back()

    def close(self) -> None:
        self.fake.stop()


class RealLeaseServer:
    """The real vault (file storage, so that leases survive a SIGKILL and restart)."""

    kind = "real"

    def __init__(self, workdir: Path) -> None:
        self.vault = VaultProcess(workdir, env={"SESSION_VAULT_LEASE_LOCK_DELAY_SECONDS": str(LOCK_DELAY)}).start()
        self.lock_delay = LOCK_DELAY
        self.session = SESSION
        root = self.vault.client
        reply = root.create_string(SESSION, pyrogram_current_cases()[0]["string"])
        assert reply.status == 201, reply
        self.strings = {}
        for fmt in ("pyrogram", "telethon"):
            exported = root.export(SESSION, fmt)
            assert exported.status == 200, exported
            self.strings[fmt] = exported.text.strip()
        self.token = ""

    def lease_routes_answer(self) -> bool:
        """True when this vault has the lease routes: a token with the `lease` operation can be
        made, and with it a free session's lease taken and released."""
        made = self.vault.client.post("/v1/tokens", {"operations": ["lease", "export"], "sessions": [SESSION]})
        if made.status != 201:
            return False
        self.token = made.json()["token"]
        client = self.vault.client.with_token(self.token)
        reply = client.post(f"/v1/sessions/{SESSION}/lease", {"holder": "probe", "ttl_seconds": 5, "wait_seconds": 0})
        if reply.status != 201:
            return False
        lease_id = reply.json()["lease_id"]
        released = client.delete(f"/v1/sessions/{SESSION}/lease", headers={"Session-Vault-Lease": lease_id})
        return released.status in (200, 204)

    @property
    def address(self) -> str:
        assert self.vault.server is not None
        return self.vault.server.url

    def holder(self) -> str | None:
        reply = self.vault.client.get(f"/v1/sessions/{SESSION}/lease")
        return reply.json().get("holder") if reply.status == 200 else None

    def force_loss(self) -> None:
        reply = self.vault.client.delete(f"/v1/sessions/{SESSION}/lease")  # root, no header: a break
        assert reply.status in (200, 204), reply

    def go_down(self) -> None:
        self.vault.sigkill()

    def come_back(self) -> None:
        """Restarts on the same port (the wrapper's address does not change)."""
        old = self.vault.server
        assert old is not None
        run_dir = self.vault.workdir / f"run{self.vault.generation}"
        self.vault.generation += 1
        server = Server(run_dir, env=self.vault.env(), test_routes=False)
        server.workdir = self.vault.workdir
        server.port = old.port
        self.vault.server = server
        server._spawn_and_wait()

    def close(self) -> None:
        if self.vault.server is not None and self.vault.server.alive():
            self.vault.server.proc.send_signal(signal.SIGTERM)
        self.vault.kill()
