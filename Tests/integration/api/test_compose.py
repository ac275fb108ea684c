# SPDX-License-Identifier: Apache-2.0
"""docs/compose.postgres.yaml, checked without Docker: its secret-making commands are run as
written, a PostgreSQL cluster stands in for its `db` service (the role and database the
`postgres` image makes from the same secret), and its two vault services run as real binaries
with the environment the file gives them. What cannot run here: the image build (`build: ..`),
which the Dockerfile's own check covers, and the published ports (the harness picks free
loopback ports instead of `0.0.0.0:8080`)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from api.test_postgres import Cluster, cluster, pytestmark  # noqa: F401  (the fixture and the skip)
from api.vault import Client, VaultProcess, pyrogram_current_cases, pyrogram_fields

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docs" / "compose.postgres.yaml"


def secret_commands(text: str) -> list[str]:
    """The shell lines the file's header tells a reader to run before `up`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "create them first" in line)
    commands = []
    for line in lines[start + 1:]:
        if not line.startswith("#   "):
            break
        commands.append(line[4:])
    return commands


def test_the_compose_file_runs_two_instances_on_one_database(cluster: Cluster, vault_factory, tmp_path: Path) -> None:
    text = COMPOSE.read_text()
    spec = yaml.safe_load(text)

    # The secrets, made by the header's own commands, in a folder laid out like the repository
    # (the file names them relative to docs/).
    (tmp_path / "docs").mkdir()
    commands = secret_commands(text)
    assert commands and any("secrets/root-token" in c for c in commands), commands
    for command in commands:
        subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=tmp_path, check=True)
    files = {name: (tmp_path / "docs" / entry["file"]).resolve() for name, entry in spec["secrets"].items()}
    for path in files.values():
        assert path.is_file() and path.stat().st_size > 0, path

    # The `db` service: the postgres image creates POSTGRES_USER with the password of
    # POSTGRES_PASSWORD_FILE and the database POSTGRES_DB; do the same on the test cluster.
    db = spec["services"]["db"]["environment"]
    user, database = db["POSTGRES_USER"], db["POSTGRES_DB"]
    password = files["db-password"].read_text().strip()
    assert re.fullmatch(r"[A-Za-z0-9+/=]+", password), "the header's password is base64"
    cluster.psql("postgres", "-c", f"ALTER ROLE {user} PASSWORD '{password}'")
    cluster.password_file.write_text(password + "\n")  # the other tests of this cluster keep working
    host_port = cluster.url.split("@", 1)[1].split("/", 1)[0]

    def environment(service: str) -> dict[str, str]:
        env = {}
        for key, value in spec["services"][service]["environment"].items():
            value = str(value)
            if key == "SESSION_VAULT_LISTEN":
                continue  # a free loopback port instead of 0.0.0.0:8080 (published as 127.0.0.1:808x)
            for name, path in files.items():
                value = value.replace(f"/run/secrets/{name}", str(path))
            env[key] = value.replace("@db:5432/", f"@{host_port}/")
        assert f"/{database}?" in env["SESSION_VAULT_STORAGE"], env
        return env

    # Both services come from the one anchor: the same storage and secrets.
    assert environment("vault-a") == environment("vault-b")
    env = environment("vault-a")
    storage = env.pop("SESSION_VAULT_STORAGE")
    a = vault_factory("a", storage=storage, master_key="", root_token="", env=env).start()
    b = vault_factory("b", storage=storage, master_key="", root_token="", env=env).start()
    token = files["root-token"].read_text().strip()
    on_a, on_b = Client(a.server, token), Client(b.server, token)

    case = pyrogram_current_cases()[0]
    assert on_a.create_string("compose-check", case["string"]).status == 201
    exported = on_b.export("compose-check", "pyrogram")
    assert exported.status == 200, exported
    assert pyrogram_fields(exported.text)["auth_key"] == pyrogram_fields(case["string"])["auth_key"]
    assert on_b.get("/readyz").status == 200
    assert on_a.with_token("svt_" + "x" * 43).get("/v1/sessions").status == 401
    for v in (a, b):
        logs = "".join(p.read_text(errors="replace") for p in v.log_files())
        for path in files.values():
            assert path.read_text().strip() not in logs, f"a secret of {path.name} reached the log"
