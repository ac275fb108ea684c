# SPDX-License-Identifier: Apache-2.0
"""`session-vault rekey` driven as a user would: old key and new key through the environment."""

from __future__ import annotations

import os
import subprocess

from api.matrix import requires_file_store
from api.vault import new_master_key, pyrogram_current_cases
from conftest import _SCRUBBED_ENV_NAMES, _SCRUBBED_ENV_PREFIXES, binary_path


def run_rekey(env: dict[str, str], cwd) -> subprocess.CompletedProcess[bytes]:
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(_SCRUBBED_ENV_PREFIXES) and k not in _SCRUBBED_ENV_NAMES}
    full["HOME"] = str(cwd)
    full.update(env)
    return subprocess.run([str(binary_path()), "rekey"], cwd=cwd, env=full, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)


@requires_file_store("rekey is file-only: on PostgreSQL it exits 64, `rekey needs file storage`")
def test_rekey_moves_the_vault_to_a_new_master_key(vault_factory) -> None:
    v = vault_factory().start()
    case = pyrogram_current_cases()[0]
    assert v.client.create_string("rk", case["string"]).status == 201
    exported = v.client.export("rk").text
    v.stop(expect_exit=0)

    old_key, new_key = v.master_key, new_master_key()
    storage = {"SESSION_VAULT_STORAGE": f"file:{v.db_path}"}

    # A wrong current key changes nothing and says so (exit 78).
    wrong = run_rekey({**storage, "SESSION_VAULT_MASTER_KEY": new_master_key(),
                       "SESSION_VAULT_NEW_MASTER_KEY": new_key}, v.workdir)
    assert wrong.returncode == 78, wrong.stderr
    # No new key given: a usage/config error, nothing changed.
    missing = run_rekey({**storage, "SESSION_VAULT_MASTER_KEY": old_key}, v.workdir)
    assert missing.returncode == 78, missing.stderr

    ok = run_rekey({**storage, "SESSION_VAULT_MASTER_KEY": old_key, "SESSION_VAULT_NEW_MASTER_KEY": new_key}, v.workdir)
    assert ok.returncode == 0, ok.stderr
    for secret in (old_key, new_key):
        assert secret.encode() not in ok.stdout + ok.stderr + wrong.stderr + missing.stderr

    # The new key opens everything; the old one now seals the vault.
    v.master_key = new_key
    v.start()
    assert v.client.export("rk").text == exported
    v.stop(expect_exit=0)
    v.master_key = old_key
    v.start()
    assert v.client.get("/readyz", token=None).status == 503
    v.stop(expect_exit=0)
