# SPDX-License-Identifier: Apache-2.0
"""Issue 14 (hardening), the storage and key items, on the real binary:

item 1  rekey and rotate never leave the vault under two master keys; one serving process per file
item 5  an existing vault on a read-only folder is never hidden behind an empty memory vault
item 6  a database removed while running is noticed; a key without its database refuses to start
item 8  the generated master key lives beside the database; a memory fallback uses a throwaway key
item 9  concurrent rotations, SIGHUP, and `writable` in /readyz and /v1/sys/status on a full disk
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from api.matrix import requires_file_store
from api.vault import (VaultProcess, api_server, expect_problem, new_master_key, pyrogram_current_cases,
                       run_to_exit, wait_until)
from conftest import _SCRUBBED_ENV_NAMES, _SCRUBBED_ENV_PREFIXES, binary_path

# The exit code of a process that finds the vault held by another (sysexits EX_TEMPFAIL).
IN_USE = 75


def run_cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(_SCRUBBED_ENV_PREFIXES) and k not in _SCRUBBED_ENV_NAMES}
    full["HOME"] = str(cwd)
    full.update(env)
    return subprocess.run([str(binary_path()), *args], cwd=cwd, env=full, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def session_string() -> str:
    return pyrogram_current_cases()[0]["string"]


def can_mount() -> bool:
    return os.geteuid() == 0


@contextmanager
def mounted_tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace')}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@contextmanager
def read_only_bind(folder: Path) -> Iterator[None]:
    """`folder` becomes read-only for everyone, root included (EROFS), until the block ends."""
    if subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount here")
    try:
        done = subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True)
        assert done.returncode == 0, done.stderr
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


# --------------------------------------------------------------------------
# Item 1: one master key opens every row, whatever rekey, rotate and a second process do
# --------------------------------------------------------------------------

@requires_file_store("rekey is file-only (exit 64 on PostgreSQL) and is refused through vault.db.lock")
def test_item1_rekey_while_serving_is_refused_and_the_vault_stays_under_one_key(vault_factory) -> None:
    v = vault_factory().start()
    assert v.client.create_string("k1", session_string()).status == 201
    exported = v.client.export("k1").text
    old_key, new_key = v.master_key, new_master_key()
    env = {"SESSION_VAULT_STORAGE": f"file:{v.db_path}", "SESSION_VAULT_MASTER_KEY": old_key,
           "SESSION_VAULT_NEW_MASTER_KEY": new_key}

    rekey = run_cli(["rekey"], env, v.workdir)
    assert rekey.returncode == IN_USE, (rekey.returncode, rekey.stderr[-2000:])
    message = rekey.stderr.decode()
    assert str(v.server.proc.pid) in message and "serv" in message.lower(), message
    for secret in (old_key, new_key):
        assert secret.encode() not in rekey.stdout + rekey.stderr

    assert v.client.post("/v1/sys/rotate").status == 200
    v.stop(expect_exit=0)

    # The refused rekey changed nothing: the old key still opens everything, rotation included.
    v.start()
    assert v.client.get("/readyz", token=None).status == 200
    assert v.client.export("k1").text == exported
    v.stop(expect_exit=0)

    # Offline, the same rekey succeeds, and then exactly the new key opens the vault.
    ok = run_cli(["rekey"], env, v.workdir)
    assert ok.returncode == 0, ok.stderr[-2000:]
    v.master_key = new_key
    v.start()
    assert v.client.export("k1").text == exported
    assert v.client.post("/v1/sys/rotate").status == 200
    v.stop(expect_exit=0)
    v.master_key = old_key
    v.start()
    assert v.client.get("/readyz", token=None).status == 503
    v.stop(expect_exit=0)


@requires_file_store("one process per vault.db (its flock); on PostgreSQL several instances share a database")
def test_item1_a_second_serve_on_the_same_database_exits_and_names_the_holder(vault_factory) -> None:
    first = vault_factory().start()
    assert first.client.create_string("one", session_string()).status == 201
    env = {"SESSION_VAULT_STORAGE": f"file:{first.db_path}", "SESSION_VAULT_MASTER_KEY": first.master_key,
           "SESSION_VAULT_ROOT_TOKEN": first.root_token, "SESSION_VAULT_LISTEN": "127.0.0.1:0"}
    second = run_to_exit(env, [], first.workdir)
    assert second.returncode == IN_USE, (second.returncode, second.stderr[-2000:])
    assert str(first.server.proc.pid) in second.stderr.decode(), second.stderr
    assert b"listening on" not in second.stderr + second.stdout

    # The first keeps serving, rotations included, and answers exports after them.
    assert first.client.post("/v1/sys/rotate").status == 200
    assert first.client.export("one").status == 200
    first.stop(expect_exit=0)

    # Once the first has stopped, the database is free again.
    again = vault_factory()
    again.db_path, again.master_key, again.root_token = first.db_path, first.master_key, first.root_token
    again.start()
    assert again.client.export("one").status == 200
    again.stop(expect_exit=0)


# --------------------------------------------------------------------------
# Item 5: a vault that exists but cannot be written is refused, never replaced by memory
# --------------------------------------------------------------------------

@requires_file_store("a read-only bind mount of the data folder holding vault.db")
@pytest.mark.skipif(not can_mount(), reason="a read-only folder for root needs a read-only mount")
def test_item5_an_existing_vault_on_a_read_only_folder_is_refused_not_emptied(vault_factory) -> None:
    v = vault_factory().start()
    assert v.client.create_string("kept", session_string()).status == 201
    v.stop(expect_exit=0)

    env = {**v.env(), "SESSION_VAULT_LISTEN": "127.0.0.1:0"}
    with read_only_bind(v.data_dir):
        done = run_to_exit(env, [], v.workdir)
    assert done.returncode == 77, (done.returncode, done.stderr[-2000:])
    err = done.stderr.decode()
    assert "read-only" in err and str(v.db_path) in err, err
    assert b"listening on" not in done.stderr + done.stdout
    assert "FALLING BACK" not in err

    # Writable again: everything is still there.
    v.start()
    assert v.client.export("kept").status == 200
    v.stop(expect_exit=0)


# --------------------------------------------------------------------------
# Item 6: a removed database is noticed; a master key without its database refuses to start
# --------------------------------------------------------------------------

@requires_file_store("deletes vault.db and its WAL under the running vault")
def test_item6_a_database_removed_while_running_refuses_writes_and_fails_readiness(vault_factory) -> None:
    v = vault_factory().start()
    assert v.client.create_string("before", session_string()).status == 201
    for suffix in ("", "-wal", "-shm"):
        Path(f"{v.db_path}{suffix}").unlink(missing_ok=True)

    reply = v.client.create_string("after", session_string())
    expect_problem(reply, 503)
    ready = v.client.get("/readyz", token=None)
    assert ready.status == 503, ready
    assert ready.json()["writable"] is False, ready.json()
    assert wait_until(lambda: "removed or replaced" in v.server.stderr(), timeout=10), v.server.stderr()[-2000:]
    v.stop(expect_exit=0)


def test_item6_a_data_folder_with_a_key_but_no_database_refuses_to_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"SESSION_VAULT_DATA_DIR": str(data), "SESSION_VAULT_LISTEN": "127.0.0.1:0",
           "SESSION_VAULT_ROOT_TOKEN": "svt_item6_token_0123456789abcdef"}
    first = api_server(tmp_path / "first", test_routes=False, env=env).start()
    first.stop(expect_exit=0)
    assert (data / "master.key").exists() and (data / "vault.db").exists()

    for suffix in ("", "-wal", "-shm"):
        Path(f"{data / 'vault.db'}{suffix}").unlink(missing_ok=True)
    gone = run_to_exit(env, [], tmp_path)
    assert gone.returncode == 65, (gone.returncode, gone.stderr[-2000:])
    assert b"--initialize" in gone.stderr, gone.stderr
    assert not (data / "vault.db").exists(), "a refused start created a database"

    (data / "vault.db").write_bytes(b"")
    empty = run_to_exit(env, [], tmp_path)
    assert empty.returncode == 65, (empty.returncode, empty.stderr[-2000:])
    assert b"empty" in empty.stderr, empty.stderr
    assert (data / "vault.db").stat().st_size == 0, "a refused start wrote into the empty file"

    # Told to, it starts a new vault with the key it has.
    (data / "vault.db").unlink()
    fresh = api_server(tmp_path / "fresh", test_routes=False, env=env, args=["--initialize"]).start()
    assert fresh.request("GET", "/readyz").status == 200
    fresh.stop(expect_exit=0)


@requires_file_store("writes a zero-length vault.db")
def test_item6_a_zero_length_database_is_refused_even_with_a_configured_key(vault_factory) -> None:
    v = vault_factory()
    v.data_dir.mkdir(parents=True)
    v.db_path.write_bytes(b"")
    done = run_to_exit({**v.env(), "SESSION_VAULT_LISTEN": "127.0.0.1:0"}, [], v.workdir)
    assert done.returncode == 65, (done.returncode, done.stderr[-2000:])
    assert b"empty" in done.stderr
    assert v.db_path.stat().st_size == 0


# --------------------------------------------------------------------------
# Item 8: the first start without a master key
# --------------------------------------------------------------------------

def test_item8_the_generated_key_lives_beside_the_database(tmp_path: Path) -> None:
    db = tmp_path / "some" / "dir" / "vault.db"
    env = {"SESSION_VAULT_LISTEN": "127.0.0.1:0"}
    first = api_server(tmp_path / "first", test_routes=False, env=env, args=["--storage", f"file:{db}"])
    first.workdir = tmp_path
    first.start()
    assert first.request("GET", "/readyz").status == 200
    first.stop(expect_exit=0)
    assert (db.parent / "master.key").exists()
    assert oct((db.parent / "master.key").stat().st_mode & 0o777) == oct(0o600)
    assert not (tmp_path / "data").exists()

    # With ./data present, the key still goes beside the database it opens.
    (tmp_path / "data").mkdir()
    other = tmp_path / "other" / "vault.db"
    second = api_server(tmp_path / "second", test_routes=False, env=env, args=["--storage", f"file:{other}"])
    second.workdir = tmp_path
    second.start()
    second.stop(expect_exit=0)
    assert (other.parent / "master.key").exists()
    assert not (tmp_path / "data" / "master.key").exists()


def test_item8_a_memory_fallback_without_a_key_uses_a_throwaway_key(tmp_path: Path) -> None:
    server = api_server(tmp_path / "s", test_routes=False, env={"SESSION_VAULT_LISTEN": "127.0.0.1:0"},
                    args=["--data-dir", "/proc/nope"])
    server.workdir = tmp_path
    server.start()
    try:
        ready = server.request("GET", "/readyz")
        assert ready.status == 200, ready
        assert b'"fallback":true' in ready.body
        err = server.stderr()
        assert "FALLING BACK TO MEMORY" in err and "throwaway" in err, err
    finally:
        server.stop(expect_exit=0)


@pytest.mark.skipif(os.geteuid() != 0, reason="running as another user needs root")
def test_item8_a_non_root_user_on_a_root_owned_data_folder_falls_back_to_memory() -> None:
    """The Dockerfile's settings (SESSION_VAULT_DATA_DIR=/data, storage file:/data/vault.db) run by a
    non-root user on a root-owned /data: memory fallback with a throwaway key, not exit 73."""
    import shutil
    import tempfile
    import urllib.request
    from conftest import free_port
    root = Path(tempfile.mkdtemp(prefix="sv-item8-", dir="/tmp"))
    try:
        root.chmod(0o755)
        data = root / "data"
        data.mkdir(mode=0o755)  # owned by root
        port = free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(_SCRUBBED_ENV_PREFIXES) and k not in _SCRUBBED_ENV_NAMES}
        env.update({"HOME": str(root), "SESSION_VAULT_LISTEN": f"127.0.0.1:{port}",
                    "SESSION_VAULT_DATA_DIR": str(data), "SESSION_VAULT_STORAGE": f"file:{data}/vault.db"})
        err_path = root / "stderr.log"
        with open(err_path, "wb") as err:
            proc = subprocess.Popen(["setpriv", "--reuid=10001", "--regid=10001", "--clear-groups",
                                     str(binary_path()), "serve"], cwd=root, env=env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        try:
            def ready() -> bool:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                        return r.status == 200
                except OSError:
                    return False
            assert wait_until(lambda: proc.poll() is not None or ready(), timeout=20)
            assert proc.poll() is None, (proc.returncode, err_path.read_text())
            assert ready()
            text = err_path.read_text()
            assert "FALLING BACK TO MEMORY" in text and "throwaway" in text, text
            assert list(data.iterdir()) == []
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------
# Item 9: concurrent rotations, SIGHUP, writable on a full disk
# --------------------------------------------------------------------------

def test_item9_concurrent_rotations_each_succeed_with_their_own_term(vault_factory) -> None:
    v = vault_factory().start()
    statuses: list[int] = []
    lock = threading.Lock()

    def rotate() -> None:
        reply = v.client.post("/v1/sys/rotate")
        with lock:
            statuses.append(reply.status)

    threads = [threading.Thread(target=rotate) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert statuses == [200] * 16, statuses
    keys = v.client.get("/v1/sys/status").json()["keys"]
    assert keys["current_term"] == 17 and [t["term"] for t in keys["terms"]] == list(range(1, 18)), keys
    v.stop(expect_exit=0)


def test_item9_sighup_neither_kills_nor_drains(vault_factory) -> None:
    v = vault_factory().start()
    v.server.proc.send_signal(signal.SIGHUP)
    assert v.client.get("/readyz", token=None).status == 200
    assert v.server.alive()
    assert v.client.create_string("hup", session_string()).status == 201
    v.stop(expect_exit=0)


@requires_file_store("puts vault.db on a 2 MB tmpfs and fills it")
@pytest.mark.skipif(not can_mount(), reason="a full disk is a small tmpfs here")
def test_item9_readiness_and_status_say_not_writable_on_a_full_disk(vault_factory, tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "small", "2m") as disk:
        filler = disk / "filler"
        v = vault_factory()
        v.db_path = disk / "vault.db"
        v.start()
        c = v.client
        body = c.get("/readyz", token=None).json()
        assert body["writable"] is True, body
        # Fill what is left, then one create fails for want of space.
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for _ in range(4096):
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        failed = None
        for i in range(200):
            reply = c.create_string(f"full{i}", session_string())
            if reply.status != 201:
                failed = reply
                break
        assert failed is not None, "the disk never filled"
        expect_problem(failed, 503)
        ready = c.get("/readyz", token=None)
        assert ready.json()["writable"] is False, ready.json()
        assert ready.json().get("writable_reason"), ready.json()
        assert c.get("/v1/sys/status").json()["storage"]["writable"] is False
        assert c.get("/v1/sessions/full0").status in (200, 404)  # reads still answer

        # Space again: the next write succeeds and the vault says it is writable.
        filler.unlink()
        assert c.create_string("after-full", session_string()).status == 201
        assert c.get("/readyz", token=None).json()["writable"] is True
        v.stop(expect_exit=0)


# --------------------------------------------------------------------------
# The durability evidence still holds with the lock and the write precheck
# --------------------------------------------------------------------------

def test_kill9_during_1000_concurrent_creates_ten_rounds_loses_nothing_acknowledged(vault_factory) -> None:
    """Ten rounds: 1,000 creates from 32 threads, SIGKILL once about half are acknowledged, restart
    (the kernel released the lock), and every acknowledged session exports its own string; then,
    on SQLite, `PRAGMA integrity_check` on the file. Every loop is bounded."""
    cases = pyrogram_current_cases()
    v = vault_factory().start()
    acknowledged: dict[str, str] = {}
    for round_ in range(10):
        names = [f"r{round_}-{i:04d}" for i in range(1000)]
        acked: list[str] = []
        others: list = []
        lock = threading.Lock()
        killed = threading.Event()
        cursor = iter(range(len(names)))

        def worker() -> None:
            client = v.client
            while not killed.is_set():
                with lock:
                    i = next(cursor, None)
                if i is None:
                    return
                try:
                    reply = client.post("/v1/sessions", {"name": names[i], "session_string": cases[i % len(cases)]["string"]},
                                        timeout=10)
                except Exception:  # noqa: BLE001 - reset, EOF or a cut response once the server is killed
                    return  # the server died under us: this one was never acknowledged
                if reply.status != 201:
                    with lock:
                        others.append(reply)
                    continue
                if reply.status == 201:
                    with lock:
                        acked.append(names[i])
                        if len(acked) >= 500 and not killed.is_set():
                            killed.set()
                            v.server.proc.send_signal(signal.SIGKILL)

        threads = [threading.Thread(target=worker) for _ in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert killed.is_set(), f"round {round_}: only {len(acked)} creates acknowledged; other answers: {others[:3]}"
        v.server.proc.wait(timeout=10)
        for name in acked:
            acknowledged[name] = cases[names.index(name) % len(cases)]["string"]
        v.start()
        listed = {s["name"] for s in v.client.list_all_sessions()}
        missing = set(acknowledged) - listed
        assert not missing, f"round {round_}: {len(missing)} acknowledged creates lost, e.g. {sorted(missing)[:3]}"
    for name in list(acknowledged)[::97]:
        assert v.client.export(name).text == acknowledged[name]
    v.stop(expect_exit=0)
    if v.engine == "file":
        assert v.sql_rows("PRAGMA integrity_check") == [("ok",)]
