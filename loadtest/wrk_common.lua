-- Shared helpers for the bench_core.py / bench_attest.py wrk scripts (loaded with dofile by
-- each scenario).
--
-- Every scenario script gets: thread ids (`tid`, set in setup before init runs), a standard
-- base64 encoder, C2SP tile index formatting, and a done() that prints one machine-readable line:
--   BENCH_JSON {"requests":..,"latency_us":{..},"errors":{..},"statuses":{"201":..}}
-- benchlib.run_wrk parses that line; wrk's own text summary is printed as usual.
-- "statuses" is filled only by scripts that define a global response() counting into the
-- per-thread table `statuses` (wrk decides whether to call response() from the top-level
-- definitions, so a script must define it at load time, not in init()).

local threads = {}
local next_tid = 0

function setup(thread)
   thread:set("tid", next_tid)
   next_tid = next_tid + 1
   table.insert(threads, thread)
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local b64chars = {}
for i = 1, 64 do b64chars[i - 1] = B64:sub(i, i) end

-- Standard base64 (RFC 4648 section 4) with padding; canonical (unused bits are zero).
function b64encode(s)
   local out = {}
   local n = #s
   for i = 1, n, 3 do
      local a, b, c = s:byte(i, i + 2)
      local v = a * 65536 + (b or 0) * 256 + (c or 0)
      local c1 = math.floor(v / 262144) % 64
      local c2 = math.floor(v / 4096) % 64
      local c3 = math.floor(v / 64) % 64
      local c4 = v % 64
      out[#out + 1] = b64chars[c1] .. b64chars[c2]
         .. (b and b64chars[c3] or "=") .. (c and b64chars[c4] or "=")
   end
   return table.concat(out)
end

-- client/tiles.py format_index: 5 -> "005", 1234 -> "x001/234", 1234067 -> "x001/x234/067".
function format_index(n)
   local s = string.format("%03d", n % 1000)
   n = math.floor(n / 1000)
   while n > 0 do
      s = string.format("x%03d/", n % 1000) .. s
      n = math.floor(n / 1000)
   end
   return s
end

local function json_statuses()
   local total = {}
   for _, t in ipairs(threads) do
      local st = t:get("statuses")
      if type(st) == "table" then
         for k, v in pairs(st) do
            local key = tostring(k)
            total[key] = (total[key] or 0) + v
         end
      end
   end
   local parts = {}
   for k, v in pairs(total) do
      parts[#parts + 1] = string.format('"%s":%d', k, v)
   end
   return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
   local e = summary.errors
   -- A scenario script may define a global bench_extra(threads) returning more JSON members
   -- ('"key":value,...'), e.g. per-thread counters read with thread:get().
   local extra = ""
   if type(bench_extra) == "function" then
      extra = "," .. bench_extra(threads)
   end
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
         .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
         .. '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"p50":%d,"p75":%d,"p90":%d,'
         .. '"p99":%d,"p999":%d,"max":%d},"statuses":%s%s}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.stdev,
      latency:percentile(50), latency:percentile(75), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9), latency.max,
      json_statuses(), extra))
end
