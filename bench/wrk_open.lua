-- Open loop: GETs at a fixed rate whatever the answers take, latency counted from each
-- request's scheduled start (a stall cannot hide; no coordinated omission), as wrk2 does.
-- Run with one connection per thread (wrk -tC -cC): a thread's replies are then its own
-- requests' in order, so each keeps its own schedule at RATE/C per second.
-- Usage: wrk -tC -cC ... -s bench/wrk_open.lua URL -- PATHS_FILE RATE C
dofile("bench/wrk_report.lua")
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}
local paths, period_ms, due, sent_due
lat = {} -- read by done() in the main state through thread:get

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("tid", #threads)
end

function init(args)
  paths = read_paths(args[1])
  local rate, n = tonumber(args[2]), tonumber(args[3])
  period_ms = 1000 * n / rate
  due = now_ms() + ((tid or 1) - 1) * 1000 / rate
  math.randomseed(os.time() + (tid or 1))
end

function delay()
  local wait = due - now_ms()
  return wait > 0 and math.ceil(wait) or 0
end

function request()
  sent_due = due
  due = due + period_ms
  return wrk.format("GET", paths[math.random(#paths)])
end

function response(status, headers, body)
  lat[#lat + 1] = now_ms() - sent_due
end

function done(summary, latency, requests)
  local all = {}
  for _, t in ipairs(threads) do
    for _, v in ipairs(t:get("lat")) do all[#all + 1] = v end
  end
  table.sort(all)
  local function pct(p)
    if #all == 0 then return 0 / 0 end
    return all[math.max(1, math.min(#all, math.floor(p / 100 * #all + 0.5)))]
  end
  report(summary, #all, pct(50), pct(90), pct(99))
end
