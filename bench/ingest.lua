-- wrk script for bench/ingest: signed GitHub deliveries, a fresh X-GitHub-Delivery each.
--
--   wrk -t2 -c16 -d10s -s bench/ingest.lua URL -- BODY_FILE SIGNATURE PREFIX [ACKED_DIR] [EVENT]
--
-- BODY_FILE is sent as is; SIGNATURE is its X-Hub-Signature-256 (it covers the body only, so
-- it is the same for every request). Delivery ids are PREFIX-TTTT-4000-8000-NNNNNNNNNNNN
-- (thread, per-thread counter): unique within a run, and PREFIX makes them unique across runs.
-- When ACKED_DIR is given, each thread writes the delivery ids of its 202 answers (taken from
-- the response body) to ACKED_DIR/acked-<thread>.txt, so the caller can check they were stored.
-- done() prints one line "BENCH_JSON {...}" with counts and latency percentiles (µs).

local threads = {}
local nthreads = 0

function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  body = f:read("*a")
  f:close()
  prefix = args[3]
  local acked_dir = args[4] or ""
  headers = {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = args[5] or "issues",
    ["X-Hub-Signature-256"] = args[2],
  }
  sent, acked, other, statuses = 0, 0, 0, {}
  if acked_dir ~= "" then
    ids = assert(io.open(acked_dir .. "/acked-" .. tid .. ".txt", "w"))
    ids:setvbuf("full")
  end
end

function request()
  sent = sent + 1
  headers["X-GitHub-Delivery"] = string.format("%s-%04x-4000-8000-%012x", prefix, tid, sent)
  return wrk.format("POST", nil, headers, body)
end

function response(status, _headers, rbody)
  if status == 202 then
    acked = acked + 1
    if ids then
      local id = rbody:match('"delivery_id"%s*:%s*"([^"]+)"')
      ids:write(id or "?", "\n")
      -- wrk has no per-thread teardown hook: flush now and then, exit flushes the rest.
      if acked % 256 == 0 then ids:flush() end
    end
  else
    other = other + 1
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, _requests)
  local sent_total, acked_total, other_total, by_status = 0, 0, 0, {}
  for _, thread in ipairs(threads) do
    sent_total = sent_total + (thread:get("sent") or 0)
    acked_total = acked_total + (thread:get("acked") or 0)
    other_total = other_total + (thread:get("other") or 0)
    for status, count in pairs(thread:get("statuses") or {}) do
      by_status[status] = (by_status[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(by_status) do
    table.insert(parts, string.format('"%d":%d', status, count))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"sent":%d,"acked":%d,"other":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f},"other_statuses":{%s}}\n',
    summary.requests, summary.duration, sent_total, acked_total, other_total,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, table.concat(parts, ",")))
end
