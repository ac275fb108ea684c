-- SPDX-License-Identifier: Apache-2.0
-- Helpers shared by the workload scripts (wrk 4.1, LuaJIT). Each wrk thread has its own Lua state:
-- setup() runs in the main state and hands every thread a number; init() then runs inside the thread.
local M = {}
local threads = 0
local thread_list = {}

function setup(thread)
  threads = threads + 1
  thread:set("thread_no", threads)
  thread_list[threads] = thread
end

-- COUNT_STATUS=1: count responses per status code (a response() callback makes wrk parse every
-- response into Lua, which costs wrk CPU, so it is off for measured runs).
if os.getenv("COUNT_STATUS") == "1" then
  status_counts = {}
  function response(status, headers, body)
    status_counts[status] = (status_counts[status] or 0) + 1
  end
end

-- Authorization header from SV_BENCH_TOKEN (bench/bench.env). CONNECTION_CLOSE=1 adds
-- `Connection: close`: a new connection (over TLS, a full handshake) for every request.
function M.headers(extra)
  local h = { ["Authorization"] = "Bearer " .. assert(os.getenv("SV_BENCH_TOKEN"), "SV_BENCH_TOKEN unset") }
  if os.getenv("CONNECTION_CLOSE") == "1" then h["Connection"] = "close" end
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

-- The preloaded session names (NAMES_FILE, written by preload.py), as an array.
function M.names()
  local path = assert(os.getenv("NAMES_FILE"), "NAMES_FILE unset")
  local out = {}
  for line in io.lines(path) do
    if line ~= "" then out[#out + 1] = line end
  end
  assert(#out > 0, "no names in " .. path)
  return out
end

function M.seed()
  math.randomseed(os.time() + 1000003 * (thread_no or 0))
end

-- One machine-readable line, parsed by run.sh. non2xx = wrk's status errors (status >= 400).
function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "WRK rps=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f requests=%d non2xx=%d sock_errors=%d\n",
    summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, summary.requests, e.status,
    e.connect + e.read + e.write + e.timeout))
  if os.getenv("COUNT_STATUS") == "1" then
    local total = {}
    for _, t in ipairs(thread_list) do
      for code, n in pairs(t:get("status_counts") or {}) do total[code] = (total[code] or 0) + n end
    end
    local parts = {}
    for code, n in pairs(total) do parts[#parts + 1] = code .. ":" .. n end
    table.sort(parts)
    io.write("STATUS " .. table.concat(parts, " ") .. "\n")
  end
end

return M
