-- wrk script for `make bench`: replay pre-signed terminal requests, each exactly once.
--
-- bench/payments.py writes one file per wrk thread (<prefix>.<thread>), a request per line:
--   PATH <TAB> SN <TAB> TIMESTAMP <TAB> NONCE <TAB> SIGNATURE <TAB> JSON-BODY
-- Every request carries its own nonce and client id, so none may be sent twice; the requests
-- are formatted once at start-up, which keeps wrk's CPU low while it drives the server.
-- At the end it prints one line, "REPLAY {json}", with the counts and latencies.

local threads = {}
local count = 0

function setup(thread)
  thread:set("id", count)
  count = count + 1
  table.insert(threads, thread)
end

function init(args)
  local prefix = args[1]
  prepared = {}
  for line in io.lines(prefix .. "." .. id) do
    local path, sn, ts, nonce, sig, body =
      line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    prepared[#prepared + 1] = wrk.format("POST", path, {
      ["Content-Type"] = "application/json",
      ["X-CC-Terminal"] = sn,
      ["X-CC-Key-Version"] = "1",
      ["X-CC-Timestamp"] = ts,
      ["X-CC-Nonce"] = nonce,
      ["X-CC-Signature"] = sig,
    }, body)
  end
  next_index = 0
  counts = { approved = 0, refused = 0, busy = 0, failed = 0, exhausted = 0 }
  sample = ""
end

function request()
  next_index = next_index + 1
  if next_index > #prepared then
    -- out of pre-signed requests: a replay would be refused (NONCE_REUSED) and is counted
    counts.exhausted = counts.exhausted + 1
    return prepared[#prepared]
  end
  return prepared[next_index]
end

function response(status, headers, body)
  if status == 200 then
    counts.approved = counts.approved + 1
  elseif status == 503 then
    counts.busy = counts.busy + 1
  elseif status >= 400 and status < 500 then
    counts.refused = counts.refused + 1
    if sample == "" then sample = body end
  else
    counts.failed = counts.failed + 1
    if sample == "" then sample = body end
  end
end

local function quote(text)
  return '"' .. text:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

function done(summary, latency, requests)
  local total = { approved = 0, refused = 0, busy = 0, failed = 0, exhausted = 0 }
  local first = ""
  for _, thread in ipairs(threads) do
    local c = thread:get("counts")
    for k, v in pairs(c) do total[k] = total[k] + v end
    if first == "" then first = thread:get("sample") end
  end
  io.write(string.format(
    'REPLAY {"duration_us": %d, "requests": %d, "approved": %d, "refused": %d, "busy": %d, '
      .. '"failed": %d, "exhausted": %d, "socket_errors": %d, "p50_us": %d, "p90_us": %d, '
      .. '"p99_us": %d, "max_us": %d, "sample": %s}\n',
    summary.duration, summary.requests, total.approved, total.refused, total.busy,
    total.failed, total.exhausted,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    quote(first:sub(1, 300))))
end
