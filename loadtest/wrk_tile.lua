-- GET <path>/tile/<level>/<N> for random full tiles N in [0, full_tiles), under the URL's path
-- (empty for a tlog server; /<bucket> to read a scaled-out log straight from its bucket).
-- usage: wrk ... -s wrk_tile.lua http://127.0.0.1:PORT[/bucket/] -- <full_tiles> [level]
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "wrk_common.lua")

local full, level, base = 1, 0, ""

function init(args)
   full = tonumber(args[1]) or 1
   level = tonumber(args[2]) or 0
   assert(full >= 1, "need at least one full tile")
   base = (wrk.path or "/"):gsub("/+$", "") .. "/tile/" .. level .. "/"
   math.randomseed(os.time() + tid * 104729)
end

function request()
   local n = math.random(0, full - 1)
   return wrk.format("GET", base .. format_index(n))
end
