-- SPDX-License-Identifier: Apache-2.0
-- GET /healthz on one keep-alive connection per wrk connection: the server's HTTP ceiling.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local C = dofile(dir .. "common.lua")
local req
function init(args) req = wrk.format("GET", "/healthz") end
function request() return req end
