-- POST /v1/entries with pre-generated, signed DSSE submissions; every body is sent once.
-- usage: wrk ... -s wrk_attest.lua http://127.0.0.1:PORT -- <prefix> <off0,off1,...> <bytes> [path]
-- (path: /v1/entries by default; /api/v2/log/entries for Rekor v2 CreateEntryRequests)
--
-- bench_attest.py writes one file per wrk thread, <prefix><tid>.jsonl: one request body
-- {"dsse": <envelope>, "verifiers": [<PEM>]} per line (compact JSON has no raw newline). The
-- log deduplicates, so a body must never be sent twice to one log: init() reads this thread's
-- file from byte offset off<tid> (a line start: the first body not yet sent to this log) and
-- at most <bytes> bytes, and request() walks it line by line, in order, without wrapping.
-- When a thread runs out it stops (wrk.thread:stop()) and counts `exhausted`; the run is
-- then invalid (bench_attest.py reports it). done() adds per-thread `sent` counts to the
-- BENCH_JSON line so the next run in the same log starts after the last body sent, including
-- bodies still in flight when wrk stopped. Statuses are counted: all must be 201.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "wrk_common.lua")

local data = ""
local pos = 1
local path = "/v1/entries"
local headers = { ["Content-Type"] = "application/json" }

sent = 0
exhausted = 0
load_s = 0
statuses = {}

function init(args)
   local prefix, offsets, nbytes = args[1], args[2], tonumber(args[3])
   path = args[4] or path
   assert(prefix and offsets and nbytes, "usage: -- <prefix> <off0,off1,...> <bytes>")
   local offs = {}
   for o in string.gmatch(offsets, "%d+") do offs[#offs + 1] = tonumber(o) end
   local offset = assert(offs[tid + 1], "no offset for thread " .. tid)
   local t0 = os.clock()
   local f = assert(io.open(string.format("%s%d.jsonl", prefix, tid), "rb"))
   assert(f:seek("set", offset))
   data = f:read(nbytes) or ""
   f:close()
   load_s = os.clock() - t0
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function request()
   local e = data:find("\n", pos, true)
   if e == nil then
      -- Out of bodies: never repeat one. Stop this thread; the run is reported invalid.
      exhausted = exhausted + 1
      wrk.thread:stop()
      return wrk.format("GET", "/healthz")
   end
   local body = data:sub(pos, e - 1)
   pos = e + 1
   sent = sent + 1
   return wrk.format("POST", path, headers, body)
end

function bench_extra(threads)
   local s, x, l = {}, 0, 0
   for _, t in ipairs(threads) do
      s[#s + 1] = string.format("%d", t:get("sent"))
      x = x + t:get("exhausted")
      l = math.max(l, t:get("load_s"))
   end
   return string.format('"sent":[%s],"exhausted":%d,"load_s":%.3f', table.concat(s, ","), x, l)
end
