-- SPDX-License-Identifier: Apache-2.0
-- GET /v1/sessions/{name} (metadata JSON, no secret) for uniformly random preloaded names.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local C = dofile(dir .. "common.lua")
local reqs = {}
function init(args)
  local h = C.headers()
  for i, name in ipairs(C.names()) do reqs[i] = wrk.format("GET", "/v1/sessions/" .. name, h) end
  C.seed()
end
function request() return reqs[math.random(#reqs)] end
