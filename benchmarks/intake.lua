-- wrk script for the webhook benchmarks: every request is a real signed issue_comment delivery
-- with its own X-GitHub-Delivery and its own body (a body seen before is a replay, answered as a
-- duplicate): the body is HEAD .. nonce .. TAIL, nonce i (10 digits) signed on line i + 1 of
-- SIGNATURES. Thread t takes nonces FIRST + (t-1)*PER_THREAD onwards. Counts how many were
-- accepted (2xx) per thread. With a last argument, each thread also writes the delivery id of
-- every 2xx reply (from the reply's JSON) to PREFIX-<thread>, one a line, unbuffered, so the ids
-- survive whatever happens to the server.
-- Usage: wrk -s intake.lua URL -- HEAD TAIL SIGNATURES FIRST PER_THREAD [ACCEPTED_IDS_PREFIX]
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

function init(args)
  head, tail = slurp(args[1]), slurp(args[2])
  first = tonumber(args[4]) + (tid - 1) * tonumber(args[5])
  per_thread = tonumber(args[5])
  signatures = {}
  local line_number = 0
  for line in io.lines(args[3]) do
    if line_number >= first + per_thread then break end
    if line_number >= first then table.insert(signatures, line) end
    line_number = line_number + 1
  end
  n = 0
  accepted = 0
  failed = 0
  run = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000000))
  if args[6] then
    ids = assert(io.open(args[6] .. "-" .. tid, "w"))
    ids:setvbuf("no")
  end
end

function request()
  n = n + 1
  -- Past its share a thread starts again from its first nonce: those are replays (duplicates).
  local index = (n - 1) % per_thread
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "issue_comment",
    ["X-GitHub-Delivery"] = run .. "-" .. tid .. "-" .. n,
    ["X-Hub-Signature-256"] = signatures[index + 1],
    ["User-Agent"] = "GitHub-Hookshot/bench",
  }
  return wrk.format("POST", "/api/github/webhooks", headers, head .. string.format("%010d", first + index) .. tail)
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    accepted = accepted + 1
    if ids then
      local id = string.match(body, '"delivery":"([^"]+)"')
      if id then ids:write(id, "\n") end
    end
  else
    failed = failed + 1
  end
end

function done(summary, latency, requests)
  local a, f = 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("accepted")
    f = f + t:get("failed")
  end
  io.write(string.format("ACCEPTED %d\nREJECTED %d\n", a, f))
end
