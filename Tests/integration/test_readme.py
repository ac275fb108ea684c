# SPDX-License-Identifier: Apache-2.0
"""The README's curl walkthrough, run verbatim against a fresh vault, so the README cannot rot."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT, Server

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


def test_readme_walkthrough_runs(tmp_path: Path) -> None:
    if shutil.which("jq") is None or shutil.which("curl") is None:
        pytest.fail("the README walkthrough needs curl and jq (apt-get install curl jq)", pytrace=False)
    root_token = "svt_" + secrets.token_urlsafe(32)
    server = Server(tmp_path / "vault", test_routes=False, env={
        "SESSION_VAULT_STORAGE": f"file:{tmp_path / 'vault' / 'data' / 'vault.db'}",
        "SESSION_VAULT_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "SESSION_VAULT_ROOT_TOKEN": root_token,
    }).start()
    try:
        script = tmp_path / "walkthrough.sh"
        script.write_text(walkthrough())
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("SESSION_VAULT_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
        env.update({"VAULT": server.url, "ROOT_TOKEN": root_token, "SESSION_STRING": current_pyrogram_string(),
                    "NO_PROXY": "*", "no_proxy": "*"})
        done = subprocess.run(["bash", "-euo", "pipefail", str(script)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert done.returncode == 0, (
            f"README walkthrough failed with {done.returncode}\nstdout:\n{done.stdout.decode()[-3000:]}\n"
            f"stderr:\n{done.stderr.decode()[-3000:]}\nserver log:\n{server.logs()[-3000:]}")
        # The walkthrough really did what it says: the session is now a tombstone.
        after = server.request("GET", "/v1/sessions/mybot", headers={"Authorization": f"Bearer {root_token}"})
        assert after.status == 200 and json.loads(after.body)["revoked"] is True, after
    finally:
        server.stop(expect_exit=0)
