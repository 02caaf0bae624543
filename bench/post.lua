-- wrk script for bench/run.py: POST the body in $WRK_BODY (a file) with JSON headers, and
-- print the summary as one JSON line prefixed with "WRKJSON " (latencies in microseconds).
-- With $WRK_JSON_LENGTH, the body is KServe V2's binary extension (a JSON header of that many
-- bytes, then raw tensors): sent with Inference-Header-Content-Length instead.
local f = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
local json_length = os.getenv("WRK_JSON_LENGTH")
if json_length then
  wrk.headers["Inference-Header-Content-Length"] = json_length
  wrk.headers["Content-Type"] = "application/octet-stream"
else
  wrk.headers["Content-Type"] = "application/json"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"stdev":%.1f,' ..
    '"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency.stdev,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
