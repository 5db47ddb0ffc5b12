-- wrk script: rotate through the request mix written by bench/mix.py, count statuses.
--
--   wrk -t2 -c64 -d30s --latency -s bench/mix.lua http://127.0.0.1:PORT -- MIXFILE
--
-- MIXFILE has one request a line: PATH<TAB>Header: value<TAB>...<TAB>=STATUS (the status it
-- should get; ignored here, see bench/mix.py). Each thread starts at its own offset.
-- done() prints one machine-readable line:
--   MIXRESULT requests=N duration_us=N rps=X p50_us=N p90_us=N p99_us=N max_us=N
--             s2xx=N s304=N s3xx=N s4xx=N s5xx=N other=N
--             connect=N read=N write=N timeout=N status_errors=N

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("id", #threads)
end

local function split(line, sep)
   local parts = {}
   for part in string.gmatch(line, "([^" .. sep .. "]+)") do
      table.insert(parts, part)
   end
   return parts
end

function init(args)
   local file = args[1]
   if not file then
      error("mix.lua needs the mix file: wrk ... -s mix.lua URL -- MIXFILE")
   end
   requests = {}
   for line in io.lines(file) do
      if line ~= "" then
         local parts = split(line, "\t")
         local headers = {}
         for i = 2, #parts do
            local name, value = string.match(parts[i], "^([^:]+):%s*(.*)$")
            if name then
               headers[name] = value
            end
         end
         table.insert(requests, wrk.format("GET", parts[1], headers))
      end
   end
   if #requests == 0 then
      error("mix file " .. file .. " is empty")
   end
   -- Spread the threads over the mix.
   index = ((id or 1) - 1) * math.floor(#requests / 2) % #requests
   s2xx, s304, s3xx, s4xx, s5xx, other = 0, 0, 0, 0, 0, 0
end

function request()
   index = index % #requests + 1
   return requests[index]
end

function response(status, headers, body)
   if status >= 200 and status < 300 then
      s2xx = s2xx + 1
   elseif status == 304 then
      s304 = s304 + 1
   elseif status >= 300 and status < 400 then
      s3xx = s3xx + 1
   elseif status >= 400 and status < 500 then
      s4xx = s4xx + 1
   elseif status >= 500 and status < 600 then
      s5xx = s5xx + 1
   else
      other = other + 1
   end
end

function done(summary, latency, requests)
   local counts = { s2xx = 0, s304 = 0, s3xx = 0, s4xx = 0, s5xx = 0, other = 0 }
   for _, thread in ipairs(threads) do
      for name, _ in pairs(counts) do
         counts[name] = counts[name] + (thread:get(name) or 0)
      end
   end
   local e = summary.errors
   local seconds = summary.duration / 1e6
   io.write(string.format(
      "MIXRESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
      "s2xx=%d s304=%d s3xx=%d s4xx=%d s5xx=%d other=%d " ..
      "connect=%d read=%d write=%d timeout=%d status_errors=%d\n",
      summary.requests, summary.duration, summary.requests / seconds,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      counts.s2xx, counts.s304, counts.s3xx, counts.s4xx, counts.s5xx, counts.other,
      e.connect, e.read, e.write, e.timeout, e.status))
end
