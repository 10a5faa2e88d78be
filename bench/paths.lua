-- wrk script for bench/tracking.py: GET the paths of a file in turn, as a browser would.
--
-- Usage: wrk ... -s bench/paths.lua URL -- PATHS_FILE
--   PATHS_FILE  one request path a line (tracking pixel or link paths, or /healthz)
--
-- done() prints one line "PATHS {json}": 2xx/3xx answers, other answers, socket errors.

local threads = {}

function setup(thread)
   thread:set("id", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   paths = {}
   for line in io.lines(args[1]) do
      if #line > 0 then table.insert(paths, line) end
   end
   -- Each thread starts elsewhere in the list.
   index = (id * 7919) % #paths
   ok, failed = 0, 0
   request_headers = {
      ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
   }
end

function request()
   index = index % #paths + 1
   return wrk.format("GET", paths[index], request_headers)
end

function response(status, headers, body)
   if status < 400 then
      ok = ok + 1
   else
      failed = failed + 1
   end
end

function done(summary, latency, requests)
   local total_ok, total_failed = 0, 0
   for _, thread in ipairs(threads) do
      total_ok = total_ok + thread:get("ok")
      total_failed = total_failed + thread:get("failed")
   end
   io.write(string.format(
      'PATHS {"ok": %d, "failed": %d, "errors": %d, "duration_us": %d, ' ..
      '"p50_us": %d, "p99_us": %d}\n',
      total_ok, total_failed,
      summary.errors.connect + summary.errors.read + summary.errors.write
         + summary.errors.timeout,
      summary.duration, latency:percentile(50), latency:percentile(99)))
end
