-- SPDX-License-Identifier: Apache-2.0
-- POST /v1/sessions (JSON fields form) with a name never used before: "w<RUN_ID>t<thread>n<counter>".
-- One random 256-byte auth key per run (AUTH_KEY_B64), so the server's work (decode, validate,
-- encrypt, INSERT, commit) is the same as for distinct keys.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local C = dofile(dir .. "common.lua")
local h, key, prefix
local n = 0
function init(args)
  h = C.headers({ ["Content-Type"] = "application/json" })
  key = assert(os.getenv("AUTH_KEY_B64"), "AUTH_KEY_B64 unset")
  prefix = "w" .. assert(os.getenv("RUN_ID"), "RUN_ID unset") .. "t" .. tostring(thread_no or 0) .. "n"
end
function request()
  n = n + 1
  local body = '{"name":"' .. prefix .. n .. '","dc_id":' .. (n % 5 + 1) ..
    ',"api_id":2040,"test_mode":false,"user_id":' .. (5000000000 + n) ..
    ',"is_bot":' .. ((n % 4 == 0) and "true" or "false") .. ',"auth_key":"' .. key .. '"}'
  return wrk.format("POST", "/v1/sessions", h, body)
end
