-- N requests pipelined per write (N = the script's first argument, default 16).
--
-- wrk parses the string that request() returns when it starts, counts the
-- requests in it, and then writes the next batch only once that many
-- responses came back. summary.requests counts responses (one per parsed
-- response), so requests/s is responses/s. Latency is recorded once per
-- batch: from writing the N requests to reading the Nth response.

local depth = 16
local batch = nil

init = function(args)
  depth = tonumber(args[1]) or 16
  local r = {}
  for i = 1, depth do
    r[i] = wrk.format(nil, "/")
  end
  batch = table.concat(r)
end

request = function()
  return batch
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.2f,"stdev":%.2f,"max":%d,"p50":%d,"p90":%d,"p99":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
