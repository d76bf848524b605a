// The client against the documented protocol alone (docs/PROTOCOL.md):
// here the test plays the worker's part (events, status hash, the want
// list) over a real redis-server, and the store is a map. What the real
// worker does is checked by the other files; this one pins the client's
// reading of the contract: events, their fallbacks in the status hash and
// the manifest, failure after ready, and the want request's round trip.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./helpers');

const SPACE = 'c0000000000000000000000000000001';

function setup(tag, manifest) {
  const prefix = h.prefixFor(`proto-${tag}`);
  const conn = h.redis();
  const pub = h.redis();
  const store = new Map();
  if (manifest) store.set(`metadata/${SPACE}.json`, JSON.stringify({ version: '1.0', spaceId: SPACE, ...manifest }));
  const c = new h.SilaClient({
    redis: conn,
    prefix,
    getObject: async (k) => (store.has(k) ? Buffer.from(store.get(k)) : null),
  });
  const publish = (ev) => pub.publish(`${prefix}space:${SPACE}`, JSON.stringify({ spaceId: SPACE, ...ev }));
  const done = async () => {
    await c.close();
    conn.disconnect();
    pub.disconnect();
  };
  return { prefix, conn, pub, store, c, publish, done };
}

test('ready and complete events resolve open in order', async () => {
  const t = setup('events', { state: 'archived' });
  try {
    const op = await t.c.openSpace(SPACE, { timeoutMs: 10000 });
    assert.equal(op.created, true);
    assert.equal(await t.conn.hget(`${t.prefix}job:${op.jobId}`, 'priority'), 'urgent');
    let completed = false;
    op.complete.then(() => (completed = true));
    await t.publish({ event: 'ready', jobId: op.jobId, timeToReadyMs: 120 });
    assert.deepEqual(await op.ready, { spaceId: SPACE, jobId: op.jobId, timeToReadyMs: 120, via: 'event' });
    await h.sleep(50);
    assert.equal(completed, false);
    await t.publish({ event: 'ready', jobId: op.jobId, timeToReadyMs: 130 }); // a resumed run: idempotent
    await t.publish({ event: 'complete', jobId: op.jobId, timeToCompleteMs: 900 });
    assert.deepEqual(await op.complete, { spaceId: SPACE, jobId: op.jobId, timeToCompleteMs: 900, via: 'event' });
  } finally {
    await t.done();
  }
});

test('missed events: the status hash is the truth', async () => {
  const t = setup('hash', { state: 'archived' });
  try {
    const op = await t.c.openSpace(SPACE, { timeoutMs: 10000, pollMs: 100 });
    const key = `${t.prefix}job:${op.jobId}`;
    await t.conn.hset(key, 'state', 'running', 'readyAt', '2026-12-07T02:00:00.000Z', 'timeToReadyMs', '250');
    const r = await op.ready;
    assert.equal(r.via, 'hash');
    assert.equal(r.timeToReadyMs, 250);
    await t.conn.hset(key, 'state', 'succeeded', 'result', JSON.stringify({ restored: 3, timeToReadyMs: 250, timeToCompleteMs: 700 }));
    const k = await op.complete;
    assert.equal(k.via, 'hash');
    assert.equal(k.timeToCompleteMs, 700);
  } finally {
    await t.done();
  }
});

test('failed after ready: ready stays, complete rejects with the error', async () => {
  const t = setup('fail', { state: 'archived' });
  try {
    const op = await t.c.openSpace(SPACE, { timeoutMs: 10000 });
    // a failed event of another (older) job of the space is not ours
    await t.publish({ event: 'failed', jobId: 'someone-else', error: 'old' });
    await t.publish({ event: 'ready', jobId: op.jobId, timeToReadyMs: 5 });
    await op.ready;
    await t.publish({ event: 'failed', jobId: op.jobId, error: 'S3 said 500' });
    await assert.rejects(op.complete, (e) => e.jobId === op.jobId && e.error === 'S3 said 500');
    assert.equal((await op.ready).via, 'event');
  } finally {
    await t.done();
  }
});

test('restoring with readyAt: usable at once, and an unarchive is queued to finish it', async () => {
  const t = setup('readyat', { state: 'restoring', readyAt: '2026-12-07T01:00:00Z' });
  try {
    const op = await t.c.openSpace(SPACE, { timeoutMs: 10000 });
    const r = await op.ready;
    assert.equal(r.via, 'manifest');
    assert.equal(r.readyAt, '2026-12-07T01:00:00Z');
    assert.ok(op.jobId);
    assert.equal(await t.conn.xlen(`${t.prefix}jobs:urgent`), 1);
    await op.close();
    await assert.rejects(op.complete, /closed/);
  } finally {
    await t.done();
  }
});

test('want request: RPUSH + EXPIRE, answered by served', async () => {
  const t = setup('want', { state: 'restoring', readyAt: '2026-12-07T01:00:00Z' });
  const have = 'space-v1/files/static/sha256/ab/' + 'c'.repeat(62);
  const none = 'space-v1/files/static/sha256/ab/' + 'd'.repeat(62);
  let stop = false;
  const popped = [];
  // the restore's part: LPOP up to 16 every 20 ms, PUT, publish served
  const serve = (async () => {
    while (!stop) {
      const paths = (await t.pub.lpop(`${t.prefix}want:${SPACE}`, 16)) || [];
      for (const p of paths) {
        popped.push(p);
        const found = p === have;
        if (found) t.store.set(`active/${SPACE}/${p}`, 'blob bytes');
        await t.publish({ event: 'served', jobId: 'j1', path: p, found });
      }
      await h.sleep(20);
    }
  })();
  try {
    const [a, b] = await Promise.all([t.c.ensureBlob(SPACE, have), t.c.ensureBlob(SPACE, none)]);
    assert.deepEqual(a, { found: true, key: `active/${SPACE}/${have}`, via: 'served' });
    assert.deepEqual(b, { found: false, key: `active/${SPACE}/${none}`, via: 'served' });
    assert.deepEqual(popped.sort(), [have, none].sort());
    assert.equal((await t.c.readBlob(SPACE, have)).toString(), 'blob bytes');
    assert.deepEqual(await t.c.ensureBlob(SPACE, have), { found: true, key: `active/${SPACE}/${have}`, via: 'present' });
    await assert.rejects(t.c.ensureBlob(SPACE, '../x'), /bad path/);
    await assert.rejects(t.c.ensureBlob(SPACE, '/abs'), /bad path/);
  } finally {
    stop = true;
    await serve;
    await t.done();
  }
});

test('want request answered by complete', async () => {
  const t = setup('want-complete', { state: 'restoring', readyAt: '2026-12-07T01:00:00Z' });
  const p = 'space-v1/files/var/uuid/ab/' + 'e'.repeat(30);
  try {
    const got = t.c.ensureBlob(SPACE, p, { wantTimeoutMs: 5000 });
    await h.sleep(200);
    assert.deepEqual(await t.conn.lrange(`${t.prefix}want:${SPACE}`, 0, -1), [p]);
    t.store.set(`active/${SPACE}/${p}`, 'x');
    await t.publish({ event: 'complete', jobId: 'j1', timeToCompleteMs: 1 });
    assert.deepEqual(await got, { found: true, key: `active/${SPACE}/${p}`, via: 'complete' });
  } finally {
    await t.done();
  }
});
