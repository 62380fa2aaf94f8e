-- wrk script: signers, each GET the static sign page, POST the form, GET the static thanks page.
--
--   wrk -t2 -c16 -d<bound>s -s bench/signing.lua http://127.0.0.1:<port>/ -- \
--       <slug> <prefix> <seconds> <sign page bytes> <thanks page bytes> <origin>
--
-- wrk does not tell a script which connection a request or response belongs to, so each thread keeps a
-- queue of next steps: an answer queues the step that follows it, and a connection ready to send takes
-- the oldest queued step, or starts a new signer. Each signer's steps still go one after the other.
-- Answers are told apart by status and length (the two static pages differ in size).
--
-- After <seconds> no signer is started; once every POST and thanks page in flight is answered the
-- thread stops (and says "drained" on stderr), so that no POST is cut off: each POST that reached the
-- service has been answered and counted. Until then idle connections fetch the sign page, not counted.
-- done() prints one JSON line starting with {"signing":

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local timespec = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, timespec) -- CLOCK_MONOTONIC: the same clock in every thread
  return tonumber(timespec.tv_sec) + tonumber(timespec.tv_nsec) * 1e-9
end

local POST, THANKS = 2, 3
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

-- Per thread from here (globals, so that done() can read them with thread:get).
started, posts, post_answers, accepted, thanks_sent, thanks_answered, completed = 0, 0, 0, 0, 0, 0, 0
unexpected, fillers, first_start, last_end, drained = 0, 0, 0, 0, 0
unexpected_seen = ""

local queue, head, tail = {}, 1, 0
local stop_at, sign_req, thanks_req, sign_len, thanks_len, thanks_path, prefix, post_path, origin

function init(args)
  local slug = args[1]
  prefix = args[2] .. "-t" .. id .. "-"
  stop_at = now() + tonumber(args[3])
  sign_len, thanks_len, origin = tonumber(args[4]), tonumber(args[5]), args[6]
  thanks_path = "/petitions/" .. slug .. "/thanks/"
  post_path = "/petitions/" .. slug .. "/sign"
  sign_req = wrk.format("GET", "/petitions/" .. slug .. "/sign/")
  thanks_req = wrk.format("GET", thanks_path)
end

local function header(headers, name)
  local wanted = name:lower()
  for key, value in pairs(headers) do
    if key:lower() == wanted then return value end
  end
end

local function check_drained()
  if drained == 0 and now() >= stop_at and head > tail
      and post_answers >= posts and thanks_answered >= thanks_sent then
    drained = 1
    last_end = now()
    io.stderr:write("drained\n")
    io.stderr:flush()
    wrk.thread:stop()
  end
end

function request()
  if first_start == 0 then first_start = now() end
  if head <= tail then
    local step = queue[head]
    queue[head] = nil
    head = head + 1
    if step == POST then
      posts = posts + 1
      local body = "name=Load+Test+Signer&email=" .. prefix .. posts .. "%40example.org&country=KZ"
          .. "&postcode=050000&comment=Free+Vadim+Kuramshin&public=y&updates=y"
      return wrk.format("POST", post_path, {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["Origin"] = origin,
        ["Sec-Fetch-Site"] = "same-origin",
      }, body)
    end
    thanks_sent = thanks_sent + 1
    return thanks_req
  end
  if now() < stop_at then
    started = started + 1
  else
    fillers = fillers + 1
  end
  return sign_req
end

local function note(what)
  unexpected = unexpected + 1
  if #unexpected_seen < 200 then unexpected_seen = unexpected_seen .. what .. " " end
end

function response(status, headers, body)
  local length = tonumber(header(headers, "Content-Length") or -1)
  if status == 200 and length == sign_len then
    if now() < stop_at then
      tail = tail + 1
      queue[tail] = POST
    end
  elseif status == 200 and length == thanks_len then
    thanks_answered = thanks_answered + 1
    completed = completed + 1
  else
    -- Anything else is taken as a POST's answer: the static pages do not fail.
    post_answers = post_answers + 1
    local location = header(headers, "Location") or ""
    if status == 303 and location:sub(-#thanks_path) == thanks_path then
      accepted = accepted + 1
      tail = tail + 1
      queue[tail] = THANKS
    else
      note(status .. ":" .. length)
    end
  end
  check_drained()
end

function done(summary, latency, requests)
  local totals = {started = 0, posts = 0, post_answers = 0, accepted = 0, thanks_sent = 0,
                  thanks_answered = 0, completed = 0, unexpected = 0, fillers = 0, drained = 0}
  local first, last, seen = math.huge, 0, ""
  for _, thread in ipairs(threads) do
    for key, _ in pairs(totals) do totals[key] = totals[key] + thread:get(key) end
    local s, e = thread:get("first_start"), thread:get("last_end")
    if s > 0 and s < first then first = s end
    if e > last then last = e end
    seen = seen .. thread:get("unexpected_seen")
  end
  local e = summary.errors
  -- From the first request to the last thread drained; the whole run if a thread never drained.
  local elapsed = summary.duration / 1e6
  if totals.drained == #threads and last > first then elapsed = last - first end
  local parts = {}
  for key, value in pairs(totals) do table.insert(parts, string.format('"%s":%d', key, value)) end
  table.insert(parts, string.format('"threads":%d', #threads))
  table.insert(parts, string.format('"seconds":%.3f', elapsed))
  table.insert(parts, string.format('"signers_per_second":%.1f', totals.completed / elapsed))
  table.insert(parts, string.format('"requests":%d', summary.requests))
  table.insert(parts, string.format('"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d}',
    e.connect, e.read, e.write, e.timeout))
  table.insert(parts, string.format('"status_errors":%d', e.status))
  table.insert(parts, string.format('"unexpected_seen":"%s"', seen:gsub("%s+$", "")))
  table.insert(parts, string.format('"latency_ms":{"p50":%.2f,"p90":%.2f,"p99":%.2f,"max":%.2f,"mean":%.2f}',
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, latency.mean / 1000))
  io.write('{"signing":{' .. table.concat(parts, ",") .. '}}\n')
end
