# SPDX-License-Identifier: Apache-2.0
"""Pytest wiring for the interop suite: offline guard for the runner process and the matrix
result collector that feeds docs/compatibility.md and the regression baseline."""

import ipaddress
import json
import os
import socket
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import matrix_report  # noqa: E402


def _loopback(address):
    if not isinstance(address, (tuple, list)) or not address:
        return True  # AF_UNIX
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True, scope="session")
def offline_runner():
    """The runner itself talks only to the vault on loopback: anything else is refused before
    the system call (the workers install the same guard in their own processes)."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def connect(self, address):
        if not _loopback(address):
            raise ConnectionRefusedError(f"interop network guard: connect to {address!r} refused")
        return real_connect(self, address)

    def connect_ex(self, address):
        if not _loopback(address):
            raise ConnectionRefusedError(f"interop network guard: connect_ex to {address!r} refused")
        return real_connect_ex(self, address)

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
    yield
    socket.socket.connect, socket.socket.connect_ex = real_connect, real_connect_ex


def pytest_configure(config):
    config._interop_cells = {}


def pytest_runtest_makereport(item, call):
    """Record every matrix cell's outcome (pass / fail / n.a. + reason)."""
    cell = getattr(item, "_interop_cell", None)
    if cell is None and "cell" in getattr(item, "fixturenames", ()):
        # Session fixtures (the vault) are set up before the function-scoped ``cell``; a skip
        # there must still be recorded.
        cell = item._interop_cell = _cell_record(item)
    if cell is None:
        return
    setup_skip = call.when == "setup" and call.excinfo is not None
    if call.when != "call" and not setup_skip:
        return
    store = item.config._interop_cells
    if call.excinfo is None:
        status = cell.get("status", "pass")
    elif call.excinfo.errisinstance(pytest.skip.Exception):
        status = "skipped"
        cell.setdefault("reason", str(call.excinfo.value))
    else:
        status = "fail"
        first = (str(call.excinfo.value).strip().splitlines() or [call.excinfo.typename])[0]
        cell["reason"] = (cell.get("reason", "") + " " + first)[:300].strip()
    cell["status"] = status
    cell["id"] = item.nodeid
    store[item.nodeid] = cell


def pytest_sessionfinish(session, exitstatus):
    cells = session.config._interop_cells
    if not cells:
        return
    out = os.environ.get("INTEROP_RESULTS", os.path.join(matrix_report.REPO, ".build-interop", "matrix.json"))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8") as fh:
        json.dump({"vault": os.environ.get("INTEROP_VAULT_DESCRIPTION", ""), "cells": list(cells.values())},
                  fh, indent=1, sort_keys=True)
    counts = matrix_report.count(cells.values())
    session.config._interop_summary = (out, counts)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    summary = getattr(config, "_interop_summary", None)
    if summary:
        out, counts = summary
        terminalreporter.write_line(
            "interop matrix: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + f" -> {out}"
        )


@pytest.fixture(scope="session")
def made(tmp_path_factory):
    """Every writer case made once by its own library (in parallel, one worker each)."""
    from concurrent.futures import ThreadPoolExecutor

    import cases
    import harness
    import sessionfile

    root = tmp_path_factory.mktemp("writers")

    def make(case):
        request = {"op": "make", "dir": str(root / case.key), "name": case.key,
                   "fields": case.fields, "peers": case.peers()}
        out = harness.call_worker(case.writer, request)
        out["info"] = sessionfile.inspect(out["file"])
        out["case"] = case.key
        return case.key, out

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(pool.map(make, cases.CASES))


@pytest.fixture
def cell(request):
    """A matrix cell record attached to the running test; conftest hooks collect it.

    Request it *before* fixtures that may skip (the vault) so a skipped cell is still recorded.
    """
    record = _cell_record(request.node)
    request.node._interop_cell = record
    return record


def _cell_record(item):
    params = getattr(item, "callspec", None)
    params = params.params if params else {}
    case = params.get("case")
    record = {"writer": getattr(case, "key", case), "reader": params.get("reader")}
    if "path" in params:
        record["path"] = "vault, imported as " + params["path"]
    if "fmt" in params:
        record["format"] = params["fmt"]
    return record
