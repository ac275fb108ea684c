# SPDX-License-Identifier: Apache-2.0
"""`session-vault run` against the real vault over HTTPS (issue 20 item 6): the vault's
certificate comes from a test CA, which the wrapper trusts only through SESSION_VAULT_CACERT.

With the CA file the whole lease cycle runs (acquire with the export, renewals, release, a
signal while waiting); without it, with another CA, or with a certificate for another name the
wrapper stops at start with 78 and says why, before any child exists; an unusable CA file or one
given for an http:// address is a 78 as well.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from api.vault import new_master_key, new_root_token, pyrogram_current_cases
from test_tls import TLSServer, https_curl, make_ca, make_leaf

from .harness import Run, wait_until

SESSION = "bot"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("run-certs")
    make_ca(folder, "ca")
    make_ca(folder, "otherca")
    make_leaf(folder, "server", "ca", "subjectAltName=IP:127.0.0.1")
    make_leaf(folder, "elsewhere", "ca", "subjectAltName=DNS:vault.test")  # right CA, another name
    return folder


class TLSVault:
    """The real vault over HTTPS with one session and a token with lease and export on it."""

    def __init__(self, workdir: Path, certs: Path, cert: str = "server"):
        self.root = new_root_token()
        self.server = TLSServer(workdir, certs, test_routes=False, env={
            "SESSION_VAULT_TLS_CERT_FILE": str(certs / f"{cert}.pem"),
            "SESSION_VAULT_TLS_KEY_FILE": str(certs / f"{cert}.key"),
            "SESSION_VAULT_STORAGE": "memory", "SESSION_VAULT_MASTER_KEY": new_master_key(),
            "SESSION_VAULT_ROOT_TOKEN": self.root})
        self.server.ready_timeout = 30.0
        self.string = pyrogram_current_cases()[0]["string"]
        self.token = ""
        if cert == "server":  # the readiness probe and the set-up need a certificate for 127.0.0.1
            self.server.start()
            self._set_up()
        else:
            self._start_unprobed()

    def _start_unprobed(self) -> None:
        # A certificate for another name fails the harness's verified probe: wait for the port.
        from conftest import free_port
        self.server.port = free_port()
        with open(self.server.stdout_path, "ab") as out, open(self.server.stderr_path, "ab") as err:
            self.server.proc = subprocess.Popen(self.server.argv(), cwd=self.server.workdir,
                                                env=self.server.environment(), stdin=subprocess.DEVNULL,
                                                stdout=out, stderr=err)
        assert wait_until(lambda: "listening" in self.server.logs().lower() or not self.server.alive(), 30), \
            self.server.logs()[-2000:]
        assert self.server.alive(), self.server.logs()[-2000:]

    def _curl(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return https_curl(self.server, "-H", f"Authorization: Bearer {self.root}", *args)

    def _set_up(self) -> None:
        created = self._curl("-H", "Content-Type: application/json", "-o", "/dev/null", "-w", "%{http_code}",
                             "--data", json.dumps({"name": SESSION, "session_string": self.string}),
                             f"{self.server.url}/v1/sessions")
        assert created.stdout == b"201", created
        minted = self._curl("-H", "Content-Type: application/json",
                            "--data", json.dumps({"operations": ["lease", "export"], "sessions": [SESSION]}),
                            f"{self.server.url}/v1/tokens")
        self.token = json.loads(minted.stdout)["token"]

    @property
    def address(self) -> str:
        return f"https://127.0.0.1:{self.server.port}"

    def holder(self) -> str | None:
        reply = self._curl(f"{self.server.url}/v1/sessions/{SESSION}/lease")
        assert reply.returncode == 0, reply
        body = json.loads(reply.stdout or b"{}")
        return body.get("holder")

    def close(self) -> None:
        try:
            if self.server.alive():
                self.server.stop(timeout=10)
        finally:
            self.server.kill()


@pytest.fixture
def vault(tmp_path: Path, certs: Path):
    instance = TLSVault(tmp_path / "vault", certs)
    yield instance
    instance.close()


def run(vault: TLSVault, folder: Path, *, cacert: Path | None, token: str | None = None, **kwargs) -> Run:
    env = dict(kwargs.pop("env", {}))
    if cacert is not None:
        env["SESSION_VAULT_CACERT"] = str(cacert)
    return Run(folder, address=kwargs.pop("address", vault.address), token=token or vault.token, session=SESSION,
               env=env, **kwargs)


def test_with_the_ca_file_the_whole_lease_cycle_runs_over_https(vault, certs, tmp_path):
    # TTL 5: the wrapper renews every 5/3 s and gives the lease up after 4 s without a renewal,
    # so a child that runs 6 s and still exits with its own status proves the renewals worked.
    w = run(vault, tmp_path / "w", cacert=certs / "ca.pem", mode="exit", seconds=6, exit_code=3,
            flags=["--ttl", "5", "--holder", "tls-holder"])
    seen = w.started()
    assert seen["env"]["TG_SESSION"] == vault.string
    assert [k for k in seen["env"] if k.startswith("SESSION_VAULT_")] == []
    assert vault.holder() == "tls-holder"
    assert w.wait(30) == 3, w.stderr()
    assert "renewal" not in w.stderr() and "could not release" not in w.stderr(), w.stderr()
    assert vault.holder() is None  # released at the child's exit
    assert vault.string not in w.stderr() and vault.token not in w.stderr()


def test_a_signal_while_waiting_for_the_lease_over_https_ends_the_wrapper(vault, certs, tmp_path):
    first = run(vault, tmp_path / "first", cacert=certs / "ca.pem", mode="term", seconds=30,
                flags=["--holder", "first"])
    first.started()
    second = run(vault, tmp_path / "second", cacert=certs / "ca.pem", flags=["--wait", "30"])
    time.sleep(1.0)  # its acquisition is now in the vault's long poll (the lease is first's)
    assert second.proc.poll() is None, second.stderr()
    second.signal(signal.SIGTERM)
    assert second.wait(15) == 128 + signal.SIGTERM, second.stderr()
    assert not (tmp_path / "second" / "env.json").exists()
    first.signal(signal.SIGTERM)
    assert first.wait(15) == 0, first.stderr()


@pytest.mark.parametrize("cacert", [None, "otherca.pem"], ids=["no-ca-file", "another-ca"])
def test_a_vault_certificate_that_is_not_trusted_is_78_before_any_child(vault, certs, tmp_path, cacert):
    w = run(vault, tmp_path / "w", cacert=None if cacert is None else certs / cacert)
    assert w.wait(30) == 78, w.stderr()
    err = w.stderr()
    assert "not trusted" in err, err
    assert "SESSION_VAULT_CACERT" in err, err  # the hint (without) or the file checked (with another CA)
    assert not (tmp_path / "w" / "env.json").exists()
    assert vault.holder() is None


def test_a_certificate_for_another_name_is_78(certs, tmp_path):
    other = TLSVault(tmp_path / "vault", certs, cert="elsewhere")
    try:
        w = Run(tmp_path / "w", address=other.address, token="svt_unused", session=SESSION,
                env={"SESSION_VAULT_CACERT": str(certs / "ca.pem")})
        assert w.wait(30) == 78, w.stderr()
        assert "not trusted" in w.stderr() and "mismatch" in w.stderr(), w.stderr()
        assert not (tmp_path / "w" / "env.json").exists()
    finally:
        other.close()


def test_an_unusable_ca_file_or_one_for_http_is_78(vault, certs, tmp_path):
    cases = [
        (vault.address, str(tmp_path / "missing.pem"), "cannot be read"),
        (vault.address, str(certs / "server.key"), "no PEM certificate"),
        (f"http://127.0.0.1:{vault.server.port}", str(certs / "ca.pem"), "https://"),
    ]
    for index, (address, cacert, expected) in enumerate(cases):
        w = Run(tmp_path / f"w{index}", address=address, token=vault.token, session=SESSION,
                env={"SESSION_VAULT_CACERT": cacert})
        assert w.wait(30) == 78, (cacert, w.stderr())
        assert expected in w.stderr() and "SESSION_VAULT_CACERT" in w.stderr(), w.stderr()
        assert not (tmp_path / f"w{index}" / "env.json").exists()
    assert vault.holder() is None
