-- wrk script for the webhook benchmarks: every request is a real signed issue_comment delivery
-- with its own X-GitHub-Delivery; counts how many were accepted (2xx) per thread.
-- Usage: wrk -s intake.lua URL -- BODY_FILE SIGNATURE
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
