# SPDX-License-Identifier: Apache-2.0
"""openapi.yaml is a valid OpenAPI 3.1 document, and the live binary conforms to it (schemathesis)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from api.vault import VaultProcess
from conftest import REPO_ROOT

SPEC = REPO_ROOT / "openapi.yaml"


def test_spec_is_valid() -> None:
    import openapi_spec_validator as validator  # pinned in requirements.txt: never skipped
    from openapi_spec_validator.readers import read_from_filename
    document, _ = read_from_filename(str(SPEC))
    validator.validate(document)
    assert document["openapi"].startswith("3.1")


def test_every_implemented_route_is_in_the_spec() -> None:
    import yaml
    paths = set(yaml.safe_load(SPEC.read_text())["paths"])
    assert paths == {
        "/healthz", "/readyz", "/metrics", "/v1/sys/status", "/v1/sys/rotate", "/v1/sys/rewrap", "/v1/audit",
        "/v1/sessions", "/v1/sessions/{name}", "/v1/sessions/{name}/export", "/v1/sessions/{name}/peers",
        "/v1/sessions/{name}/lease",
        "/v1/tokens", "/v1/tokens/{accessor}",
    }


def test_schemathesis_against_the_live_binary(vault_factory, tmp_path: Path) -> None:
    schemathesis = Path(sys.executable).parent / "schemathesis"
    if not schemathesis.exists():
        pytest.fail("schemathesis is not installed (pip install -r Tests/integration/requirements.txt)", pytrace=False)
    v = vault_factory(storage="memory").start()
    env = dict(os.environ, SV_URL=v.server.url, SV_TOKEN=v.root_token, SV_MAX_EXAMPLES="20")
    done = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "schemathesis.sh")], cwd=REPO_ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=240)
    out = done.stdout.decode("utf-8", "replace")
    (tmp_path / "schemathesis.out").write_text(out)
    assert done.returncode == 0, out[-6000:]
    assert " passed" in out.splitlines()[-1] or "passed" in out[-2000:], out[-2000:]
    assert v.server.alive(), "schemathesis crashed the vault"
    assert "request failed" not in v.server.stderr(), "a 5xx was logged:\n" + v.server.stderr()[-3000:]
