-- SPDX-License-Identifier: Apache-2.0
-- Helpers shared by the workload scripts (wrk 4.1, LuaJIT). Each wrk thread has its own Lua state:
-- setup() runs in the main state and hands every thread a number; init() then runs inside the thread.
local M = {}
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_no", threads)
end

-- Authorization header from SV_BENCH_TOKEN (bench/bench.env).
function M.headers(extra)
  local h = { ["Authorization"] = "Bearer " .. assert(os.getenv("SV_BENCH_TOKEN"), "SV_BENCH_TOKEN unset") }
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
end

return M
