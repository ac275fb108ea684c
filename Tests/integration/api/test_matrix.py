# SPDX-License-Identifier: Apache-2.0
"""The suite's mode (matrix.py) is really in effect: a vault serves the scheme and runs on the
engine the environment asked for, and a PostgreSQL database lives exactly as long as its vault."""

from __future__ import annotations

from api import matrix
from api.vault import VaultProcess, api_server, pyrogram_current_cases
from conftest import RawConnection, build_request


def test_every_vault_serves_the_modes_scheme(vault_factory, tmp_path) -> None:
    v = vault_factory(storage="memory").start()
    own = api_server(tmp_path / "own", test_routes=False, args=["--dev"]).start()
    try:
        for server in (v.server, own):
            assert server is not None and server.url.startswith(f"{matrix.SCHEME}://"), server.url
            assert server.request("GET", "/healthz").status == 200
            with RawConnection(server.port, timeout=10) as plain:  # plain HTTP to the same port
                plain.send(build_request("GET", "/healthz", headers=[("Connection", "close")]))
                answer = plain.read_response(timeout=10)
            if matrix.SCHEME == "https":
                assert answer.status == 400 and b"HTTPS" in answer.body, answer
            else:
                assert answer.status == 200, answer
        assert ("tls=on" in v.server.stderr()) == (matrix.SCHEME == "https")
    finally:
        own.stop(expect_exit=0)


def test_the_file_and_memory_kinds_run_on_the_modes_engine(vault_factory) -> None:
    for kind in ("file", "memory"):
        v: VaultProcess = vault_factory(storage=kind).start()
        expected = "postgres" if matrix.BACKEND == "postgres" else kind
        assert v.engine == expected
        assert v.client.get("/readyz", token=None).json()["engine"] == expected
        assert f'sv_storage_engine{{engine="{expected}"}} 1' in v.client.get("/metrics", token=None).text
        v.stop(expect_exit=0)


def test_a_database_lives_as_long_as_its_vault(vault_factory) -> None:
    v: VaultProcess = vault_factory().start()
    assert v.client.create_string("kept", pyrogram_current_cases()[0]["string"]).status == 201
    v.stop(expect_exit=0)
    v.start()  # the same store after a restart
    assert v.client.get("/v1/sessions/kept").status == 200
    v.stop(expect_exit=0)
    if matrix.BACKEND != "postgres":
        assert v.database is None and v.db_path.exists()
        return
    name = v.database
    assert name is not None
    def listed() -> set:
        return {row[0] for row in matrix.cluster().rows("postgres", "SELECT datname FROM pg_database")}

    assert name in listed()
    v.dispose()
    assert name not in listed() and v.database is None

