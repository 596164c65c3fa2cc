-- wrk script for the tasks-API scenarios of scripts/bench.
--
--   wrk -t2 -c64 -d10s --latency -s bench/tasks.lua http://127.0.0.1:PORT \
--       -- SCENARIO [USERS [TASKS_PER_USER [USER_BASE [TOKENS]]]]
--
-- SCENARIO is one of
--   create    POST  /api/{user}/tasks           a new body per request
--   get       GET   /api/{user}/tasks/{id}      an existing task of that user
--   list      GET   /api/{user}/tasks?limit=50
--   patch     PATCH /api/{user}/tasks/{id}      {"priority":"low"}
--   complete  POST  /api/{user}/tasks/{id}/complete   (no body: a toggle)
--   mixed     each request drawn at random: 35 % list, 35 % get (70 %
--             reads), 20 % create, 10 % complete, as above (the weights
--             of bench/pgbench's mixed run in scripts/bench)
--
-- Users and ids follow the seed layout of scripts/bench (bench/seed.sql):
-- user "<USER_BASE + u>" for u = 1..USERS (default 64, 200, 10000) owns the
-- task ids (u - 1) * TASKS_PER_USER + 1 .. u * TASKS_PER_USER. Each request
-- picks u and the task uniformly at random, as bench/pgbench/*.sql do.
--
-- TOKENS, when given, is a file of "USER TOKEN" lines: each request carries
-- "Authorization: Bearer TOKEN" of its user (the service verifies an HS256
-- JWT whose sub must equal the path's user). Without it no Authorization
-- header is sent (the service must run with AUTH_DISABLED=1).
--
-- With BENCH_CHECK_STATUS=1 in the environment the script also counts the
-- response statuses per thread and prints them at the end ("status 201 N"),
-- with the first body of an unexpected one ("unexpected 404 {...}").
-- scripts/bench sets it for the warm-up run only: a response() function
-- makes wrk parse every response's headers and body, which costs it CPU.
--
-- With BENCH_LUA_RATE=R (requests per second, all threads together) and
-- BENCH_LUA_THREADS=T (wrk's -t) in the environment, the script paces the
-- requests at R/s (wrk is closed-loop; wrk2's -R is not in Debian): each
-- thread hands out send times ("slots") 1/(R/T) s apart, and delay() makes
-- each connection, when its previous response is in, wait for the next free
-- slot of its thread. The connections are the concurrency limit: if none is
-- free when a slot comes, that slot is skipped rather than made up later,
-- so the achieved rate (wrk's Requests/sec) is below R when the server
-- cannot keep up; scripts/bench prints it. wrk rounds delays down to whole
-- milliseconds; a request sent early only moves the next slots later.
-- The skipped slots are counted (per thread, summed in done()).
--
-- done() always prints, after wrk's own summary, the percentiles of wrk's
-- latency histogram (microseconds, from the request's actual send) and the
-- pacing counts, for scripts/bench to parse:
--   bench-latency-us p50 P p90 P p99 P p99.9 P max M
--   bench-pacing slots N skipped S     (only when paced)

local scenario, users, per_user, user_base
local counter = 0
local threads = {}

local verbs = {"Buy", "Call", "Email", "Fix", "Plan", "Review", "Write", "Clean",
               "Book", "Pay", "Read", "Send", "Check", "Renew", "Order", "Prepare"}
local nouns = {"milk", "the plumber", "quarterly report", "invoice 42", "slides",
               "garden hose", "train tickets", "rent", "chapter 3", "newsletter",
               "car insurance", "budget", "dentist", "passport", "groceries", "backup"}
local tag_pool = {"work", "home", "errand", "health", "finance", "reading",
                  "travel", "family", "someday", "Urgent-ish"}
local priorities = {"low", "medium", "high", "urgent"}

local tokens = {}        -- [u] = "Bearer ..."
local json_headers = {["Content-Type"] = "application/json"}
local plain_headers = {}

function setup(thread)
   threads[#threads + 1] = thread
   thread:set("tid", #threads)
end

function init(args)
   scenario = args[1] or "get"
   users = tonumber(args[2] or "64")
   per_user = tonumber(args[3] or "200")
   user_base = tonumber(args[4] or "10000")
   if args[5] and args[5] ~= "" then
      local f = assert(io.open(args[5], "r"))
      for line in f:lines() do
         local user, token = string.match(line, "^(%S+)%s+(%S+)$")
         if user then
            tokens[tonumber(user) - user_base] = "Bearer " .. token
         end
      end
      f:close()
      for u = 1, users do
         assert(tokens[u], "bench/tasks.lua: no token for user " .. (user_base + u))
      end
   end
   local known = {create = true, get = true, list = true, patch = true, complete = true,
                  mixed = true}
   if not known[scenario] then
      error("bench/tasks.lua: unknown scenario '" .. tostring(scenario) .. "'")
   end
   -- LuaJIT starts every state with the same seed: mix in the thread.
   math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
end

-- A random user; sets its token on both header tables.
local function pick_user()
   local u = math.random(1, users)
   local auth = tokens[u]
   json_headers["Authorization"] = auth
   plain_headers["Authorization"] = auth
   return u, tostring(user_base + u)
end

local function task_path()
   local u, user = pick_user()
   local id = (u - 1) * per_user + math.random(1, per_user)
   return "/api/" .. user .. "/tasks/" .. id
end

local function create_body()
   counter = counter + 1
   local title = string.format("%s %s #%d-%d", verbs[math.random(#verbs)],
                               nouns[math.random(#nouns)], tid or 0, counter)
   -- 0 to 3 distinct tags.
   local tags, k, s = {}, math.random(0, 3), math.random(#tag_pool)
   for i = 0, k - 1 do
      tags[#tags + 1] = '"' .. tag_pool[(s + i - 1) % #tag_pool + 1] .. '"'
   end
   local due = "null"
   if math.random(4) > 1 then
      due = string.format('"%04d-%02d-%02dT%02d:%02d:00Z"', math.random(2026, 2030),
                          math.random(12), math.random(28), math.random(0, 23),
                          math.random(0, 59))
   end
   return string.format('{"title":"%s","priority":"%s","tags":[%s],"due_at":%s}',
                        title, priorities[math.random(#priorities)],
                        table.concat(tags, ","), due)
end

-- mixed: the kind of each request, by weight (out of 100).
local mix = {{35, "list"}, {35, "get"}, {20, "create"}, {10, "complete"}}

local function one_request(kind)
   if kind == "get" then
      return wrk.format("GET", task_path(), plain_headers, nil)
   elseif kind == "list" then
      local _, user = pick_user()
      return wrk.format("GET", "/api/" .. user .. "/tasks?limit=50", plain_headers, nil)
   elseif kind == "create" then
      local _, user = pick_user()
      return wrk.format("POST", "/api/" .. user .. "/tasks", json_headers, create_body())
   elseif kind == "patch" then
      return wrk.format("PATCH", task_path(), json_headers, '{"priority":"low"}')
   else -- complete; "" sends Content-Length: 0
      return wrk.format("POST", task_path() .. "/complete", plain_headers, "")
   end
end

function request()
   if scenario ~= "mixed" then
      return one_request(scenario)
   end
   local r = math.random(100)
   for _, m in ipairs(mix) do
      if r <= m[1] then
         return one_request(m[2])
      end
      r = r - m[1]
   end
end

local lua_rate = tonumber(os.getenv("BENCH_LUA_RATE") or "")
if lua_rate and lua_rate > 0 then
   local ffi = require("ffi")
   ffi.cdef[[
      typedef struct { long tv_sec; long tv_nsec; } bench_timespec_t;
      int clock_gettime(int clk_id, bench_timespec_t *tp);
   ]]
   local ts = ffi.new("bench_timespec_t")
   local CLOCK_MONOTONIC = 1
   local function now_ms()
      ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
      return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
   end
   local nthreads = tonumber(os.getenv("BENCH_LUA_THREADS") or "1") or 1
   local interval = 1000 * nthreads / lua_rate   -- ms between slots of one thread
   local next_slot = nil
   -- Globals, so that done() can read them with thread:get().
   paced_slots = 0         -- slots handed out (one per request sent)
   paced_skipped = 0       -- slots that passed with no connection free

   function delay()
      local now = now_ms()
      if next_slot == nil then
         next_slot = now
      elseif next_slot < now then
         -- Behind: the slot at next_slot is used now (late), the ones
         -- after it that have passed too are skipped.
         local missed = math.floor((now - next_slot) / interval)
         paced_skipped = paced_skipped + missed
         next_slot = now          -- no burst to catch up
      end
      paced_slots = paced_slots + 1
      local wait = next_slot - now
      next_slot = next_slot + interval
      return math.floor(wait)
   end
end

local check_status = os.getenv("BENCH_CHECK_STATUS") == "1"
if check_status then
   statuses = {}
   unexpected = nil

   function response(status, headers, body)
      statuses[status] = (statuses[status] or 0) + 1
      local ok
      if scenario == "mixed" then
         ok = status == 200 or status == 201
      else
         ok = status == ((scenario == "create") and 201 or 200)
      end
      if not ok and unexpected == nil then
         unexpected = status .. " " .. string.sub(body or "", 1, 300)
      end
   end
end

local function print_statuses()
   local total = {}
   for _, t in ipairs(threads) do
      local s = t:get("statuses") or {}
      for code, n in pairs(s) do
         total[code] = (total[code] or 0) + n
      end
      local u = t:get("unexpected")
      if u then
         io.write("unexpected " .. string.gsub(u, "[\r\n]", " ") .. "\n")
      end
   end
   for code, n in pairs(total) do
      io.write(string.format("status %d %d\n", code, n))
   end
end

function done(summary, latency, requests)
   if check_status then
      print_statuses()
   end
   io.write(string.format("bench-latency-us p50 %d p90 %d p99 %d p99.9 %d max %d\n",
                          latency:percentile(50), latency:percentile(90),
                          latency:percentile(99), latency:percentile(99.9), latency.max))
   if lua_rate and lua_rate > 0 then
      local slots, skipped = 0, 0
      for _, t in ipairs(threads) do
         slots = slots + (t:get("paced_slots") or 0)
         skipped = skipped + (t:get("paced_skipped") or 0)
      end
      io.write(string.format("bench-pacing slots %d skipped %d\n", slots + skipped, skipped))
   end
end
