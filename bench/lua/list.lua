-- SPDX-License-Identifier: Apache-2.0
-- GET /v1/sessions?limit=LIST_LIMIT&after={random preloaded name}: one page of metadata from a random
-- place in the key order (LIST_LIMIT default 100). Paging through everything is bench/listall.py.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local C = dofile(dir .. "common.lua")
local reqs = {}
function init(args)
  local h = C.headers()
  local limit = os.getenv("LIST_LIMIT") or "100"
  for i, name in ipairs(C.names()) do
    reqs[i] = wrk.format("GET", "/v1/sessions?limit=" .. limit .. "&after=" .. name, h)
  end
  C.seed()
end
function request() return reqs[math.random(#reqs)] end
