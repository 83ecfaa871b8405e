-- GET one fixed path (the /healthz baseline): wrk's static request, plus the BENCH_JSON report.
-- usage: wrk ... -s wrk_get.lua http://127.0.0.1:PORT/healthz
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "wrk_common.lua")
