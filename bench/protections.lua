-- wrk script for bench/protections.py: POST the seed-000 multipart body, optionally
-- with a fresh Idempotency-Key per request.
--
-- Usage: wrk ... -s bench/protections.lua URL -- BODY_FILE HEADERS_FILE KEYS
--   BODY_FILE     the multipart body, with "@@N@@" where a per-request counter goes
--   HEADERS_FILE  "Name: value" lines (tokens and Content-Type)
--   KEYS          "key": send Idempotency-Key: <thread>-<counter>; anything else: none
--
-- done() prints one line "PROTECTIONS {json}" with the accepted and refused counts.

local threads = {}
local counter = 0

function setup(thread)
   thread:set("id", #threads + 1)
   table.insert(threads, thread)
end

local function read(path)
   local file = assert(io.open(path, "rb"))
   local data = file:read("*a")
   file:close()
   return data
end

function init(args)
   local body = read(args[1])
   local at = assert(string.find(body, "@@N@@", 1, true), "no @@N@@ in the body")
   head, tail = string.sub(body, 1, at - 1), string.sub(body, at + 5)
   headers = {}
   for line in string.gmatch(read(args[2]), "[^\r\n]+") do
      local name, value = string.match(line, "^([^:]+):%s*(.*)$")
      headers[name] = value
   end
   keys = args[3] == "key"
   accepted, refused = 0, 0
end

function request()
   counter = counter + 1
   local n = id .. "-" .. counter
   if keys then
      headers["Idempotency-Key"] = "bench-" .. n
   end
   return wrk.format("POST", "/api/v1/emails", headers, head .. n .. tail)
end

function response(status, response_headers, body)
   if status == 202 then
      accepted = accepted + 1
   else
      refused = refused + 1
      if refused <= 3 then
         io.stderr:write("refused " .. status .. ": " .. string.sub(body, 1, 200) .. "\n")
      end
   end
end

function done(summary, latency, requests)
   local total_accepted, total_refused = 0, 0
   for _, thread in ipairs(threads) do
      total_accepted = total_accepted + thread:get("accepted")
      total_refused = total_refused + thread:get("refused")
   end
   io.write(string.format(
      'PROTECTIONS {"accepted": %d, "refused": %d, "duration_us": %d, ' ..
      '"p50_us": %d, "p99_us": %d}\n',
      total_accepted, total_refused, summary.duration,
      latency:percentile(50), latency:percentile(99)))
end
