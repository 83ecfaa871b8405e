-- GET /tile/0/<N> for random full level-0 tiles N in [0, full_tiles).
-- usage: wrk ... -s wrk_tile.lua http://127.0.0.1:PORT -- <full_tiles> [level]
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "wrk_common.lua")

local full, level = 1, 0

function init(args)
   full = tonumber(args[1]) or 1
   level = tonumber(args[2]) or 0
   assert(full >= 1, "need at least one full tile")
   math.randomseed(os.time() + tid * 104729)
end

function request()
   local n = math.random(0, full - 1)
   return wrk.format("GET", "/tile/" .. level .. "/" .. format_index(n))
end
