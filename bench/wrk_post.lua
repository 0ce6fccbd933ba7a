-- wrk script of bench_hooks.py: POSTs one JSON body, with a fresh hookInstance in every request, and
-- prints the latency percentiles (microseconds) and counts as one JSON line when done.
-- Usage: wrk ... -s bench/wrk_post.lua URL -- BODY_FILE
local prefix, suffix
local counter = 0
local PLACEHOLDER = "00000000-0000-4000-8000-000000000000"
local threads = 0

-- Each wrk thread has its own Lua state: its number keeps the hookInstances of two threads apart.
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  local body = file:read("*a")
  file:close()
  local at = assert(string.find(body, PLACEHOLDER, 1, true), "the body has no hookInstance placeholder")
  prefix = string.sub(body, 1, at - 1)
  suffix = string.sub(body, at + #PLACEHOLDER)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local id = string.format("%08x-0000-4000-8000-%012x", tid or 0, counter)
  return wrk.format(nil, nil, nil, prefix .. id .. suffix)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"p50": %d, "p99": %d, "requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d}\n',
    latency:percentile(50), latency:percentile(99), summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout))
end
