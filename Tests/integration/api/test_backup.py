# SPDX-License-Identifier: Apache-2.0
"""README "Backups": SQLite's online copy of a running vault restores to a working vault.

The README tells operators to back up a live vault with `sqlite3 vault.db "VACUUM INTO ..."` (or
`.backup`) instead of copying the WAL database's file. This runs exactly that against a vault that
is serving and writing, then restores the copy under the same master key and exports from it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from api.matrix import requires_file_store
from api.vault import pyrogram_current_cases


@requires_file_store("sqlite3's online backup of vault.db, restored by copying the file")
@pytest.mark.parametrize("method", ["vacuum-into", "dot-backup"])
def test_an_online_backup_of_a_running_vault_restores(vault_factory, tmp_path: Path, method: str) -> None:
    sqlite3 = shutil.which("sqlite3")
    if sqlite3 is None:
        pytest.fail("the backup test needs the sqlite3 command (apt-get install sqlite3)", pytrace=False)
    cases = pyrogram_current_cases()
    live = vault_factory("live").start()
    before = cases[0]["string"]
    assert live.client.create_string("kept", before).status == 201
    # Committed but still only in the WAL: the live database file alone does not hold it yet.
    assert live.db_path.with_name("vault.db-wal").stat().st_size > 0
    backup = tmp_path / "backup" / "vault.db"
    backup.parent.mkdir()
    sql = f"VACUUM INTO '{backup}'" if method == "vacuum-into" else f".backup '{backup}'"
    done = subprocess.run([sqlite3, str(live.db_path), sql], capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    # The vault goes on serving and writing after the copy; the copy does not see that write.
    assert live.client.create_string("later", cases[1]["string"]).status == 201
    live.stop(expect_exit=0)

    restored = vault_factory("restored", master_key=live.master_key, root_token=live.root_token)
    restored.data_dir.mkdir(parents=True)
    shutil.copyfile(backup, restored.db_path)
    restored.start()
    exported = restored.client.export("kept", "pyrogram")
    assert exported.status == 200 and exported.text == before, exported
    assert restored.client.get("/v1/sessions/later").status == 404
    restored.stop(expect_exit=0)
