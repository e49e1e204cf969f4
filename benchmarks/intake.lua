-- wrk script for the webhook benchmarks: every request is a real signed issue_comment delivery
-- with its own X-GitHub-Delivery; counts how many were accepted (2xx) per thread. With a third
-- argument, each thread also writes the delivery id of every 2xx reply (from the reply's JSON)
-- to PREFIX-<thread>, one a line, unbuffered, so the ids survive whatever happens to the server.
-- Usage: wrk -s intake.lua URL -- BODY_FILE SIGNATURE [ACCEPTED_IDS_PREFIX]
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  body = f:read("*a")
  f:close()
  signature = args[2]
  n = 0
  accepted = 0
  failed = 0
  run = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000000))
  if args[3] then
    ids = assert(io.open(args[3] .. "-" .. tid, "w"))
    ids:setvbuf("no")
  end
end

function request()
  n = n + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "issue_comment",
    ["X-GitHub-Delivery"] = run .. "-" .. tid .. "-" .. n,
    ["X-Hub-Signature-256"] = signature,
    ["User-Agent"] = "GitHub-Hookshot/bench",
  }
  return wrk.format("POST", "/api/github/webhooks", headers, body)
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
