# SPDX-License-Identifier: Apache-2.0
"""openapi.yaml is a valid OpenAPI 3.1 document, and the live binary conforms to it (schemathesis)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from api import matrix
from api.vault import VaultProcess
from conftest import REPO_ROOT

SPEC = REPO_ROOT / "openapi.yaml"


def test_spec_is_valid() -> None:
    import openapi_spec_validator as validator  # pinned in requirements.txt: never skipped
    from openapi_spec_validator.readers import read_from_filename
    document, _ = read_from_filename(str(SPEC))
    validator.validate(document)
    assert document["openapi"].startswith("3.1")


def implemented_routes() -> set[tuple[str, str]]:
    """(method, path) of every entry of the route table, read from the Swift sources."""
    import re
    found: set[tuple[str, str]] = set()
    for source in (REPO_ROOT / "Sources" / "VaultAPI").glob("*.swift"):
        for method, path in re.findall(r'Route\(\s*\.(get|put|post|patch|delete|head)\s*,\s*"([^"]+)"', source.read_text()):
            found.add((method, path))
    assert len(found) >= 10, f"the route table was not found in Sources/VaultAPI: {found}"
    return found


def test_every_implemented_route_is_in_the_spec() -> None:
    """The spec and the route table name the same methods on the same paths, both ways."""
    import yaml
    spec: set[tuple[str, str]] = set()
    for path, item in yaml.safe_load(SPEC.read_text())["paths"].items():
        spec |= {(method, path) for method in item if method in ("get", "put", "post", "patch", "delete", "head")}
    table = implemented_routes()
    assert table - spec == set(), f"routes missing from openapi.yaml: {sorted(table - spec)}"
    assert spec - table == set(), f"openapi.yaml documents routes the server lacks: {sorted(spec - table)}"


def test_schemathesis_against_the_live_binary(vault_factory, tmp_path: Path) -> None:
    schemathesis = Path(sys.executable).parent / "schemathesis"
    if not schemathesis.exists():
        pytest.fail("schemathesis is not installed (pip install -r Tests/integration/requirements.txt)", pytrace=False)
    v = vault_factory(storage="memory").start()
    env = dict(os.environ, SV_URL=v.server.url, SV_TOKEN=v.root_token, SV_MAX_EXAMPLES="20")
    tls = matrix.tls()
    if tls is not None:  # the https mode: schemathesis trusts the test CA only
        env["SV_CA"] = str(tls.ca)
    done = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "schemathesis.sh")], cwd=REPO_ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=240)
    out = done.stdout.decode("utf-8", "replace")
    (tmp_path / "schemathesis.out").write_text(out)
    assert done.returncode == 0, out[-6000:]
    assert " passed" in out.splitlines()[-1] or "passed" in out[-2000:], out[-2000:]
    assert v.server.alive(), "schemathesis crashed the vault"
    assert "request failed" not in v.server.stderr(), "a 5xx was logged:\n" + v.server.stderr()[-3000:]
