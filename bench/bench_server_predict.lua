-- wrk script for gtmsmd predictions: each request asks for an N-step
-- prediction (mean mode) on one of K sessions "<prefix>-0" .. "<prefix>-(K-1)",
-- round robin from a per-thread offset.
--   wrk -s bench/bench_server_predict.lua URL -- PREFIX K STEPS ACCEPT
local counter = 0
function setup(thread)
  thread:set("offset", counter * 7)
  counter = counter + 1
end

function init(args)
  prefix = args[1] or "bench"
  sessions = tonumber(args[2]) or 64
  steps = tonumber(args[3]) or 256
  accept = args[4] or "image/png"
  local acts = {}
  for i = 1, steps do acts[i] = tostring((i - 1) % 5) end
  body = '{"actions": [' .. table.concat(acts, ",") .. '], "mode": "mean", "seed": 0}'
  headers = {["Content-Type"] = "application/json", ["Accept"] = accept}
  n = offset or 0
end

function request()
  n = n + 1
  return wrk.format("POST", "/v1/sessions/" .. prefix .. "-" .. (n % sessions) .. "/predictions",
                    headers, body)
end
