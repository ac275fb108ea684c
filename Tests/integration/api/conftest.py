# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the API end-to-end suite (the process harness is ../conftest.py; the HTTP/HTTPS and
SQLite/PostgreSQL matrix is matrix.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from api import matrix
from api.vault import VaultProcess


def pytest_report_header(config: pytest.Config) -> str:
    return f"session-vault API matrix: {matrix.describe()}"


@pytest.fixture(scope="session", autouse=True)
def matrix_run() -> Iterator[None]:
    """Checks the mode's prerequisites before the first test (the cluster answers, the CA is
    made); at the end drops any database a test left and removes the CA."""
    if matrix.BACKEND == "postgres":
        matrix.cluster()
    matrix.tls()
    yield
    matrix.teardown()


@pytest.fixture
def vault_factory(tmp_path: Path) -> Iterator:
    """Fresh vault processes for one test; every one is stopped (then killed) at teardown and its
    database, if the matrix gave it one, dropped."""
    made: list[VaultProcess] = []

    def make(name: str = "vault", **kwargs) -> VaultProcess:
        v = VaultProcess(tmp_path / f"{name}{len(made)}", **kwargs)
        made.append(v)
        return v

    yield make
    for v in made:
        try:
            if v.server is not None and v.server.alive():
                v.server.stop(timeout=10)
        finally:
            v.dispose()


@pytest.fixture(scope="module")
def module_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VaultProcess]:
    """One memory vault per module (PostgreSQL in that mode); it must still be alive and stop
    cleanly at the end."""
    v = VaultProcess(tmp_path_factory.mktemp("vault"), storage="memory").start()
    yield v
    try:
        assert v.server is not None and v.server.alive(), f"vault died\n{v.server.logs()[-3000:] if v.server else ''}"
        v.stop(expect_exit=0)
    finally:
        v.dispose()


@pytest.fixture(scope="module")
def root(module_vault: VaultProcess):
    return module_vault.client
