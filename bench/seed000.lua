-- wrk script: POST the seed-000 multipart body to /api/v1/emails.
--
-- Usage: wrk ... -s bench/seed000.lua URL -- BODY_FILE HEADERS_FILE [LIMIT MARKER]
--   BODY_FILE     the multipart body, with "@@N@@" where a per-request counter goes
--                 (in the subject, so no two requests are the same email)
--   HEADERS_FILE  "Name: value" lines (tokens and Content-Type)
--   LIMIT         optional: each thread stops once it had this many requests accepted (202)
--   MARKER        with LIMIT: a thread that stopped creates the file MARKER<thread id>
--                 (wrk's main thread sleeps out -d; the caller interrupts it with SIGINT
--                 once every thread left a marker)
--
-- done() prints one line "SEED000 {json}" with the accepted and refused counts.

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
   local headers = {}
   for line in string.gmatch(read(args[2]), "[^\r\n]+") do
      local name, value = string.match(line, "^([^:]+):%s*(.*)$")
      headers[name] = value
   end
   request_headers = headers
   limit = tonumber(args[3] or "0")
   marker = args[4]
   accepted, refused = 0, 0
end

function request()
   counter = counter + 1
   local body = head .. id .. "-" .. counter .. tail
   return wrk.format("POST", "/api/v1/emails", request_headers, body)
end

function response(status, headers, body)
   if status == 202 then
      accepted = accepted + 1
      if limit > 0 and accepted == limit then
         local file = assert(io.open(marker .. id, "w"))
         file:close()
         wrk.thread:stop()
      end
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
      'SEED000 {"accepted": %d, "refused": %d, "errors": %d, "duration_us": %d, ' ..
      '"p50_us": %d, "p99_us": %d}\n',
      total_accepted, total_refused,
      summary.errors.connect + summary.errors.read + summary.errors.write
         + summary.errors.timeout,
      summary.duration, latency:percentile(50), latency:percentile(99)))
end
