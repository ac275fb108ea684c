-- SPDX-License-Identifier: Apache-2.0
-- GET /v1/sessions/{name}/export (default format: the 362-char Pyrogram string) for uniformly random
-- preloaded names. Requests are formatted once in init(); request() only picks one.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local C = dofile(dir .. "common.lua")
local reqs = {}
function init(args)
  local h = C.headers()
  for i, name in ipairs(C.names()) do reqs[i] = wrk.format("GET", "/v1/sessions/" .. name .. "/export", h) end
  C.seed()
end
function request() return reqs[math.random(#reqs)] end
