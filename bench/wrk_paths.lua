-- Closed loop: every connection sends as soon as it is answered, to a path drawn at random.
-- Usage: wrk ... -s bench/wrk_paths.lua URL -- PATHS_FILE [METHOD] [BODY_FILE]
dofile("bench/wrk_report.lua")
local paths, method, body, fixed
local headers = {}

function init(args)
  paths = read_paths(args[1])
  method = args[2] or "GET"
  if args[3] then
    local f = assert(io.open(args[3], "rb"))
    body = f:read("*a")
    f:close()
    headers["Content-Type"] = "application/json"
  end
  math.randomseed(os.time())
  if #paths == 1 then fixed = wrk.format(method, paths[1], headers, body) end
end

function request()
  return fixed or wrk.format(method, paths[math.random(#paths)], headers, body)
end

done = closed_loop_done
