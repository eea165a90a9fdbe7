-- wrk script for durable observations: thread i (one connection each: run
-- wrk with -t N -c N) appends to its own session "<prefix>-i", BATCH
-- observations per NDJSON request, t counting up, frames taken round robin
-- from an NDJSON file written by `gtmsm gen`.
--   wrk -t N -c N -s bench/bench_server_observe.lua URL -- PREFIX BATCH FILE
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  prefix = args[1] or "obs"
  batch = tonumber(args[2]) or 1
  frames = {}
  for line in io.lines(args[3]) do frames[#frames + 1] = line end
  t = 0
  path = "/v1/sessions/" .. prefix .. "-" .. id .. "/observations"
  headers = {["Content-Type"] = "application/x-ndjson"}
end

-- request() builds from the next t without consuming it (wrk may build a
-- request it never sends); a 200 reply moves t on.
function request()
  local parts = {}
  for i = 1, batch do
    local src = frames[((t + i - 1) % #frames) + 1]
    parts[i] = (src:gsub('^{"t":%d+', '{"t":' .. (t + i - 1), 1))
  end
  return wrk.format("POST", path, headers, table.concat(parts, "\n") .. "\n")
end

function response(status, headers, body)
  if status == 200 then t = t + batch end
end
