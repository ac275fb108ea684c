# SPDX-License-Identifier: Apache-2.0
"""With SESSION_VAULT_LOG_FORMAT=json, every line on stderr is one JSON object (the HTTP layer's
messages included) and none carries a secret."""

from __future__ import annotations

import json

from api.vault import pyrogram_current_cases


def test_json_logs_are_json_lines_without_secrets(vault_factory) -> None:
    v = vault_factory(env={"SESSION_VAULT_LOG_FORMAT": "json", "SESSION_VAULT_LOG_LEVEL": "debug"}).start()
    case = pyrogram_current_cases()[0]
    c = v.client
    assert c.create_string("logged", case["string"]).status == 201
    assert c.export("logged").status == 200
    assert c.with_token("svt_wrong_token_for_the_log_test").get("/v1/sessions").status == 401
    assert c.get("/v1/sessions/missing").status == 404
    v.stop(expect_exit=0)
    lines = v.server.stderr().splitlines()
    assert any("listening on" in json.loads(line)["msg"] for line in lines)
    for line in lines:
        record = json.loads(line)  # raises on any non-JSON line
        assert {"time", "level", "msg"} <= record.keys()
    text = "\n".join(lines)
    for secret in (case["string"], case["string"][:40], v.root_token, v.master_key,
                   "svt_wrong_token_for_the_log_test", case["expected_on_import"]["auth_key_hex"][:32]):
        assert secret not in text
