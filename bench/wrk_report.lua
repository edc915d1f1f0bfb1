-- Shared by the wrk scripts (loaded with dofile; wrk runs from the repository root):
-- done() prints one JSON line that bench/common.py reads instead of wrk's text report.
function report(summary, n, p50, p90, p99)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    '{"requests":%d,"duration_s":%.3f,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,'
      .. '"non_2xx":%d,"socket_errors":%d,"timeouts":%d}\n',
    n, seconds, n / seconds, p50, p90, p99, e.status, e.connect + e.read + e.write, e.timeout))
end

-- Closed loop: wrk's own latency histogram (microseconds).
function closed_loop_done(summary, latency, requests)
  report(summary, summary.requests, latency:percentile(50) / 1000,
    latency:percentile(90) / 1000, latency:percentile(99) / 1000)
end

-- Paths to request, one a line.
function read_paths(file)
  local paths = {}
  for line in io.lines(file) do
    if #line > 0 then paths[#paths + 1] = line end
  end
  assert(#paths > 0, "no paths in " .. file)
  return paths
end
