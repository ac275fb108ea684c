# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the `session-vault run` suite: lease servers (fake now, the real vault when it has
the lease routes) and the fake on its own for the tests that read its request log."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from .lease_servers import FakeLeaseServer, RealLeaseServer

# RUN_WRAPPER_SERVERS=fake (or real) narrows the parametrised tests to one kind.
KINDS = [k for k in os.environ.get("RUN_WRAPPER_SERVERS", "fake,real").split(",") if k]


@pytest.fixture
def fake_server() -> Iterator[FakeLeaseServer]:
    server = FakeLeaseServer()
    yield server
    server.close()


@pytest.fixture(params=KINDS)
def lease_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """The fake lease server, or the real vault; the real one skips until it answers the lease route."""
    if request.param == "fake":
        server: object = FakeLeaseServer()
    else:
        server = RealLeaseServer(tmp_path / "vault")
        if not server.lease_routes_answer():
            server.close()
            pytest.skip("the vault binary does not answer POST /v1/sessions/{name}/lease yet (issue 16 item 1)")
    yield server
    server.close()  # type: ignore[attr-defined]
