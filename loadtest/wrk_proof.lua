-- GET /v1/proof/inclusion?index=I&size=S for random I in [0, S).
-- usage: wrk ... -s wrk_proof.lua http://127.0.0.1:PORT -- <tree_size S>
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "wrk_common.lua")

local size = 1

function init(args)
   size = tonumber(args[1]) or 1
   assert(size >= 1, "need a non-empty tree")
   math.randomseed(os.time() + tid * 15485863)
end

function request()
   local i = math.random(0, size - 1)
   return wrk.format("GET", string.format("/v1/proof/inclusion?index=%d&size=%d", i, size))
end
