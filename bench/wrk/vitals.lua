-- POST /api/vitals, every request for a new agent (so the 10 s per-agent limit never
-- applies). Environment: KEY (Bearer key), RUN (agent id prefix, unique per run),
-- DELAY_MS (optional: each connection waits this long before its next request, which
-- paces the load at about connections * 1000 / DELAY_MS requests/s).
-- Prints one JSON line at the end: requests, seconds, status errors, latency percentiles (us).
local threads = {}
local counter = 1

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  n = 0
  non2xx = 0
  prefix = (os.getenv("RUN") or "run") .. "-" .. tid .. "-"
  pause = tonumber(os.getenv("DELAY_MS") or "0")
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. (os.getenv("KEY") or "")
end

function request()
  n = n + 1
  return wrk.format(nil, "/api/vitals", nil,
    '{"agentId":"' .. prefix .. n .. '","agentName":"bench","metrics":{"tokenConsumption":' .. (1000 + n % 5000) ..
    ',"tokenLimit":10000,"hallucinationRate":0.01,"loopCount":' .. (n % 3) .. ',"conflictCount":0}}')
end

function response(status, headers, body)
  if status ~= 200 then non2xx = non2xx + 1 end
end

if tonumber(os.getenv("DELAY_MS") or "0") > 0 then
  function delay() return pause end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("non2xx") end
  io.write(string.format(
    '{"requests":%d,"seconds":%.6f,"non2xx":%d,"socket_errors":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration / 1e6, bad,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
