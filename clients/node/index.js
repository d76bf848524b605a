// @sila/archiver-client: what an app server needs of sila-archiver's public
// contract (docs/PROTOCOL.md), over an ordinary Redis client (ioredis) and
// an S3 getter the caller supplies: the deduplicated enqueue
// (enqueue.lua, a byte-for-byte copy of docs/enqueue.lua), opening a space
// (urgent unarchive, then `ready` and `complete`), following a job's
// progress, and reading a blob the restore has not reached yet (the want
// request). Plain CommonJS, no build step (Node >= 18).
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const ENQUEUE_LUA = fs.readFileSync(path.join(__dirname, 'enqueue.lua'), 'utf8');
const ENQUEUE_SHA = crypto.createHash('sha1').update(ENQUEUE_LUA).digest('hex');
const ENQUEUE_TRIES = 100; // as the worker's CLI (the dedup key keeps changing)
const WANT_TTL_S = 300; // PROTOCOL.md "Want request"
const WANT_PATH_MAX = 1024; // PROG_WANT_PATH_MAX
const TYPES = new Set(['archive', 'unarchive', 'migrate']);
const ID_RE = /^[A-Za-z0-9._-]{1,128}$/;

class SilaError extends Error {
  constructor(message, info) {
    super(message);
    this.name = 'SilaError';
    Object.assign(this, info || {});
  }
}

function checkSpaceId(spaceId) {
  if (typeof spaceId !== 'string' || !ID_RE.test(spaceId) || spaceId === '.' || spaceId === '..')
    throw new SilaError(`bad spaceId ${JSON.stringify(spaceId)}: 1-128 characters of [A-Za-z0-9._-]`);
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function toText(body) {
  if (body == null) return null;
  if (typeof body === 'string') return body;
  return Buffer.from(body).toString('utf8');
}

// A promise with its resolve/reject outside, settled once; an unobserved
// rejection does not crash the process (the caller may await only one).
function deferred() {
  let resolve, reject;
  const p = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const d = { promise: p, settled: false };
  d.resolve = (v) => {
    if (!d.settled) {
      d.settled = true;
      resolve(v);
    }
  };
  d.reject = (e) => {
    if (!d.settled) {
      d.settled = true;
      reject(e);
    }
  };
  p.catch(() => {});
  return d;
}

class SilaClient {
  /**
   * @param {object} opts
   * @param {import('ioredis').Redis} opts.redis  commands go here (no keyPrefix)
   * @param {(key: string) => Promise<Buffer|Uint8Array|string|null>} opts.getObject
   *        reads an object of the store; null when there is none (404)
   * @param {(key: string) => Promise<boolean>} [opts.headObject] whether an
   *        object exists (else getObject is used)
   * @param {string} [opts.prefix] Redis key prefix, "sila:" (SILA_KEY_PREFIX)
   * @param {string} [opts.requestedBy] recorded in the audit trail
   */
  constructor(opts) {
    if (!opts || !opts.redis) throw new SilaError('SilaClient: opts.redis (an ioredis client) is required');
    this.redis = opts.redis;
    this.getObject = opts.getObject || null;
    this.headObject = opts.headObject || null;
    this.prefix = opts.prefix === undefined ? 'sila:' : opts.prefix;
    this.requestedBy = opts.requestedBy || '';
    this._sub = null;
    this._chans = new Map(); // channel -> Set of listeners
    this._ops = new Set(); // cancel functions of the waits under way
  }

  key(name) {
    return this.prefix + name;
  }

  /**
   * Ends every wait under way (their promises reject with "closed") and
   * closes the subscriber connection (the caller's redis stays open).
   */
  async close() {
    for (const cancel of [...this._ops]) cancel();
    this._ops.clear();
    const sub = this._sub;
    this._sub = null;
    this._chans.clear();
    if (sub) await sub.quit().catch(() => sub.disconnect());
  }

  // --- pub/sub: one subscriber connection, listeners per channel ---------

  async _listen(channel, fn) {
    if (!this._sub) {
      this._sub = this.redis.duplicate();
      this._sub.on('message', (ch, msg) => {
        const set = this._chans.get(ch);
        if (!set) return;
        const ev = parseJson(msg);
        if (!ev || typeof ev !== 'object') return;
        for (const f of [...set]) f(ev);
      });
      this._sub.on('error', () => {}); // reconnects; the hash reads cover the gap
    }
    let set = this._chans.get(channel);
    const first = !set;
    if (first) {
      set = new Set();
      this._chans.set(channel, set);
    }
    set.add(fn);
    if (first) await this._sub.subscribe(channel);
    return async () => {
      const s = this._chans.get(channel);
      if (!s) return;
      s.delete(fn);
      if (s.size === 0) {
        this._chans.delete(channel);
        if (this._sub) await this._sub.unsubscribe(channel).catch(() => {});
      }
    };
  }

  // --- enqueue ------------------------------------------------------------

  /**
   * Queues a job with deduplication: while a job of this type is queued,
   * running or retrying for the space, its id is returned (created false).
   * An urgent request promotes a queued normal job to the urgent lane.
   * @returns {Promise<{id: string, created: boolean}>}
   */
  async enqueue(type, spaceId, opts = {}) {
    if (!TYPES.has(type)) throw new SilaError(`bad job type ${JSON.stringify(type)}`);
    checkSpaceId(spaceId);
    const urgent = !!opts.urgent;
    const id = opts.id || crypto.randomBytes(16).toString('hex');
    const spec = { id, type, spaceId };
    if (urgent) spec.priority = 'urgent';
    for (const k of ['archiveKey', 'source', 'target']) if (opts[k]) spec[k] = opts[k];
    if (opts.overwrite) spec.overwrite = true;
    const rb = opts.requestedBy || this.requestedBy;
    if (rb) spec.requestedBy = rb;
    const json = JSON.stringify(spec);
    const dedup = this.key(`dedup:${type}:${spaceId}`);
    const hash = this.key(`job:${id}`);
    const lane = this.key(urgent ? 'jobs:urgent' : 'jobs');
    const urgentLane = this.key('jobs:urgent');
    for (let i = 0; i < ENQUEUE_TRIES; i++) {
      const cur = await this.redis.get(dedup);
      const keys = [dedup, hash, lane, urgentLane, cur ? this.key(`job:${cur}`) : hash];
      const argv = [id, json, type, spaceId, new Date().toISOString(), cur || '', urgent ? 'urgent' : 'normal'];
      const rep = await this._evalEnqueue(keys, argv);
      if (!Array.isArray(rep) || rep.length !== 2) throw new SilaError('enqueue: bad reply from the script');
      const created = Number(rep[1]);
      if (created === -1) continue; // the dedup key changed meanwhile
      return { id: String(rep[0]), created: created === 1 };
    }
    throw new SilaError('enqueue: the dedup key keeps changing');
  }

  async _evalEnqueue(keys, argv) {
    try {
      return await this.redis.evalsha(ENQUEUE_SHA, keys.length, ...keys, ...argv);
    } catch (e) {
      if (!String(e && e.message).startsWith('NOSCRIPT')) throw e;
      return this.redis.eval(ENQUEUE_LUA, keys.length, ...keys, ...argv);
    }
  }

  // --- reads --------------------------------------------------------------

  /** The manifest metadata/<spaceId>.json, parsed; null when there is none. */
  async readManifest(spaceId) {
    checkSpaceId(spaceId);
    if (!this.getObject) throw new SilaError('SilaClient: opts.getObject is needed to read the store');
    const text = toText(await this.getObject(`metadata/${spaceId}.json`));
    if (text == null) return null;
    const m = parseJson(text);
    if (!m || typeof m !== 'object') throw new SilaError(`manifest of space ${spaceId} is not JSON`);
    return m;
  }

  async _exists(key) {
    if (this.headObject) return !!(await this.headObject(key));
    return (await this.getObject(key)) != null;
  }

  /** The status hash sila:job:<id>, with result parsed; null when unknown. */
  async jobStatus(id) {
    const h = await this.redis.hgetall(this.key(`job:${id}`));
    if (!h || Object.keys(h).length === 0) return null;
    const st = { ...h };
    if (h.result) st.result = parseJson(h.result);
    for (const k of ['progress', 'attempts', 'bytesDone', 'bytesTotal', 'filesDone', 'filesTotal', 'timeToReadyMs'])
      if (h[k] !== undefined && h[k] !== '') st[k] = Number(h[k]);
    return st;
  }

  // --- follow a job -------------------------------------------------------

  /**
   * Follows a job until its status hash says succeeded or failed:
   * subscribes to sila:job:<id> first, then reads the hash, again at every
   * event and at least every pollMs. onProgress receives each channel event
   * and each hash read whose state/phase/progress changed.
   * @returns {Promise<object>} the final status (jobStatus), failed included
   */
  async followJob(id, onProgress, opts = {}) {
    const pollMs = opts.pollMs || 1000;
    const done = deferred();
    let last = '';
    let reading = false;
    let again = false;
    const report = (ev) => {
      if (onProgress) {
        try {
          onProgress(ev);
        } catch {
          /* the caller's callback does not stop the follow */
        }
      }
    };
    const read = async () => {
      if (reading) {
        again = true;
        return;
      }
      reading = true;
      try {
        do {
          again = false;
          const st = await this.jobStatus(id);
          if (!st) {
            done.reject(new SilaError(`no such job ${id}`, { jobId: id }));
            return;
          }
          const sig = `${st.state}|${st.phase}|${st.progress}`;
          if (sig !== last) {
            last = sig;
            report({ source: 'hash', jobId: id, ...st });
          }
          if (st.state === 'succeeded' || st.state === 'failed') done.resolve(st);
        } while (again && !done.settled);
      } catch {
        /* Redis away: the next poll reads again */
      } finally {
        reading = false;
      }
    };
    const stop = await this._listen(this.key(`job:${id}`), (ev) => {
      report({ source: 'event', ...ev });
      read();
    });
    const timer = setInterval(read, pollMs);
    const cancel = () => done.reject(new SilaError('closed', { jobId: id }));
    this._ops.add(cancel);
    let tmo = null;
    if (opts.timeoutMs)
      tmo = setTimeout(() => done.reject(new SilaError(`job ${id}: no outcome within ${opts.timeoutMs} ms`, { jobId: id })), opts.timeoutMs);
    read();
    try {
      return await done.promise;
    } finally {
      clearInterval(timer);
      if (tmo) clearTimeout(tmo);
      this._ops.delete(cancel);
      await stop();
    }
  }

  // --- open a space -------------------------------------------------------

  /**
   * Opens a space: when its manifest says archived (or restoring), queues an
   * urgent unarchive (deduplicated: many users, one restore) and waits.
   * Resolves once subscribed and enqueued with
   *   { spaceId, jobId, state, ready, complete, close }
   * ready: the space is usable (read/write ops, write blobs, ask for blobs
   * with ensureBlob); complete: every object is restored (state active).
   * Both reject on the job's `failed` event (complete also when it fails
   * after ready: the space then stays usable, the next open finishes it).
   */
  async openSpace(spaceId, opts = {}) {
    checkSpaceId(spaceId);
    const pollMs = opts.pollMs || 1000;
    const ready = deferred();
    const complete = deferred();
    const out = { spaceId, jobId: null, state: null, ready: ready.promise, complete: complete.promise, close: null };
    let jobId = null;
    const early = [];
    const fail = (e) => {
      ready.reject(e);
      complete.reject(e);
    };
    const onEvent = (ev) => {
      if (ev.spaceId !== spaceId) return;
      if (jobId === null && ev.event === 'failed') {
        early.push(ev); // judged once our job id is known
        return;
      }
      if (ev.event === 'ready') {
        ready.resolve({ spaceId, jobId: ev.jobId, timeToReadyMs: ev.timeToReadyMs, via: 'event' });
      } else if (ev.event === 'complete') {
        ready.resolve({ spaceId, jobId: ev.jobId, via: 'complete' });
        complete.resolve({ spaceId, jobId: ev.jobId, timeToCompleteMs: ev.timeToCompleteMs, via: 'event' });
      } else if (ev.event === 'failed' && ev.jobId === jobId) {
        fail(new SilaError(`restore of space ${spaceId} failed: ${ev.error}`, { spaceId, jobId, error: ev.error }));
      }
    };
    const stop = await this._listen(this.key(`space:${spaceId}`), onEvent);
    let timer = null;
    let tmo = null;
    const cancel = () => fail(new SilaError('closed', { spaceId }));
    this._ops.add(cancel);
    const cleanup = async () => {
      if (timer) clearInterval(timer);
      if (tmo) clearTimeout(tmo);
      timer = tmo = null;
      this._ops.delete(cancel);
      await stop();
    };
    out.close = async () => {
      cancel();
      await cleanup();
    };
    // complete settles last (a failure rejects both): then nothing is left
    complete.promise.then(cleanup, cleanup);
    try {
      const m = await this.readManifest(spaceId);
      out.state = m ? m.state : null;
      if (!m || m.state === 'active' || m.state === 'archiving') {
        ready.resolve({ spaceId, jobId: null, via: 'manifest' });
        complete.resolve({ spaceId, jobId: null, via: 'manifest' });
        return out;
      }
      if (m.state === 'restoring' && m.readyAt)
        ready.resolve({ spaceId, jobId: null, readyAt: m.readyAt, via: 'manifest' });
      const r = await this.enqueue('unarchive', spaceId, { urgent: true, requestedBy: opts.requestedBy });
      jobId = out.jobId = r.id;
      out.created = r.created;
      for (const ev of early.splice(0)) onEvent(ev);
    } catch (e) {
      fail(e);
      await cleanup();
      throw e;
    }
    // Pub/sub is lossy: the job's hash is the truth, read now and then.
    const poll = async () => {
      try {
        const h = await this.redis.hmget(this.key(`job:${jobId}`), 'state', 'readyAt', 'timeToReadyMs', 'result', 'error');
        const [state, readyAt, ttr, result, error] = h;
        if (readyAt) ready.resolve({ spaceId, jobId, readyAt, timeToReadyMs: Number(ttr), via: 'hash' });
        if (state === 'succeeded') {
          const res = parseJson(result) || {};
          ready.resolve({ spaceId, jobId, via: 'hash' });
          complete.resolve({ spaceId, jobId, timeToCompleteMs: res.timeToCompleteMs, result: res, via: 'hash' });
        } else if (state === 'failed') {
          fail(new SilaError(`restore of space ${spaceId} failed: ${error}`, { spaceId, jobId, error }));
        }
      } catch {
        /* Redis away: the next poll tries again */
      }
    };
    timer = setInterval(poll, pollMs);
    if (opts.timeoutMs)
      tmo = setTimeout(() => fail(new SilaError(`space ${spaceId} not complete within ${opts.timeoutMs} ms`, { spaceId, jobId })), opts.timeoutMs);
    poll();
    return out;
  }

  // --- a blob before the restore reaches it -------------------------------

  /**
   * Makes sure active/<spaceId>/<path> is in place, asking a running
   * restore for it ahead of its order (the want request): subscribes to the
   * space channel, RPUSH sila:want:<spaceId> <path> + EXPIRE 300, waits for
   * `served` with that path (or `complete`/`failed`). When nothing answers
   * within wantTimeoutMs, queues an urgent unarchive (deduplicated) and asks
   * again, up to `tries` times.
   * @returns {Promise<{found: boolean, key: string, via: string}>}
   *   via: "present" (already there), "served", "complete", "active" (the
   *   space is active and has no such object)
   */
  async ensureBlob(spaceId, relPath, opts = {}) {
    checkSpaceId(spaceId);
    if (typeof relPath !== 'string' || relPath === '' || relPath.startsWith('/') ||
        Buffer.byteLength(relPath) > WANT_PATH_MAX || relPath.split('/').some((c) => c === '' || c === '.' || c === '..'))
      throw new SilaError(`bad path ${JSON.stringify(relPath)}: relative to the space, at most ${WANT_PATH_MAX} bytes`);
    const wantTimeoutMs = opts.wantTimeoutMs || 3000;
    const tries = opts.tries || 3;
    const key = `active/${spaceId}/${relPath}`;
    const want = this.key(`want:${spaceId}`);
    let waiter = null;
    let closed = false;
    const cancel = () => {
      closed = true;
      if (waiter) waiter({ kind: 'closed' });
    };
    this._ops.add(cancel);
    const stop = await this._listen(this.key(`space:${spaceId}`), (ev) => {
      if (!waiter || ev.spaceId !== spaceId) return;
      if (ev.event === 'served' && ev.path === relPath) waiter({ kind: 'served', found: ev.found === true });
      else if (ev.event === 'complete') waiter({ kind: 'complete' });
      else if (ev.event === 'failed') waiter({ kind: 'failed', error: ev.error, jobId: ev.jobId });
    });
    try {
      if (await this._exists(key)) return { found: true, key, via: 'present' };
      const m = await this.readManifest(spaceId);
      if (!m || m.state === 'active' || m.state === 'archiving') {
        // the space may have become active since the first look
        return { found: await this._exists(key), key, via: 'active' };
      }
      if (m.state === 'archived') await this.enqueue('unarchive', spaceId, { urgent: true, requestedBy: opts.requestedBy });
      for (let i = 0; i < tries; i++) {
        let tmo = null;
        const answer = new Promise((resolve) => {
          waiter = resolve;
          tmo = setTimeout(() => resolve({ kind: 'timeout' }), wantTimeoutMs);
        });
        await this.redis.multi().rpush(want, relPath).expire(want, WANT_TTL_S).exec();
        const a = await answer;
        clearTimeout(tmo);
        waiter = null;
        if (a.kind === 'closed' || closed) throw new SilaError('closed', { spaceId, path: relPath });
        if (a.kind === 'served') return { found: a.found, key, via: 'served' };
        if (a.kind === 'complete') return { found: await this._exists(key), key, via: 'complete' };
        if (a.kind === 'failed')
          throw new SilaError(`restore of space ${spaceId} failed: ${a.error}`, { spaceId, jobId: a.jobId, error: a.error });
        // no restore answered: written meanwhile? else make sure one runs
        if (await this._exists(key)) return { found: true, key, via: 'present' };
        await this.enqueue('unarchive', spaceId, { urgent: true, requestedBy: opts.requestedBy });
      }
      throw new SilaError(`no answer for ${relPath} of space ${spaceId} after ${tries} requests`, { spaceId, path: relPath });
    } finally {
      waiter = null;
      this._ops.delete(cancel);
      await stop();
    }
  }

  /** ensureBlob, then the object's bytes (null when the space has none). */
  async readBlob(spaceId, relPath, opts = {}) {
    const r = await this.ensureBlob(spaceId, relPath, opts);
    if (!r.found) return null;
    const body = await this.getObject(r.key);
    return body == null ? null : Buffer.from(body);
  }
}

module.exports = { SilaClient, SilaError, ENQUEUE_LUA, ENQUEUE_SHA };
