# SPDX-License-Identifier: Apache-2.0
"""Issue 18 (a newcomer's first hour), on the real binary: version, --dev, the import file."""

from __future__ import annotations

import subprocess
from pathlib import Path

from api.vault import api_server, new_master_key, pyrogram_current_cases, run_to_exit
from conftest import binary_path


def test_version_flag_and_command_print_the_version() -> None:
    flag = subprocess.run([str(binary_path()), "--version"], capture_output=True, timeout=20)
    command = subprocess.run([str(binary_path()), "version"], capture_output=True, timeout=20)
    assert flag.returncode == 0 and command.returncode == 0, (flag.stderr, command.stderr)
    assert flag.stdout == command.stdout
    assert flag.stdout.decode().strip().count(".") == 2, flag.stdout


def test_dev_mode_says_loudly_that_it_keeps_nothing(tmp_path: Path) -> None:
    server = api_server(tmp_path / "dev", test_routes=False, args=["--dev"]).start()
    try:
        err = server.stderr()
        assert "DEVELOPMENT MODE" in err and "memory" in err and "throwaway" in err, err
    finally:
        server.stop(expect_exit=0)


def test_a_missing_import_file_exits_66_and_says_why(tmp_path: Path) -> None:
    env = {"SESSION_VAULT_LISTEN": "127.0.0.1:0", "SESSION_VAULT_STORAGE": "memory"}
    done = run_to_exit(env, ["--import-file", str(tmp_path / "nope.txt")], tmp_path)
    assert done.returncode == 66, (done.returncode, done.stderr)
    assert b"nope.txt" in done.stderr and b"No such file" in done.stderr, done.stderr


def test_a_bad_import_line_fails_before_the_root_token_is_printed(tmp_path: Path) -> None:
    good = pyrogram_current_cases()[0]["string"]
    path = tmp_path / "sessions.txt"
    path.write_text(f"# two good lines, then a bad one\nalpha {good}\nbeta {good}\ngamma not-a-session-string\n")
    env = {"SESSION_VAULT_LISTEN": "127.0.0.1:0", "SESSION_VAULT_DATA_DIR": str(tmp_path / "data")}
    done = run_to_exit(env, ["--import-file", str(path)], tmp_path)
    assert done.returncode == 65, (done.returncode, done.stderr)
    err = done.stderr.decode()
    assert "line 4" in err and "session_string" in err, err
    assert "session_string: session_string" not in err, err
    assert b"root token" not in done.stdout, "a root token was printed before the import file was refused"
    assert good.encode() not in done.stdout + done.stderr
    assert not (tmp_path / "data").exists(), "a refused start created the data folder"


def test_a_sealed_vault_logs_its_state_once_not_on_every_probe(vault_factory) -> None:
    v = vault_factory().start()
    v.stop(expect_exit=0)
    v.master_key = new_master_key()  # the wrong key: sealed
    v.start()
    for _ in range(20):
        assert v.client.get("/readyz", token=None).status == 503
        assert v.client.get("/v1/sessions").status == 503
    err = v.server.stderr()
    assert err.count("THE VAULT IS SEALED") == 1, err
    assert "request failed" not in err, err
    v.stop(expect_exit=0)
