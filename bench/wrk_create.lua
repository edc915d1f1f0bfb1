-- Closed loop: every request creates a new entry (POST /container_registry), unique id and
-- URL built from a run prefix, the wrk thread and a counter; the URL is on loopback.
-- Usage: wrk ... -s bench/wrk_create.lua URL -- RUN_PREFIX [TOKEN]
-- With TOKEN (auth on), every create sends it as `Authorization: Bearer TOKEN`.
dofile("bench/wrk_report.lua")
local threads, counter, prefix = 0, 0, "bench"
local headers = { ["Content-Type"] = "application/json" }
local envs = { "production", "staging", "development" }

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  prefix = (args[1] or "bench") .. "-" .. tostring(tid or 1)
  if args[2] then
    headers["Authorization"] = "Bearer " .. args[2]
  end
  math.randomseed(os.time() + (tid or 1))
end

function request()
  counter = counter + 1
  local id = prefix .. "-" .. counter
  local k = math.random(0, 99)
  local body = string.format(
    '{"container_registry_id":"%s","container_registry_name":"created-%s",'
      .. '"container_registry_metadata":{"environment":"%s","owner":"owner-%02d",'
      .. '"region":"region-%d"},'
      .. '"container_registry_tags":["created","tag-%02d","fast-pull","ai"],'
      .. '"container_registry_public_url":"http://127.0.0.1:5000/%s",'
      .. '"container_registry_config":{"auth_required":%s,"mirror_enabled":false,'
      .. '"storage_backend":"s3","max_layer_size_mb":500},'
      .. '"container_registry_storage_info":{"storage_type":"s3","storage_size":-1,'
      .. '"memory_size":8192,"registry_type":"aios"}}',
    id, id, envs[k % 3 + 1], k % 50, k % 10, k, id, (k % 2 == 0) and "true" or "false")
  return wrk.format("POST", "/container_registry", headers, body)
end

done = closed_loop_done
