/* q_lua: the text of every Lua script of the job protocol, with its KEYS,
 * ARGV and reply (the enqueue's is docs/enqueue.lua, embedded). Keys are
 * all passed in KEYS (built by q_keys.c); where a script needs keys named
 * by data (a job id read from a dedup key or from the running index), the
 * caller reads the ids first and passes their keys, and the script checks
 * again, atomically, that the ids are still those. */
#include "worker/q_lua.h"

/* Enqueue with deduplication (q_enqueue): docs/enqueue.lua, part of the
 * public contract, compiled in as it is (the Makefile makes the string);
 * its header comment lists KEYS, ARGV, the reply and what it writes. */
const char q_lua_enqueue[] =
#include "worker/enqueue_lua.h"
    ;

/* Begin a run (q_begin).
 * KEYS: [1] job hash, [2] running index.
 * ARGV: [1] consumer, [2] now RFC 3339, [3] now ms, [4] max attempts,
 * [5] lane, [6] entry id, [7] job id.
 * Returns {began 0|1, attempts}. */
const char q_lua_begin[] =
    "local a = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0') or 0\n"
    "if a >= tonumber(ARGV[4]) then return {0, a} end\n"
    "a = redis.call('HINCRBY', KEYS[1], 'attempts', 1)\n"
    "redis.call('HSET', KEYS[1], 'state', 'running', 'startedAt', ARGV[2],\n"
    "           'worker', ARGV[1], 'waiting', '', 'lane', ARGV[5],\n"
    "           'entry', ARGV[6], 'updatedAt', ARGV[2])\n"
    "redis.call('HDEL', KEYS[1], 'entryLostAt')\n"
    "redis.call('ZADD', KEYS[2], ARGV[3], ARGV[7])\n"
    "return {1, a}\n";

/* Put a job back for later and acknowledge its entry (q_requeue).
 * KEYS: [1] job hash, [2] delayed set, [3] lane stream, [4] running index.
 * ARGV: [1] group, [2] entry id, [3] lane, [4] due ms, [5] delayed member,
 * [6] job id, then field/value pairs for the hash.
 * A job running under another delivery (both lanes of one job) is not
 * touched: this entry is only acknowledged. Returns 1, or 0 for that. */
const char q_lua_requeue[] =
    "local f = redis.call('HMGET', KEYS[1], 'state', 'lane', 'entry')\n"
    "if f[1] == 'running' and f[3] and f[3] ~= '' and\n"
    "   (f[2] ~= ARGV[3] or f[3] ~= ARGV[2]) then\n"
    "  redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])\n"
    "  return 0\n"
    "end\n"
    "redis.call('HSET', KEYS[1], unpack(ARGV, 7))\n"
    "redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])\n"
    "redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])\n"
    "redis.call('ZREM', KEYS[4], ARGV[6])\n"
    "return 1\n";

/* Move due delayed jobs to their lanes (q_promote_delayed).
 * KEYS: [1] delayed set, [2] normal lane stream, [3] urgent lane stream.
 * ARGV: [1] now ms.
 * A member {id, lane, job} goes to the lane it names ("jobs" or
 * "jobs:urgent"; any other is dropped). Returns the count taken out. */
const char q_lua_promote[] =
    "local lanes = {jobs = KEYS[2], ['jobs:urgent'] = KEYS[3]}\n"
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1],\n"
    "                       'LIMIT', 0, 100)\n"
    "for _, m in ipairs(due) do\n"
    "  redis.call('ZREM', KEYS[1], m)\n"
    "  local ok, j = pcall(cjson.decode, m)\n"
    "  if ok and type(j) == 'table' and type(j.id) == 'string' and\n"
    "     (j.lane == 'jobs' or j.lane == 'jobs:urgent') then\n"
    "    redis.call('XADD', lanes[j.lane], 'MAXLEN', '~', '100000', '*',\n"
    "               'id', j.id, 'job', j.job)\n"
    "  end\n"
    "end\n"
    "return #due\n";

/* Repair stranded jobs (q_repair; see q.h). The caller reads the
 * candidates first (members of the running index whose score is at most
 * now - lease, and the type and spaceId of each) and passes their keys;
 * the script checks each again and leaves one whose score or type/spaceId
 * changed meanwhile for a later call.
 * KEYS: [1] running index, [2] normal lane, [3] urgent lane, [4] dead
 * stream, [5] audit stream, then three per candidate i (from 0):
 * [6 + 3i] its hash (also its channel), [7 + 3i] its dedup key, [8 + 3i]
 * its space's channel (the last two: the hash again when the caller saw no
 * type or spaceId).
 * ARGV: [1] now ms, [2] lease ms, [3] max attempts, [4] now RFC 3339,
 * [5] group, [6] audit max, then four per candidate i: [7 + 4i] id,
 * [8 + 4i] "1" when the caller saw both type and spaceId (else "0"),
 * [9 + 4i] that type, [10 + 4i] that spaceId.
 * Returns {job id, "requeued"|"failed", ...}. */
const char q_lua_repair[] =
    "local now, lease = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local lanes = {jobs = KEYS[2], ['jobs:urgent'] = KEYS[3]}\n"
    "local out = {}\n"
    "for i = 0, (#ARGV - 6) / 4 - 1 do\n"
    "  local id, a = ARGV[7 + 4 * i], 7 + 4 * i\n"
    "  local h, dk, sk = KEYS[6 + 3 * i], KEYS[7 + 3 * i], KEYS[8 + 3 * i]\n"
    "  local sc = tonumber(redis.call('ZSCORE', KEYS[1], id))\n"
    "  local f = redis.call('HMGET', h, 'state', 'lane', 'entry',\n"
    "                       'entryLostAt', 'attempts', 'spec', 'type',\n"
    "                       'spaceId')\n"
    "  local seen = (f[7] and f[8]) and '1' or '0'\n"
    "  if sc and sc <= now - lease and seen == ARGV[a + 1] and\n"
    "     (seen == '0' or (f[7] == ARGV[a + 2] and f[8] == ARGV[a + 3]))\n"
    "  then\n"
    "  local lane, entry, lost = f[2], f[3], tonumber(f[4])\n"
    "  if f[1] ~= 'running' or not entry or\n"
    "     (lane ~= 'jobs' and lane ~= 'jobs:urgent') then\n"
    "    redis.call('ZREM', KEYS[1], id)\n"
    "  else\n"
    "    local stream = lanes[lane]\n"
    /* pending in the group and still in the stream (a trimmed entry stays
     * in the PEL, but XAUTOCLAIM only drops it) */
    "    local pending = false\n"
    "    local ok, r = pcall(redis.call, 'XPENDING', stream, ARGV[5], entry,\n"
    "                        entry, 1)\n"
    "    if ok and type(r) == 'table' and #r > 0 then\n"
    "      pending = #redis.call('XRANGE', stream, entry, entry) > 0\n"
    "    end\n"
    "    if pending then\n"
    "      if lost then redis.call('HDEL', h, 'entryLostAt') end\n"
    "      redis.call('ZADD', KEYS[1], now, id)\n"
    "    elseif not lost then\n"
    /* seen gone once: a live owner notices within a lease (its heartbeat
     * finds the entry gone); look again after a whole lease */
    "      redis.call('HSET', h, 'entryLostAt', ARGV[1])\n"
    "      redis.call('ZADD', KEYS[1], now, id)\n"
    "    elseif now - lost < lease then\n"
    "      redis.call('ZADD', KEYS[1], lost, id)\n"
    "    else\n"
    "      local spec, jt, sp = f[6], f[7], f[8]\n"
    "      local attempts = tonumber(f[5]) or 0\n"
    "      redis.call('ZREM', KEYS[1], id)\n"
    "      redis.call('HDEL', h, 'entryLostAt', 'lane', 'entry')\n"
    "      if spec and attempts < tonumber(ARGV[3]) then\n"
    "        redis.call('HSET', h, 'state', 'queued', 'phase', '',\n"
    "                   'waiting', 'its queue entry was lost: queued again',\n"
    "                   'updatedAt', ARGV[4])\n"
    "        redis.call('XADD', stream, 'MAXLEN', '~', '100000', '*',\n"
    "                   'id', id, 'job', spec)\n"
    "        out[#out + 1] = id\n"
    "        out[#out + 1] = 'requeued'\n"
    "      else\n"
    "        local msg = 'the queue entry of this running job was lost ' ..\n"
    "          '(acknowledged, trimmed or its consumer deleted) after ' ..\n"
    "          attempts .. ' runs'\n"
    "        if not spec then\n"
    "          msg = msg .. ', and no spec is kept to queue it again'\n"
    "        else\n"
    "          msg = msg .. ' (SILA_MAX_ATTEMPTS is ' .. ARGV[3] .. ')'\n"
    "        end\n"
    "        redis.call('HSET', h, 'state', 'failed', 'error', msg,\n"
    "                   'phase', '', 'finishedAt', ARGV[4],\n"
    "                   'updatedAt', ARGV[4])\n"
    "        redis.call('EXPIRE', h, 604800)\n"
    "        local rb = ''\n"
    "        if spec then\n"
    "          local okj, j = pcall(cjson.decode, spec)\n"
    "          if okj and type(j) == 'table' and\n"
    "             type(j.requestedBy) == 'string' then rb = j.requestedBy end\n"
    "        end\n"
    "        if jt and sp then\n"
    "          if redis.call('GET', dk) == id then redis.call('DEL', dk) end\n"
    "          if jt == 'unarchive' then\n"
    "            redis.call('PUBLISH', sk, cjson.encode(\n"
    "              {event = 'failed', spaceId = sp, jobId = id, error = "
    "msg}))\n"
    "          end\n"
    "        end\n"
    "        redis.call('XADD', KEYS[4], 'MAXLEN', '~', '10000',\n"
    "                   '*', 'id', id, 'job', spec or '', 'error', msg,\n"
    "                   'failedAt', ARGV[4])\n"
    "        redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[6], '*',\n"
    "                   'at', ARGV[4], 'action', jt or 'unknown',\n"
    "                   'outcome', 'failed', 'spaceId', sp or '',\n"
    "                   'jobId', id, 'worker', 'repair', 'requestedBy', rb,\n"
    "                   'files', '0', 'bytes', '0', 'durationMs', '0',\n"
    "                   'error', msg)\n"
    "        redis.call('PUBLISH', h, cjson.encode(\n"
    "          {jobId = id, state = 'failed', error = msg}))\n"
    "        out[#out + 1] = id\n"
    "        out[#out + 1] = 'failed'\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  end\n"
    "end\n"
    "return out\n";

/* Re-queue a failed job (q_retry).
 * KEYS: [1] job hash, [2] dead stream, [3] lane stream.
 * ARGV: [1] id, [2] now.
 * Returns {1, "queued"}, or {0, state | "nospec"} when it cannot be. */
const char q_lua_retry[] =
    "local st = redis.call('HGET', KEYS[1], 'state')\n"
    "if st ~= 'failed' then return {0, st or ''} end\n"
    "local spec = redis.call('HGET', KEYS[1], 'spec')\n"
    "if not spec then return {0, 'nospec'} end\n"
    "local ents = redis.call('XRANGE', KEYS[2], '-', '+')\n"
    "for _, e in ipairs(ents) do\n"
    "  local f = e[2]\n"
    "  for i = 1, #f, 2 do\n"
    "    if f[i] == 'id' and f[i + 1] == ARGV[1] then\n"
    "      redis.call('XDEL', KEYS[2], e[1])\n"
    "    end\n"
    "  end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'state', 'queued', 'attempts', '0',\n"
    "           'error', '', 'progress', '0', 'updatedAt', ARGV[2])\n"
    "redis.call('PERSIST', KEYS[1])\n"
    "redis.call('XADD', KEYS[3], 'MAXLEN', '~', '100000', '*', 'id',\n"
    "           ARGV[1], 'job', spec)\n"
    "return {1, 'queued'}\n";

/* Is the space locked, is a job pending for it (q_space_busy).
 * KEYS: [1] lock, [2] dedup:archive, [3] dedup:unarchive, [4] and [5] the
 * hash of the job KEYS[2] and KEYS[3] named when the caller read them
 * (the dedup key itself when it named none).
 * ARGV: [1], [2] the values of KEYS[2], KEYS[3] the caller read ("" for
 * none).
 * Returns {locked 0|1, pending job id or ""}, or {-1, ""} when a dedup key
 * changed since the caller read it (the caller reads them again). */
const char q_lua_space_busy[] =
    "local locked = redis.call('EXISTS', KEYS[1])\n"
    "local ids = {}\n"
    "for i = 2, 3 do\n"
    "  ids[i] = redis.call('GET', KEYS[i])\n"
    "  if (ids[i] or '') ~= ARGV[i - 1] then return {-1, ''} end\n"
    "end\n"
    "for i = 2, 3 do\n"
    "  local id = ids[i]\n"
    "  if id then\n"
    "    local st = redis.call('HGET', KEYS[i + 2], 'state')\n"
    "    if st == 'queued' or st == 'running' or st == 'retrying' then\n"
    "      return {locked, id}\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return {locked, ''}\n";

/* Both halves of a lease, checked and extended in one step (q_own_renew):
 * the space lock must hold our token and the stream entry must be pending
 * to us. XCLAIM with min-idle 0 would take an entry from anyone, so the
 * owner is read first (XPENDING) and the entry is claimed only when it is
 * ours. A Redis that lost its data (no lock, and our entry is not in the
 * stream: restarted empty or flushed, the stream perhaps created again by
 * another worker since) cannot have handed the job to anyone: the lock is taken
 * again (2), and from then on the lock alone is checked (ARGV[6] = "1").
 * KEYS: [1] lane stream, [2] space lock.
 * ARGV: [1] group, [2] entry id, [3] consumer, [4] token, [5] ttl ms,
 * [6] "1" for the lock only.
 * Returns 1 held, 2 relocked, 0 lock lost, -1 entry lost. */
const char q_lua_own[] =
    "local cur = redis.call('GET', KEYS[2]) "
    "if not cur then "
    "  if ARGV[6] ~= '1' and "
    "     #redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2]) == 0 then "
    "    redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5]) return 2 end "
    "  return 0 end "
    "if cur ~= ARGV[4] then return 0 end "
    "if ARGV[6] ~= '1' then "
    "  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], "
    "1) "
    "  if #p == 0 or p[1][2] ~= ARGV[3] then return -1 end "
    "  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID') "
    "end "
    "redis.call('PEXPIRE', KEYS[2], ARGV[5]) "
    "return 1";

/* The fenced manifest record (S3 without conditional PUT, PROTOCOL.md):
 * record body as the space's newest manifest (not yet confirmed), only
 * while the space lock holds token, and only when the manifest now in S3
 * is the last confirmed record (else that record is returned: S3 holds an
 * older manifest, written over it by a stale writer). KEYS: [1] the lock,
 * [2] the record. ARGV: [1] token, [2] body, [3] at (ms), [4] ttl ms,
 * [5] "1" when a manifest exists in S3, [6] its bytes. Returns {1, ""}
 * recorded, {0, ""} not ours, {2, the confirmed body} stale S3. */
const char q_lua_mf_record[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0, ''} end "
    "local cur = redis.call('HMGET', KEYS[2], 'body', 'confirmed') "
    "if ARGV[5] == '1' and cur[2] == '1' and cur[1] ~= ARGV[6] then "
    "  return {2, cur[1]} end "
    "redis.call('HSET', KEYS[2], 'token', ARGV[1], 'body', ARGV[2], "
    "'at', ARGV[3], 'confirmed', '0') "
    "redis.call('PEXPIRE', KEYS[2], ARGV[4]) "
    "return {1, ''}";

/* Is body still the newest record, ours, under our lock? Then it is
 * confirmed. KEYS: [1] the lock, [2] the record. ARGV: [1] token,
 * [2] body. Returns {1, ""} when yes, else {0, the newest confirmed body,
 * or "" when the newest is not confirmed (its writer's own business)}. */
const char q_lua_mf_check[] =
    "local cur = redis.call('HMGET', KEYS[2], 'token', 'body', 'confirmed') "
    "if redis.call('GET', KEYS[1]) == ARGV[1] and cur[1] == ARGV[1] and "
    "   cur[2] == ARGV[2] then "
    "  redis.call('HSET', KEYS[2], 'confirmed', '1') return {1, ''} end "
    "if cur[3] == '1' then return {0, cur[2]} end "
    "return {0, ''}";

/* Delete a key that holds a value (a dedup key naming this job, a lock
 * holding our token). KEYS: [1] the key. ARGV: [1] the value.
 * Returns 1 deleted, 0 not. */
const char q_lua_del_if[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                            "return redis.call('DEL', KEYS[1]) end return 0";

/* Extend a lock that holds our token. KEYS: [1] the lock. ARGV: [1] token,
 * [2] ttl ms. Returns 1 extended, 0 not. */
const char q_lua_pexpire_if[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0";

/* Save the sweep's cursor (q_sweep_cursor_save): only while the sweep lock
 * holds our token and the cursor is still the one this sweep started from.
 * KEYS: [1] the sweep lock, [2] the cursor hash.
 * ARGV: [1] token, [2] the "after" read at the start, then field/value
 * pairs. Returns 1 saved, 0 the lock is not ours, -1 the cursor moved. */
const char q_lua_sweep_cur[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "if (redis.call('HGET', KEYS[2], 'after') or '') ~= ARGV[2] then\n"
    "  return -1\n"
    "end\n"
    "redis.call('HSET', KEYS[2], unpack(ARGV, 3))\n"
    "return 1\n";
