# SPDX-License-Identifier: Apache-2.0
"""Every refused request is audited the same way (issue 15 item 4): a 403 on metadata, status and
token reads leaves an `access.denied` row, as a 403 on an export or a write always did."""

from __future__ import annotations

from api.vault import expect_problem, pyrogram_current_cases


def test_every_403_leaves_an_access_denied_audit_row(vault_factory) -> None:
    v = vault_factory().start()
    root = v.client
    assert root.create_string("mybot", pyrogram_current_cases()[0]["string"]).status == 201
    assert root.create_string("alice", pyrogram_current_cases()[0]["string"]).status == 201
    scoped = root.create_token(operations=["read"], sessions=["mybot"], ttl_seconds=600)
    token = root.with_token(scoped["token"])
    refused = [
        ("GET", "/v1/sessions/alice"),  # metadata outside the scope
        ("GET", "/v1/sys/status"),      # needs admin
        ("GET", "/v1/tokens"),          # needs root
        ("GET", f"/v1/tokens/{scoped['accessor']}"),
        ("GET", "/v1/sessions/alice/export"),  # always audited: the reference row
    ]
    for method, target in refused:
        expect_problem(token.call(method, target), 403, "authorization")
    denied = [e for e in root.audit() if e["action"] == "access.denied" and e.get("accessor") == scoped["accessor"]]
    assert len(denied) == len(refused), denied
    v.stop(expect_exit=0)
