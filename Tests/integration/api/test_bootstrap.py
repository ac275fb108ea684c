# SPDX-License-Identifier: Apache-2.0
"""Issue 18 item 4, on the real binary: the import (bootstrap) file of an ephemeral vault.

JSON lines carry what `POST /v1/sessions` takes (api_id, user_id, is_bot, ...) and scoped tokens
whose secrets come from the environment or a file; tab-separated lines work; the start logs how
many of each it loaded; a restart of a file vault finds them there and says so; a bad line stops
the start before storage is opened or a root token printed, naming the line and never a secret.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

from api.matrix import requires_memory_store
from api.vault import expect_problem, new_master_key, pyrogram_current_cases, run_to_exit, telethon_cases


def good_string() -> str:
    return pyrogram_current_cases()[0]["string"]


def telethon_string() -> str:
    return telethon_cases()[0]["string"]


def bot_secret() -> str:
    return "svt_" + secrets.token_urlsafe(32)


def write_bootstrap(path: Path, secret_file: Path) -> Path:
    lines = [
        "# sessions: space, tab, JSON",
        f"alpha {good_string()}",
        f"beta\t{good_string()}",
        json.dumps({"name": "bot1", "session_string": telethon_string(), "api_id": 12345, "user_id": 777,
                    "is_bot": True}),
        "",
        "# tokens: secrets from the environment and from a file, never inline",
        json.dumps({"token": {"display_name": "bot", "secret_env": "BOT1_VAULT_TOKEN", "operations": ["read", "export"],
                              "sessions": ["bot1"]}}),
        json.dumps({"token": {"secret_file": str(secret_file), "operations": ["read"], "prefixes": ["al"]}}),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def loaded_line(stderr: str) -> str:
    found = [line for line in stderr.splitlines() if "import file loaded" in line]
    assert len(found) == 1, stderr
    return found[0]


@requires_memory_store("a memory vault restarts empty, so the import file creates everything again")
def test_a_memory_vault_comes_back_with_its_sessions_fields_and_bot_tokens(vault_factory, tmp_path: Path) -> None:
    env_secret, file_secret = bot_secret(), bot_secret()
    secret_file = tmp_path / "reader.secret"
    secret_file.write_text(file_secret + "\n")
    bootstrap = write_bootstrap(tmp_path / "bootstrap.jsonl", secret_file)
    v = vault_factory(storage="memory", env={"BOT1_VAULT_TOKEN": env_secret}, args=["--import-file", str(bootstrap)])
    for _ in range(2):  # a restart of a memory vault: everything again, no manual step
        v.start()
        line = loaded_line(v.server.stderr())
        assert "3 sessions and 2 tokens created" in line, line
        root = v.client
        bot = root.get("/v1/sessions/bot1").json()
        assert (bot["api_id"], bot["user_id"], bot["is_bot"]) == (12345, 777, True), bot
        assert {s["name"] for s in root.list_all_sessions()} == {"alpha", "beta", "bot1"}

        # The bot's token works without the root token, within its scope only.
        as_bot = root.with_token(env_secret)
        assert as_bot.export("bot1", "pyrogram").status == 200
        expect_problem(as_bot.export("alpha", "pyrogram"), 403)
        expect_problem(as_bot.post("/v1/tokens", {"operations": ["read"], "sessions": ["bot1"]}), 403)
        as_reader = root.with_token(file_secret)
        assert as_reader.get("/v1/sessions/alpha").status == 200
        expect_problem(as_reader.export("alpha", "pyrogram"), 403)

        tokens = root.get("/v1/tokens").json()["items"]
        assert sorted(t["operations"] for t in tokens) == [["export", "read"], ["read"]], tokens
        audit = root.audit()
        assert {e["accessor"] for e in audit if e["action"] in ("session.create", "token.create")} == {"import"}
        out = v.server.stderr() + v.server.stdout_path.read_text()
        assert env_secret not in out and file_secret not in out, "a bootstrap secret reached the output"
        v.stop(expect_exit=0)


def test_a_file_vault_restart_finds_the_entries_there_and_reports_them(vault_factory, tmp_path: Path) -> None:
    secret = bot_secret()
    secret_file = tmp_path / "reader.secret"
    secret_file.write_text(bot_secret())
    bootstrap = write_bootstrap(tmp_path / "bootstrap.jsonl", secret_file)
    v = vault_factory(env={"BOT1_VAULT_TOKEN": secret}, args=["--import-file", str(bootstrap)]).start()
    assert "3 sessions and 2 tokens created" in loaded_line(v.server.stderr())
    # A revoked bot token stays revoked across restarts (the file does not resurrect it).
    accessor = next(t["accessor"] for t in v.client.get("/v1/tokens").json()["items"] if t["display_name"] == "bot")
    assert v.client.delete(f"/v1/tokens/{accessor}").status == 204
    v.stop(expect_exit=0)
    v.start()
    line = loaded_line(v.server.stderr())
    assert "0 sessions and 0 tokens created, 3 sessions and 2 tokens already there" in line, line
    assert len(v.client.get("/v1/tokens").json()["items"]) == 2
    expect_problem(v.client.with_token(secret).get("/v1/sessions/bot1"), 401)
    v.stop(expect_exit=0)


def refused(tmp_path: Path, content: str, env: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    path = tmp_path / "bootstrap.jsonl"
    path.write_text(content)
    full = {"SESSION_VAULT_LISTEN": "127.0.0.1:0", "SESSION_VAULT_DATA_DIR": str(tmp_path / "data"), **(env or {})}
    done = run_to_exit(full, ["--import-file", str(path)], tmp_path)
    assert b"root token" not in done.stdout, "a root token was printed before the import file was refused"
    assert not (tmp_path / "data").exists(), "a refused start created the data folder"
    return done.returncode, done.stderr.decode(), done.stdout


def test_a_weak_token_secret_is_refused_naming_the_line_and_never_shown(tmp_path: Path) -> None:
    weak = "a" * 40
    token = json.dumps({"token": {"secret_env": "WEAK", "operations": ["read"], "sessions": ["alpha"]}})
    code, err, out = refused(tmp_path, f"alpha {good_string()}\n{token}\n", {"WEAK": weak})
    assert code == 65, err
    assert "line 2" in err and "token.secret_env" in err and "weak" in err, err
    assert weak not in err and weak.encode() not in out
    short = "svt_short"
    code, err, out = refused(tmp_path, f"{token}\n", {"WEAK": short})
    assert code == 65 and "line 1" in err and "too short" in err, err
    assert short not in err


def test_an_inline_secret_and_a_missing_variable_are_refused(tmp_path: Path) -> None:
    inline = bot_secret()
    line = json.dumps({"token": {"secret": inline, "operations": ["read"], "sessions": ["alpha"]}})
    code, err, _ = refused(tmp_path, f"# a comment\n{line}\n")
    assert code == 65 and "line 2" in err and "never written in the import file" in err, err
    assert inline not in err
    line = json.dumps({"token": {"secret_env": "NOT_SET_ANYWHERE", "operations": ["read"], "sessions": ["alpha"]}})
    code, err, _ = refused(tmp_path, f"{line}\n")
    assert code == 65 and "line 1" in err and "NOT_SET_ANYWHERE" in err, err
    code, err, _ = refused(tmp_path, json.dumps({"token": {"secret_file": str(tmp_path / "nope"), "operations": ["read"],
                                                             "sessions": ["alpha"]}}) + "\n")
    assert code == 66 and "line 1" in err and "nope" in err, err


def test_a_bad_json_line_is_refused_by_the_create_routes_own_checks(tmp_path: Path) -> None:
    body = {"name": "alpha", "session_string": good_string(), "api_id": 0}
    code, err, _ = refused(tmp_path, f"beta\t{good_string()}\n{json.dumps(body)}\n")
    assert code == 65 and "line 2" in err and "api_id" in err, err
    body = {"name": "alpha", "session_string": good_string(), "colour": "blue"}
    code, err, _ = refused(tmp_path, json.dumps(body) + "\n")
    assert code == 65 and "line 1" in err and "colour" in err, err
    code, err, _ = refused(tmp_path, '{"name": "alpha",\n')
    assert code == 65 and "line 1" in err and "JSON" in err, err
    token = {"token": {"secret_env": "S", "operations": ["fly"], "sessions": ["alpha"]}}
    code, err, _ = refused(tmp_path, json.dumps(token) + "\n", {"S": bot_secret()})
    assert code == 65 and "line 1" in err and "token.operations" in err, err
    assert good_string() not in err


def test_the_root_token_cannot_be_a_bootstrap_token(tmp_path: Path, vault_factory) -> None:
    root = bot_secret()
    bootstrap = tmp_path / "b.jsonl"
    bootstrap.write_text(json.dumps({"token": {"secret_env": "SAME", "operations": ["read"], "sessions": ["a"]}}) + "\n")
    env = {"SESSION_VAULT_LISTEN": "127.0.0.1:0", "SESSION_VAULT_STORAGE": "memory", "SESSION_VAULT_ROOT_TOKEN": root,
           "SAME": root, "SESSION_VAULT_MASTER_KEY": new_master_key()}
    done = run_to_exit(env, ["--import-file", str(bootstrap)], tmp_path)
    err = done.stderr.decode()
    assert done.returncode == 65 and "line 1" in err and "root token" in err, err
    assert root not in err
    assert re.search(r"token\.secret", err), err
