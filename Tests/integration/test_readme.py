# SPDX-License-Identifier: Apache-2.0
"""The README's curl walkthrough, run verbatim against a fresh vault, so the README cannot rot."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT, Server, binary_path

START = "<!-- walkthrough:start -->"
END = "<!-- walkthrough:end -->"


def walkthrough() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    assert text.count(START) == 1 and text.count(END) == 1, "README must hold exactly one walkthrough block"
    block = text.split(START, 1)[1].split(END, 1)[0]
    match = re.fullmatch(r"\s*```(?:sh|bash)\n(.*?)```\s*", block, re.S)
    assert match, "the walkthrough markers must enclose exactly one ```sh fenced block"
    return match.group(1)


def current_pyrogram_string() -> str:
    cases = json.loads((REPO_ROOT / "Tests/VaultCoreTests/Vectors/session_strings.json").read_text())
    case = next(c for c in cases if c["library"] == "pyrogram" and c["string_length"] == 362
                and c["fields"]["api_id"] > 0)
    return case["string"]


def test_walkthrough_block_is_extracted() -> None:
    script = walkthrough()
    assert "curl" in script and "$VAULT" in script and "$ROOT_TOKEN" in script and "$SESSION_STRING" in script
    # The walkthrough starts its own vault and captures the root token itself: nothing but the
    # session string comes from outside.
    assert "session-vault serve" in script and "ROOT_TOKEN=" in script and "VAULT=" in script


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def stop_vaults_started_in(folder: Path) -> None:
    """SIGKILLs any process still running in `folder` (the walkthrough's background vault, if the
    script failed before its step 6)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if Path(os.readlink(proc / "cwd")) == folder:
                os.kill(int(proc.name), signal.SIGKILL)
        except OSError:
            continue


def test_readme_walkthrough_runs(tmp_path: Path) -> None:
    """The block runs as a newcomer would run it: an empty folder, the binary on PATH, the session
    string, and nothing else (no master key, root token or storage set by the test). The vault it
    starts on the README's default address writes ./data; afterwards the test reopens that folder
    with the root token the walkthrough captured and checks that the session is a tombstone."""
    if shutil.which("jq") is None or shutil.which("curl") is None:
        pytest.fail("the README walkthrough needs curl and jq (apt-get install curl jq)", pytrace=False)
    if not port_is_free(8080):
        pytest.fail("the README walkthrough serves on its default address 127.0.0.1:8080, which is in use",
                    pytrace=False)
    binary = binary_path()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "session-vault").symlink_to(binary)
    work = tmp_path / "newcomer"
    work.mkdir()
    script = tmp_path / "walkthrough.sh"
    script.write_text(walkthrough())
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SESSION_VAULT_") and k != "PORT"
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update({"PATH": f"{bindir}:{env.get('PATH', '/usr/bin:/bin')}",
                "SESSION_STRING": current_pyrogram_string(), "NO_PROXY": "*", "no_proxy": "*"})
    try:
        done = subprocess.run(["bash", "-euo", "pipefail", str(script)], cwd=work, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    finally:
        # However the script ended, no vault it started outlives the test.
        stop_vaults_started_in(work)
    log = (work / "vault.log").read_text() if (work / "vault.log").exists() else ""
    assert done.returncode == 0, (
        f"README walkthrough failed with {done.returncode}\nstdout:\n{done.stdout.decode()[-3000:]}\n"
        f"stderr:\n{done.stderr.decode()[-3000:]}\nserver log:\n{log[-3000:]}")
    # What step 0 says happened did happen: a new vault in ./data, its key beside it, 0600.
    assert (work / "data" / "vault.db").is_file()
    assert stat.S_IMODE((work / "data" / "master.key").stat().st_mode) == 0o600
    root_tokens = re.findall(r"^root token: (\S+)$", (work / "vault.out").read_text(), re.M)
    assert len(root_tokens) == 1, "the first start prints the root token exactly once"
    # The walkthrough really did what it says: reopened, the session is a tombstone.
    server = Server(work, test_routes=False, env={"SESSION_VAULT_DATA_DIR": str(work / "data")}).start()
    try:
        after = server.request("GET", "/v1/sessions/mybot", headers={"Authorization": f"Bearer {root_tokens[0]}"})
        assert after.status == 200 and json.loads(after.body)["revoked"] is True, after
    finally:
        server.stop(expect_exit=0)
