-- enqueue.lua: the deduplicated enqueue of sila-archiver (public contract,
-- docs/PROTOCOL.md "Enqueue with deduplication"). This file is the one
-- source: the worker embeds it at build time (Makefile -> build/*/gen/
-- enqueue_lua.h -> q_lua_enqueue in worker/q_lua.c), and clients run it
-- as it is (clients/node keeps a byte-for-byte copy, checked by a test).
-- Its SHA-1 is therefore the same for every caller: EVALSHA of one client
-- finds the script another one loaded.
--
-- Run it after reading the dedup key (GET KEYS[1] -> cur, or nil):
--   EVAL <this file> 5 KEYS[1..5] ARGV[1..7]
--
-- KEYS (every key the script touches; names use the key prefix, "sila:"):
--   [1] sila:dedup:<type>:<spaceId>   the dedup key (a job id)
--   [2] sila:job:<newId>              the new job's status hash
--   [3] sila:jobs or sila:jobs:urgent the lane of the new job (urgent
--                                     when ARGV[7] is "urgent")
--   [4] sila:jobs:urgent              the urgent lane (for a promotion)
--   [5] sila:job:<cur>                the hash of the job the dedup key
--                                     named when the caller read it; KEYS[2]
--                                     when it named none
-- ARGV:
--   [1] newId: 1-128 characters of [A-Za-z0-9._:-] (32 random hex digits
--       is what the CLI uses)
--   [2] the job spec JSON, {"id": newId, "type", "spaceId", ...} (see
--       PROTOCOL.md "Job spec"; "priority": "urgent" for an urgent job)
--   [3] type: "archive", "unarchive" or "migrate"
--   [4] spaceId
--   [5] now, RFC 3339 UTC with milliseconds (createdAt / updatedAt)
--   [6] cur: the value of the dedup key the caller read, "" for nil
--   [7] priority: "urgent" or "normal"
--
-- Reply, a two-element array:
--   {newId, 1}   a new job was queued: the dedup key names it (24 h
--                expiry), its hash says state "queued", its entry is in
--                KEYS[3]
--   {cur, 0}     the job cur is queued, running or retrying for this space
--                and type: use it (nothing new queued). When cur is queued
--                on the normal lane and this request is urgent, cur is
--                promoted first: priority "urgent" in its hash and a second
--                entry {id: cur, job: ARGV[2] with id = cur} in the urgent
--                lane (whichever delivery a worker takes first runs it).
--   {"", -1}     the dedup key no longer holds cur (another enqueue or a
--                job's end came in between): nothing was done; GET it
--                again and call again.
--
-- What it writes (only when it creates a job): SET KEYS[1] newId EX 86400;
-- HSET KEYS[2] state queued, type, spaceId, progress 0, priority,
-- attempts 0, spec (ARGV[2]), createdAt and updatedAt (ARGV[5]);
-- XADD KEYS[3] MAXLEN ~ 100000 * id newId job ARGV[2].
-- A dedup key naming a job that ended (succeeded, failed, or a hash that
-- expired) is replaced by the new job.
local cur = redis.call('GET', KEYS[1])
if (cur or '') ~= ARGV[6] then return {'', -1} end
if cur then
  local h = KEYS[5]
  local st = redis.call('HGET', h, 'state')
  if st == 'queued' or st == 'running' or st == 'retrying' then
    if st == 'queued' and ARGV[7] == 'urgent' and
       redis.call('HGET', h, 'priority') ~= 'urgent' then
      local spec = cjson.decode(ARGV[2])
      spec['id'] = cur
      redis.call('HSET', h, 'priority', 'urgent', 'updatedAt', ARGV[5])
      redis.call('XADD', KEYS[4], 'MAXLEN', '~', '100000', '*',
                 'id', cur, 'job', cjson.encode(spec))
    end
    return {cur, 0}
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', 86400)
redis.call('HSET', KEYS[2], 'state', 'queued', 'type', ARGV[3],
           'spaceId', ARGV[4], 'progress', '0', 'priority', ARGV[7],
           'attempts', '0', 'spec', ARGV[2],
           'createdAt', ARGV[5], 'updatedAt', ARGV[5])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', '100000', '*',
           'id', ARGV[1], 'job', ARGV[2])
return {ARGV[1], 1}
