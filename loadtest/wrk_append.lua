-- POST /v1/entries {"raw": "<base64 of 200 bytes>"} with a body that is unique per request.
-- usage: wrk ... -s wrk_append.lua http://127.0.0.1:PORT -- <run-nonce, 8 hex digits>
--
-- The log deduplicates identical entries (the second copy gets 200 and its old index), so every
-- payload starts with a 24-byte ASCII header "<nonce 8 hex><thread 4 hex><counter 12 hex>"
-- followed by a 176-byte pseudo-random tail fixed per thread. Because the header is a multiple
-- of 3 bytes, base64(header .. tail) == base64(header) .. base64(tail): the tail is encoded once
-- in init() and only the header per request. Statuses are counted: all must be 201.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "wrk_common.lua")

local HEADER_LEN = 24
local PAYLOAD_LEN = 200
local nonce = "00000000"
local counter = 0
local tail_b64
local headers = { ["Content-Type"] = "application/json" }

function init(args)
   nonce = args[1] or nonce
   assert(#nonce == 8, "nonce must be 8 hex digits")
   math.randomseed(tonumber(nonce, 16) + tid * 7919)
   local bytes = {}
   for i = 1, PAYLOAD_LEN - HEADER_LEN do bytes[i] = string.char(math.random(0, 255)) end
   tail_b64 = b64encode(table.concat(bytes))
end

statuses = {}

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function request()
   counter = counter + 1
   local head = string.format("%s%04x%012x", nonce, tid, counter)
   local body = '{"raw":"' .. b64encode(head) .. tail_b64 .. '"}'
   return wrk.format("POST", "/v1/entries", headers, body)
end
