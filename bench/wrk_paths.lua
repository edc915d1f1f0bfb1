-- wrk script: each request goes to a path picked at random from a file.
-- Usage: wrk ... -s bench/wrk_paths.lua BASE_URL -- PATHS_FILE [METHOD] [BODY_FILE]
-- A BODY_FILE is sent as the JSON body of every request.
local paths = {}
local method = "GET"
local body = nil
local headers = {}
local fixed = nil

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      paths[#paths + 1] = line
    end
  end
  assert(#paths > 0, "no paths in " .. args[1])
  method = args[2] or "GET"
  if args[3] then
    local f = assert(io.open(args[3], "rb"))
    body = f:read("*a")
    f:close()
    headers["Content-Type"] = "application/json"
  end
  math.randomseed(os.time() + #paths)
  if #paths == 1 then
    fixed = wrk.format(method, paths[1], headers, body)
  end
end

function request()
  if fixed then
    return fixed
  end
  return wrk.format(method, paths[math.random(#paths)], headers, body)
end
