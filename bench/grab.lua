-- wrk script for the grab endpoint, PATCH /api/users/{seller}/coupons/{name}.
--
-- Case (a): every request is a fresh (customer, coupon) pair, so seckill grants each one
-- (201). bench/soldout.lua reuses this file for case (b). The same script runs against
-- nginx (the ceiling) and seckill, so the client-side cost is the same for both.
--
-- Arguments, after wrk's `--`, as key=value (all but tokens and paths optional):
--   tokens=FILE   one customer token per line (bench/setup.py writes tokens.txt)
--   paths=FILE    one grab path per line (coupons.txt)
--   offset=N      first pair number of this run (each seckill run gets its own slice)
--   span=N        pairs this run may use (default: all); split evenly over the threads
--   threads=N     wrk's -t (so each thread takes a disjoint part of the span)
--   interleave=1  thread t takes pairs offset + t, offset + t + threads, ... instead of a
--                 slice of its own, so that a run uses pairs offset .. offset +
--                 threads * max_sent - 1 and the next run can start right after them
--                 (bench/run's sustained runs)
--   mode=M        concat (default): request = prebuilt "PATCH path ...Authorization: "
--                   prefix .. prebuilt "token\r\n\r\n" suffix, one string concat;
--                 format: wrk.format("PATCH", path, {Authorization = token}) per request
--                   (the same bytes modulo header order, more Lua work per request);
--                 count: like concat, and also count response statuses (wrk then parses
--                   every response's headers, which costs client throughput; use it for
--                   a verification pass, not for the numbers).
--
-- Pair number g maps to customer g % #tokens and coupon floor(g / #tokens) % #paths:
-- distinct for g in [0, #tokens * #paths). A thread that runs out of its slice wraps
-- around (and reports it: those requests repeat pairs, so seckill answers 204).
--
-- done() prints one machine-readable line for bench/run:
--   RESULT requests=.. duration_us=.. rps=.. p50_us=.. p90_us=.. p99_us=.. max_us=..
--          err_connect=.. err_read=.. err_write=.. err_status=.. err_timeout=.. wrapped=..
--          max_sent=.. [status_NNN=..]
--   (max_sent: the most requests one thread built)

local thread_list = {}
local thread_count = 0

function setup(thread)
   thread:set("tid", thread_count)
   thread_count = thread_count + 1
   table.insert(thread_list, thread)
end

local function read_lines(path)
   local f = assert(io.open(path, "r"), "cannot open " .. tostring(path))
   local out = {}
   for line in f:lines() do
      if line ~= "" then out[#out + 1] = line end
   end
   f:close()
   assert(#out > 0, path .. " is empty")
   return out
end

local tokens, paths, prefixes, suffixes
local ntokens, npaths, start, limit, mode, stride

-- Globals (thread:get reads them in done()).
sent = 0
wrapped = 0
statuses = {}

function init(args)
   local opt = {}
   for _, a in pairs(args) do
      local k, v = string.match(a, "^([%w_]+)=(.*)$")
      if k then opt[k] = v end
   end
   tokens = read_lines(assert(opt.tokens, "tokens=FILE missing"))
   paths = read_lines(assert(opt.paths, "paths=FILE missing"))
   ntokens, npaths = #tokens, #paths
   mode = opt.mode or "concat"
   local threads = tonumber(opt.threads or "1")
   local offset = tonumber(opt.offset or "0")
   local span = tonumber(opt.span or tostring(ntokens * npaths))
   limit = math.floor(span / threads)
   if opt.interleave == "1" then
      start, stride = offset + tid, threads
   else
      start, stride = offset + tid * limit, 1
   end

   local host = wrk.headers["Host"]
   prefixes, suffixes = {}, {}
   for j = 1, npaths do
      prefixes[j] = "PATCH " .. paths[j] .. " HTTP/1.1\r\nHost: " .. host .. "\r\nAuthorization: "
   end
   for c = 1, ntokens do
      suffixes[c] = tokens[c] .. "\r\n\r\n"
   end
   if mode ~= "count" then
      response = nil -- wrk then skips header/body parsing entirely
   end
end

local floor = math.floor

function request()
   local k = sent
   sent = k + 1
   if k >= limit then
      wrapped = wrapped + 1
      k = k % limit
   end
   local g = start + k * stride
   local c = g % ntokens
   local j = floor(g / ntokens) % npaths
   if mode == "format" then
      return wrk.format("PATCH", paths[j + 1], { Authorization = tokens[c + 1] })
   end
   return prefixes[j + 1] .. suffixes[c + 1]
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local e = summary.errors
   local w = 0
   local max_sent = 0
   local st = {}
   for _, t in ipairs(thread_list) do
      w = w + (t:get("wrapped") or 0)
      max_sent = math.max(max_sent, t:get("sent") or 0)
      local s = t:get("statuses") or {}
      for code, n in pairs(s) do st[code] = (st[code] or 0) + n end
   end
   local line = string.format(
      "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d "
         .. "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d wrapped=%d "
         .. "max_sent=%d",
      summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      e.connect, e.read, e.write, e.status, e.timeout, w, max_sent)
   for code, n in pairs(st) do
      line = line .. string.format(" status_%d=%d", code, n)
   end
   io.write(line .. "\n")
end
